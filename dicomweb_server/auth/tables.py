"""Tables of who may ask: organisations and the API tokens issued to them.

They share ``index.schema.metadata``, so one migration history covers the whole database.
Surrogate keys join the tables and are never sent to clients. ``token_id`` is the public name
of a token, shown in listings and used to revoke it.
"""

from __future__ import annotations

from sqlalchemy import Boolean, Column, ForeignKey, Index, String, Table, Text

from dicomweb_server.index.schema import SurrogateKey, UtcDateTime, metadata

organisation = Table(
    "organisation",
    metadata,
    Column("organisation_key", SurrogateKey, primary_key=True, autoincrement=True),
    Column("name", Text, nullable=False, comment="unique among organisations not deleted"),
    Column(
        "affiliated",
        Boolean,
        nullable=False,
        comment="part of the archive's own organisation; false for external facilities",
    ),
    Column("created_at", UtcDateTime, nullable=False),
    Column("created_by", Text, nullable=False),
    Column("deleted_at", UtcDateTime, comment="set when deleted; its tokens stop working"),
    Column("deleted_by", Text),
)
Index(
    "uq_organisation_name_active",
    organisation.c.name,
    unique=True,
    sqlite_where=organisation.c.deleted_at.is_(None),
    postgresql_where=organisation.c.deleted_at.is_(None),
)

api_token = Table(
    "api_token",
    metadata,
    Column("token_key", SurrogateKey, primary_key=True, autoincrement=True),
    Column("token_id", String(32), nullable=False, unique=True, comment="public name of the token"),
    Column(
        "organisation_key",
        SurrogateKey,
        ForeignKey("organisation.organisation_key"),
        nullable=False,
    ),
    Column("token_hash", String(64), nullable=False, unique=True, comment="SHA-256 of the token, hex"),
    Column("scopes", Text, nullable=False, comment="space-separated scope names"),
    Column("created_at", UtcDateTime, nullable=False),
    Column("created_by", Text, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("revoked_at", UtcDateTime),
    Column("revoked_by", Text),
)
Index(None, api_token.c.organisation_key)
