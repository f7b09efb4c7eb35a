"""Alembic environment: migrations run on a connection handed over by ``index.migrate``."""

from __future__ import annotations

from alembic import context

# The audit, identity, consent and peer tables share the index's metadata; importing them lets autogenerate
# see them instead of proposing to drop them.
from dicomweb_server.audit import tables as _audit_tables  # noqa: F401
from dicomweb_server.auth import tables as _auth_tables  # noqa: F401
from dicomweb_server.consent import tables as _consent_tables  # noqa: F401
from dicomweb_server.federation import tables as _federation_tables  # noqa: F401
from dicomweb_server.index.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with `dicomweb-server migrate`, which opens the connection")

context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
