"""The hash chain on PostgreSQL, where one statement moves the head and inserts the rows."""

from __future__ import annotations

import datetime
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from dicomweb_server.audit import AuditEntry, EventType, StudyInvolved, Who, verify_chain
from dicomweb_server.audit.chain import Appended, append_in
from dicomweb_server.audit.tables import audit_chain, audit_event, audit_event_study
from dicomweb_server.index.database import driver_url
from dicomweb_server.index.schema import metadata, study
from tests.services import postgres_database

pytestmark = pytest.mark.scale_only

NOW = datetime.datetime(2026, 6, 15, 12, 0, 0, tzinfo=datetime.UTC)
WHO = Who(subject="token 0123456789ab", organisation="Mercy", external=True, address="10.0.0.7")


@pytest.fixture
def database_url() -> Iterator[str]:
    # Created outside the test's event loop, because postgres_database runs one of its own.
    with postgres_database() as url:
        yield url


@asynccontextmanager
async def postgres_index(url: str) -> AsyncIterator[AsyncEngine]:
    """Yield an engine on the database with every table and one stored study."""
    engine = create_async_engine(driver_url(url))
    try:
        async with engine.begin() as connection:
            await connection.run_sync(metadata.create_all)
            await connection.execute(
                insert(study).values(
                    study_instance_uid="1.2.3",
                    patient_id="P1",
                    issuer_of_patient_id="Mercy",
                    attributes="{}",
                    created_at=NOW,
                    updated_at=NOW,
                )
            )
        yield engine
    finally:
        await engine.dispose()


def entry(number: int) -> AuditEntry:
    return AuditEntry(
        EventType.INSTANCES_ACCESSED,
        WHO,
        NOW,
        f"RetrieveStudyMetadata {number}",
        studies=[StudyInvolved("1.2.3"), StudyInvolved("9.9.9")],
    )


async def append_after(
    engine: AsyncEngine, entries: list[AuditEntry], head: tuple[int, str] | None
) -> list[Appended]:
    async with engine.begin() as connection:
        return await connection.run_sync(append_in, entries, head)


async def test_postgresql_append_from_known_head(database_url: str) -> None:
    async with postgres_index(database_url) as engine:
        first = await append_after(engine, [entry(1)], None)
        second = await append_after(engine, [entry(2), entry(3)], (first[-1].sequence, first[-1].hash))
        async with engine.connect() as connection:
            verification = await verify_chain(connection)
            head = (await connection.execute(select(audit_chain))).one()
            study_rows = (
                await connection.execute(select(audit_event_study).order_by(audit_event_study.c.sequence))
            ).all()

    assert [item.sequence for item in second] == [2, 3]
    assert verification.valid, verification.problem
    assert verification.checked == 3
    assert (head.sequence, head.hash) == (3, second[-1].hash)
    assert [(row.sequence, row.study_instance_uid, row.patient_id) for row in study_rows] == [
        (1, "1.2.3", "P1"),
        (1, "9.9.9", None),
        (2, "1.2.3", "P1"),
        (2, "9.9.9", None),
        (3, "1.2.3", "P1"),
        (3, "9.9.9", None),
    ]


async def test_postgresql_append_from_stale_head(database_url: str) -> None:
    async with postgres_index(database_url) as engine:
        first = await append_after(engine, [entry(1)], None)
        stale = (first[-1].sequence, first[-1].hash)
        # Another replica appends, so this writer's head is stale and nothing may be inserted from it.
        await append_after(engine, [entry(2)], stale)
        third = await append_after(engine, [entry(3)], stale)
        async with engine.connect() as connection:
            verification = await verify_chain(connection)
            events = (await connection.execute(select(func.count()).select_from(audit_event))).scalar_one()

    assert [item.sequence for item in third] == [3]
    assert verification.valid, verification.problem
    assert events == 3
