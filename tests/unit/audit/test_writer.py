"""Group commit: concurrent requests share transactions, and each learns whether its entries were written."""

from __future__ import annotations

import asyncio
import datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select

from dicomweb_server.audit import AuditEntry, AuditUnavailable, AuditWriter, EventType, Who
from dicomweb_server.audit.tables import audit_chain, audit_event
from dicomweb_server.index.schema import metadata


class CountingWriter(AuditWriter):
    """A writer whose transactions take a little time, are counted and can be made to fail."""

    def __init__(self) -> None:
        super().__init__(None)
        self.batches: list[list[str]] = []
        self.fail = False

    async def _write(self, entries: list[AuditEntry]) -> None:
        await asyncio.sleep(0.01)
        if self.fail:
            raise AuditUnavailable("the trail is unwritable in this test")
        self.batches.append([entry.action for entry in entries])


def entry(action: str) -> AuditEntry:
    return AuditEntry(EventType.QUERY, Who("token 0123456789ab"), datetime.datetime.now(datetime.UTC), action)


async def test_concurrent_records_share_transaction() -> None:
    writer = CountingWriter()
    await asyncio.gather(*(writer.record([entry(f"search {number}")]) for number in range(10)))

    assert sum(len(batch) for batch in writer.batches) == 10
    assert len(writer.batches) <= 2


async def test_failed_transaction_fails_every_waiter() -> None:
    writer = CountingWriter()
    writer.fail = True
    results = await asyncio.gather(
        *(writer.record([entry("search")]) for _ in range(3)), return_exceptions=True
    )

    assert all(isinstance(result, AuditUnavailable) for result in results)


async def test_later_entries_join_next_transaction() -> None:
    writer = CountingWriter()
    writer.record_later([entry("transfer end")])
    await writer.record([entry("search")])

    assert writer.batches == [["transfer end", "search"]]


async def test_later_entries_written_without_waiter() -> None:
    writer = CountingWriter()
    writer.record_later([entry("transfer end")])
    await asyncio.sleep(0.2)

    assert writer.batches == [["transfer end"]]


async def test_close_writes_queued_entries() -> None:
    writer = CountingWriter()
    writer.record_later([entry("transfer end")])
    await writer.close()

    assert writer.batches == [["transfer end"]]
    with pytest.raises(AuditUnavailable):
        await writer.record([entry("search")])


async def test_thread_writer_reopens_broken_connection(tmp_path: Path) -> None:
    engine = create_engine(
        f"sqlite:///{tmp_path / 'index.sqlite3'}",
        pool_size=1,
        max_overflow=0,
        connect_args={"check_same_thread": False},
    )
    metadata.create_all(engine)
    writer = AuditWriter(None, thread_engine=engine)
    await writer.record([entry("first")])
    # The writer keeps its connection between transactions, so closing it fails the next one.
    connection = writer._thread_connection
    assert connection is not None
    connection.connection.dbapi_connection.close()  # type: ignore[union-attr]
    with pytest.raises(AuditUnavailable):
        await writer.record([entry("on the broken connection")])
    await writer.record([entry("second")])
    await writer.close()

    engine = create_engine(f"sqlite:///{tmp_path / 'index.sqlite3'}")
    with engine.connect() as reader:
        actions = reader.execute(select(audit_event.c.action).order_by(audit_event.c.sequence)).all()
        head = reader.execute(select(audit_chain.c.sequence)).scalar_one()
    engine.dispose()

    assert [row.action for row in actions] == ["first", "second"]
    assert head == 2
