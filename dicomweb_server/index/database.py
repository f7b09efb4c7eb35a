"""Connections to the index database (SQLite by default, PostgreSQL at scale) and its migrations."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection, Engine, event, inspect
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from dicomweb_server.config import Settings

logger = logging.getLogger(__name__)


class IndexUnavailable(Exception):
    """The index database cannot be used; the message names the setting or command to fix it."""


class SchemaMismatch(IndexUnavailable):
    """The database schema is older or newer than this version of the server."""


def driver_url(url: str) -> str:
    """Add the async driver to a database URL: asyncpg for PostgreSQL, aiosqlite for SQLite."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend in {"postgresql", "postgres"}:
        return parsed.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)
    if backend == "sqlite":
        return parsed.set(drivername="sqlite+aiosqlite").render_as_string(hide_password=False)
    raise IndexUnavailable(
        f"unsupported index database {backend!r} in DICOMWEB_INDEX_URL; use postgresql or sqlite"
    )


class Index:
    """The index database: a pool of connections and two kinds of transaction.

    :meth:`read` opens a transaction that only reads. :meth:`write` opens one that writes; on
    SQLite it starts with BEGIN IMMEDIATE, which takes the write lock at once, because a read
    transaction that later writes can fail with "database is locked" instead of waiting.
    """

    def __init__(self, engine: AsyncEngine, settings: Settings) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        self._settings = settings

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        async with self._connection() as connection:
            async with _transaction(connection):
                yield connection

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        async with self._connection() as connection:
            if self.dialect == "sqlite":
                connection = await connection.execution_options(sqlite_begin="IMMEDIATE")
            async with _transaction(connection):
                yield connection

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[AsyncConnection]:
        """Take a connection from the pool and give it back, also when the request is cancelled.

        A client that disconnects cancels its request, but the connection must still go back to
        the pool, or each disconnect would keep one busy until the process ends. The anyio
        shield covers Starlette's cancellation of a streaming response, and the asyncio shield
        lets the close finish in the background when the task itself is cancelled.
        """
        try:
            connection = await self.engine.connect()
        except PoolTimeout as error:
            raise IndexUnavailable(
                f"all {self._settings.index_pool_size + self._settings.index_max_overflow} connections "
                f"to the index database stayed busy for {self._settings.index_timeout} s; raise "
                "DICOMWEB_INDEX_POOL_SIZE or DICOMWEB_INDEX_MAX_OVERFLOW, or DICOMWEB_INDEX_TIMEOUT"
            ) from error
        except (OperationalError, InterfaceError, OSError) as error:
            raise IndexUnavailable(_describe_connection_error(self._settings, error)) from error
        try:
            yield connection
        finally:
            with anyio.CancelScope(shield=True):
                await asyncio.shield(connection.close())

    async def close(self) -> None:
        await self.engine.dispose()


@asynccontextmanager
async def _transaction(connection: AsyncConnection) -> AsyncIterator[None]:
    """Run the block in a transaction: commit when it ends normally, roll back when it raises.

    Both are shielded from the cancellation of a disconnected client's request. A commit cut
    short would leave its outcome unknown, and a cut rollback makes the pool discard the
    connection instead of reusing it.
    """
    transaction = await connection.begin()
    try:
        yield
    except BaseException:
        with anyio.CancelScope(shield=True):
            await transaction.rollback()
        raise
    with anyio.CancelScope(shield=True):
        await transaction.commit()


def create_engine(settings: Settings) -> AsyncEngine:
    """Create the engine for the index the settings select, with its pool and timeouts."""
    url = driver_url(settings.effective_index_url)
    if url.startswith("sqlite"):
        return _create_sqlite_engine(url, settings)
    return create_async_engine(
        url,
        pool_size=settings.index_pool_size,
        max_overflow=settings.index_max_overflow,
        pool_timeout=settings.index_timeout,
        pool_pre_ping=True,
        connect_args={
            "timeout": settings.index_timeout,
            "command_timeout": settings.index_timeout,
            "server_settings": {"application_name": "dicomweb-server"},
        },
    )


def _create_sqlite_engine(url: str, settings: Settings) -> AsyncEngine:
    _make_parent_folder(url)
    engine = create_async_engine(
        url,
        pool_size=settings.index_pool_size,
        max_overflow=settings.index_max_overflow,
        pool_timeout=settings.index_timeout,
        connect_args={"timeout": settings.index_timeout},
    )
    configure_sqlite_engine(engine.sync_engine, settings)
    return engine


def _make_parent_folder(url: str) -> None:
    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)


def create_sqlite_thread_engine(settings: Settings) -> Engine:
    """Create a synchronous engine with one connection to the embedded SQLite index.

    It is configured as the server's engine. Code that runs a whole transaction in a worker
    thread on it (the audit writer) crosses threads once per transaction, where aiosqlite
    crosses once per call of the driver.
    """
    url = make_url(settings.effective_index_url).set(drivername="sqlite+pysqlite")
    _make_parent_folder(url.render_as_string(hide_password=False))
    engine = create_sync_engine(
        url,
        pool_size=1,
        max_overflow=0,
        pool_timeout=settings.index_timeout,
        connect_args={"timeout": settings.index_timeout, "check_same_thread": False},
    )
    configure_sqlite_engine(engine, settings)
    return engine


def configure_sqlite_engine(engine: Engine, settings: Settings) -> None:
    """Set the pragmas of every new SQLite connection, and let transactions choose BEGIN IMMEDIATE."""
    busy_timeout_ms = int(settings.index_timeout * 1000)

    @event.listens_for(engine, "connect")
    def configure_connection(dbapi_connection: Any, _record: Any) -> None:
        # pysqlite starts transactions on its own and defers them; turning that off lets the
        # "begin" hook below choose DEFERRED or IMMEDIATE.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in (
            "journal_mode = WAL",
            # FULL syncs the write-ahead log at every commit, so an acknowledged store survives
            # a power failure; NORMAL would only sync at checkpoints.
            "synchronous = FULL",
            "foreign_keys = ON",
            f"busy_timeout = {busy_timeout_ms}",
            # QIDO wildcard matching is case-sensitive except for person names, which the index
            # keeps folded; SQLite's LIKE would otherwise ignore ASCII case.
            "case_sensitive_like = ON",
            "temp_store = MEMORY",
        ):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def begin_transaction(connection: Connection) -> None:
        mode = connection.get_execution_options().get("sqlite_begin", "DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")


def _alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", "dicomweb_server.index:migrations")
    return config


def _script_directory() -> ScriptDirectory:
    return ScriptDirectory.from_config(_alembic_config())


def head_revision() -> str:
    head = _script_directory().get_current_head()
    assert head is not None
    return head


def is_known_revision(revision: str) -> bool:
    """Return whether ``revision`` is one of this version's migrations."""
    try:
        return _script_directory().get_revision(revision) is not None
    except CommandError:
        return False


async def current_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as connection:
        return await connection.run_sync(lambda sync: MigrationContext.configure(sync).get_current_revision())


async def has_tables(engine: AsyncEngine) -> bool:
    async with engine.connect() as connection:
        names = await connection.run_sync(lambda sync: inspect(sync).get_table_names())
    return bool(names)


async def migrate(engine: AsyncEngine, target: str = "head") -> tuple[str | None, str]:
    """Apply every migration the database lacks, up to ``target``; return the revisions before and after.

    All migrations run in one transaction. PostgreSQL and SQLite both roll DDL back with the
    transaction, so a failed migration leaves the database at its previous revision.

    Raises
    ------
    SchemaMismatch
        When the database is at a revision this version does not know.
    """
    before = await current_revision(engine)
    if before is not None and not is_known_revision(before):
        raise SchemaMismatch(_unknown_revision_message(before))

    def upgrade(connection: Connection) -> None:
        config = _alembic_config()
        config.attributes["connection"] = connection
        command.upgrade(config, target)

    async with engine.connect() as connection:
        async with connection.begin():
            await connection.run_sync(upgrade)
    after = await current_revision(engine)
    assert after is not None
    return before, after


async def migrate_index(settings: Settings) -> tuple[str | None, str]:
    """Connect to the index the settings select and apply the migrations it lacks (``migrate``).

    Raises
    ------
    IndexUnavailable
        When the database cannot be reached; the message names DICOMWEB_INDEX_URL.
    SchemaMismatch
        When the database is at a revision this version does not know.
    """
    engine = create_engine(settings)
    try:
        try:
            await current_revision(engine)
        except (OperationalError, DBAPIError, OSError) as error:
            raise IndexUnavailable(_describe_connection_error(settings, error)) from error
        return await migrate(engine)
    finally:
        await engine.dispose()


def _unknown_revision_message(revision: str) -> str:
    return (
        f"the index database is at schema revision {revision!r}, which this version of dicomweb-server "
        f"does not know (its newest is {head_revision()!r}); a newer version migrated it, so run "
        "that version, or restore the database and run `dicomweb-server migrate` of this version"
    )


async def open_index(settings: Settings, *, migrate_empty_embedded: bool = True) -> Index:
    """Connect to the index and check its schema.

    A new, empty SQLite index in the data folder is created on the spot, so the embedded
    default needs no extra step. Any other database must be brought to the current schema
    with ``dicomweb-server migrate`` first.

    Raises
    ------
    IndexUnavailable
        When the database cannot be reached; the message names DICOMWEB_INDEX_URL.
    SchemaMismatch
        When the schema is missing, older or newer than this server; the message says to run
        ``dicomweb-server migrate``.
    """
    engine = create_engine(settings)
    try:
        revision = await current_revision(engine)
        if (
            revision is None
            and settings.uses_embedded_index
            and migrate_empty_embedded
            and not await has_tables(engine)
        ):
            before, after = await migrate(engine)
            logger.info("Index: created the schema (revision %s) in the embedded SQLite database", after)
            revision = after
    except (OperationalError, DBAPIError, OSError) as error:
        await engine.dispose()
        raise IndexUnavailable(_describe_connection_error(settings, error)) from error
    except BaseException:
        await engine.dispose()
        raise

    head = head_revision()
    if revision != head:
        await engine.dispose()
        if revision is not None and not is_known_revision(revision):
            raise SchemaMismatch(_unknown_revision_message(revision))
        state = "has no schema" if revision is None else f"is at the older schema revision {revision!r}"
        raise SchemaMismatch(
            f"the index database {state}, and this server needs revision {head!r}; "
            "run `dicomweb-server migrate` with the same settings, then start the server again"
        )
    return Index(engine, settings)


def _describe_connection_error(settings: Settings, error: BaseException) -> str:
    where = make_url(settings.effective_index_url).render_as_string(hide_password=True)
    detail = str(getattr(error, "orig", None) or error).splitlines()[0]
    return f"cannot open the index database {where} (DICOMWEB_INDEX_URL): {detail}"
