"""Group commit: one task writes the entries of concurrent requests in one transaction.

A read request must have its entries committed before its response starts, and on SQLite every
commit waits for the disk (``synchronous = FULL``). Committing each request on its own would
cost one disk sync per request. The writer instead queues the entries of the requests that
arrive while a transaction is being written, and commits them together in the next one. Each
request waits for the commit that carries its own entries. Under load, many requests share a
sync; a lone request waits for one transaction, as it would without the writer.

The writer uses a connection of its own (an engine with one connection), so requests that hold
pooled connections while they wait for it can never starve it of one. On SQLite that connection
is synchronous and each transaction runs whole in a worker thread: aiosqlite would cross from the
event loop to its thread and back for every call of the driver, about fourteen times for a
one-entry transaction, and those crossings cost more CPU time than the writing itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Sequence

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from dicomweb_server.audit.chain import Appended, AuditUnavailable, append_in
from dicomweb_server.audit.events import AuditEntry
from dicomweb_server.config import Settings
from dicomweb_server.index.database import Index, IndexUnavailable, create_engine, create_sqlite_thread_engine

logger = logging.getLogger(__name__)

MAX_BATCH = 500
"""Maximum number of entries one transaction writes; the rest wait for the next one."""

LATER_DELAY = 0.05
"""Seconds that entries no request waits for stay queued before a transaction of their own writes them."""


@dataclasses.dataclass
class _Pending:
    entries: list[AuditEntry]
    done: asyncio.Future[None] | None


class AuditWriter:
    """Writes entries through one task, committing those of concurrent requests together.

    ``record`` returns once its entries are committed and raises AuditUnavailable when their
    transaction failed. ``record_later`` queues entries that no request waits for, such as the end of a
    transfer whose bytes have already been sent. ``close`` writes what is queued and stops.
    """

    def __init__(
        self, index: Index | None, *, own_index: bool = False, thread_engine: Engine | None = None
    ) -> None:
        self._index = index
        self._own_index = own_index
        self._thread_engine = thread_engine
        self._connection: AsyncConnection | None = None
        self._thread_connection: Connection | None = None
        self._head: tuple[int, str] | None = None
        self._queue: list[_Pending] = []
        self._task: asyncio.Task[None] | None = None
        self._scheduled: asyncio.TimerHandle | None = None
        self._closed = False

    @classmethod
    def for_settings(cls, settings: Settings) -> AuditWriter:
        """Return a writer with a connection of its own to the index the settings select."""
        if settings.uses_embedded_index:
            return cls(None, thread_engine=create_sqlite_thread_engine(settings))
        own = dataclasses.replace(settings, index_pool_size=1, index_max_overflow=0)
        return cls(Index(create_engine(own), own), own_index=True)

    async def record(self, entries: Sequence[AuditEntry]) -> None:
        """Write entries and return once they are committed.

        Raises
        ------
        AuditUnavailable
            When the transaction that carried them failed, or the writer is closed.
        """
        if self._closed:
            raise AuditUnavailable("the audit trail is closed because the server is stopping; try again")
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.add_done_callback(_mark_retrieved)
        self._enqueue(_Pending(list(entries), done))
        # Shielded, so that a request cancelled while it waits still has its entries written.
        await asyncio.shield(done)

    def record_later(self, entries: Sequence[AuditEntry]) -> None:
        """Queue entries to be written with the next transaction, without waiting for it.

        The transaction starts when a request records entries it waits for, or LATER_DELAY
        seconds from now, whichever comes first, so that the end of a transfer usually shares
        the transaction of the next request's entry.
        """
        if self._closed:
            logger.error("Audit: %d entries arrived after the trail closed and are lost", len(entries))
            return
        self._queue.append(_Pending(list(entries), None))
        if self._draining() or self._scheduled is not None:
            return
        self._scheduled = asyncio.get_running_loop().call_later(LATER_DELAY, self._start_drain)

    def _enqueue(self, pending: _Pending) -> None:
        self._queue.append(pending)
        self._start_drain()

    def _draining(self) -> bool:
        return self._task is not None and not self._task.done()

    def _start_drain(self) -> None:
        if self._scheduled is not None:
            self._scheduled.cancel()
            self._scheduled = None
        if not self._draining() and self._queue:
            self._task = asyncio.get_running_loop().create_task(self._drain(), name="audit-writer")

    async def _drain(self) -> None:
        while self._queue:
            batch = self._take_batch()
            try:
                await self._write([entry for pending in batch for entry in pending.entries])
            except (AuditUnavailable, IndexUnavailable, DBAPIError, OSError) as error:
                failure = error if isinstance(error, AuditUnavailable) else _unavailable(error)
                self._settle(batch, failure)
                continue
            except BaseException as error:
                # The task must never die with requests waiting on it; they get the failure.
                self._settle(batch, _unavailable(error))
                if isinstance(error, asyncio.CancelledError):
                    raise
                logger.exception("Audit: writing a batch failed unexpectedly")
                continue
            self._settle(batch, None)

    async def _write(self, entries: list[AuditEntry]) -> None:
        """Write entries in one transaction, starting from the chain head the last one left."""
        head, self._head = self._head, None
        if self._thread_engine is not None:
            appended = await asyncio.to_thread(self._write_in_thread, entries, head)
        else:
            appended = await self._write_on_connection(entries, head)
        self._head = (appended[-1].sequence, appended[-1].hash)

    def _write_in_thread(self, entries: list[AuditEntry], head: tuple[int, str] | None) -> list[Appended]:
        """Write on a connection kept open between transactions, as ``_write_on_connection`` does.

        Only the drain task calls it, one transaction at a time, so the connection is never used
        by two threads at once. A failed transaction closes it, and the next one opens a new one.
        """
        assert self._thread_engine is not None
        if self._thread_connection is None:
            connection = self._thread_engine.connect()
            self._thread_connection = connection.execution_options(sqlite_begin="IMMEDIATE")
        try:
            with self._thread_connection.begin():
                return append_in(self._thread_connection, entries, head)
        except BaseException:
            connection, self._thread_connection = self._thread_connection, None
            with contextlib.suppress(Exception):
                connection.close()
            raise

    async def _write_on_connection(
        self, entries: list[AuditEntry], head: tuple[int, str] | None
    ) -> list[Appended]:
        """Write on a connection kept open between transactions, which saves a pool check-out per batch.

        A kept connection that the database closed (a restart) fails one transaction; the next
        one opens a new connection.
        """
        assert self._index is not None
        if self._connection is None:
            connection = await self._index.engine.connect()
            if self._index.dialect == "sqlite":
                connection = await connection.execution_options(sqlite_begin="IMMEDIATE")
            self._connection = connection
        try:
            async with self._connection.begin():
                return await self._connection.run_sync(append_in, entries, head)
        except BaseException:
            connection, self._connection = self._connection, None
            with contextlib.suppress(Exception):
                await asyncio.shield(connection.close())
            raise

    def _take_batch(self) -> list[_Pending]:
        batch, count = [], 0
        while self._queue and (not batch or count + len(self._queue[0].entries) <= MAX_BATCH):
            pending = self._queue.pop(0)
            batch.append(pending)
            count += len(pending.entries)
        return batch

    def _settle(self, batch: list[_Pending], failure: BaseException | None) -> None:
        lost = 0
        for pending in batch:
            if pending.done is None:
                lost += len(pending.entries) if failure else 0
            elif not pending.done.done():
                if failure is None:
                    pending.done.set_result(None)
                else:
                    pending.done.set_exception(failure)
        if lost:
            logger.error("Audit: %d entries of ended transfers could not be written", lost)

    async def close(self) -> None:
        """Write every queued entry, then refuse new ones and close the writer's own connection."""
        self._closed = True
        self._start_drain()
        if self._task is not None:
            with contextlib.suppress(Exception):
                await self._task
        if self._connection is not None:
            await self._connection.close()
        if self._own_index and self._index is not None:
            await self._index.close()
        if self._thread_connection is not None:
            await asyncio.to_thread(self._thread_connection.close)
        if self._thread_engine is not None:
            self._thread_engine.dispose()


def _mark_retrieved(done: asyncio.Future[None]) -> None:
    # A request cancelled while waiting never reads its failure; reading it here keeps asyncio
    # from reporting an exception that was never retrieved.
    if not done.cancelled():
        done.exception()


def _unavailable(error: BaseException) -> AuditUnavailable:
    failure = AuditUnavailable(
        "the archive cannot write its audit trail, so it rejected this request without carrying it out; "
        "try again later"
    )
    failure.__cause__ = error
    return failure
