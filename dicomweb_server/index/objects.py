"""Look-ups of object-store keys in the index, for ``dicomweb-server sweep``."""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from dicomweb_server.consent.tables import quarantine_instance
from dicomweb_server.index.schema import instance


async def find_indexed_object_keys(connection: AsyncConnection, keys: Collection[str]) -> set[str]:
    """Return the subset of ``keys`` that an instance row or a held quarantined instance points to."""
    if not keys:
        return set()
    statement = select(instance.c.object_key).where(instance.c.object_key.in_(list(keys)))
    indexed = set((await connection.execute(statement)).scalars())
    # Instances held in quarantine are in no instance row until an administrator accepts them.
    held = select(quarantine_instance.c.object_key).where(
        quarantine_instance.c.object_key.in_(list(keys)), quarantine_instance.c.status == "held"
    )
    return indexed | set((await connection.execute(held)).scalars())


async def has_instances(connection: AsyncConnection) -> bool:
    """Return whether the index holds at least one instance."""
    row = (await connection.execute(select(instance.c.instance_key).limit(1))).first()
    return row is not None
