"""An in-memory SQLite index with every table, for unit tests of identity and consent records."""

from __future__ import annotations

import datetime
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import event, insert
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
from sqlalchemy.pool import StaticPool

from dicomweb_server.auth import tables as auth_tables  # noqa: F401 - registers the tables
from dicomweb_server.consent import tables as consent_tables  # noqa: F401 - registers the tables
from dicomweb_server.index.schema import metadata, study

NOW = datetime.datetime(2026, 6, 15, 12, 0, 0, tzinfo=datetime.UTC)


@asynccontextmanager
async def memory_index() -> AsyncIterator[AsyncConnection]:
    """Yield a connection to a new in-memory database with every table, inside one transaction."""
    engine = create_async_engine("sqlite+aiosqlite://", poolclass=StaticPool)

    @event.listens_for(engine.sync_engine, "connect")
    def enable_foreign_keys(dbapi_connection, _record):  # type: ignore[no-untyped-def]
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    try:
        async with engine.begin() as connection:
            await connection.run_sync(metadata.create_all)
            yield connection
    finally:
        await engine.dispose()


async def add_study(
    connection: AsyncConnection,
    study_instance_uid: str,
    patient_id: str | None,
    *,
    issuer_of_patient_id: str | None = None,
    study_date: str | None = "20260101",
    created_at: datetime.datetime = NOW,
) -> None:
    await connection.execute(
        insert(study).values(
            study_instance_uid=study_instance_uid,
            patient_id=patient_id,
            issuer_of_patient_id=issuer_of_patient_id,
            study_date=study_date,
            attributes="{}",
            created_at=created_at,
            updated_at=created_at,
        )
    )
