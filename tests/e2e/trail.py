"""Helpers of the audit trail tests: entries read through the admin API, SQL run on the database."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable
from typing import Any

import httpx

from tests.services import Archive, ServerProcess

TIMEOUT = 120.0
WAIT_SECONDS = 20.0


def entries(server: ServerProcess, **filters: str) -> list[dict[str, Any]]:
    """Return the entries the admin API lists for the filters, in chain order (all pages)."""
    found: list[dict[str, Any]] = []
    after = 0
    while True:
        response = httpx.get(
            f"{server.url}/admin/api/audit/entries",
            params={**filters, "after": str(after), "limit": "1000"},
            headers=server.headers,
            timeout=TIMEOUT,
        )
        assert response.status_code == 200, response.text
        page = response.json()
        found += page["entries"]
        if page["next_after"] is None:
            return found
        after = page["next_after"]


def wait_for_entries(
    server: ServerProcess, done: Callable[[list[dict[str, Any]]], bool], **filters: str
) -> list[dict[str, Any]]:
    """Return the entries once ``done`` accepts them; the entry that ends a transfer is written after it.

    Raises AssertionError with the entries found when they never satisfy ``done``.
    """
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        found = entries(server, **filters)
        if done(found) or time.monotonic() > deadline:
            assert done(found), [(item["event_type"], item["action"]) for item in found]
            return found
        time.sleep(0.2)


def of_subject(server: ServerProcess, subject: str, count: int) -> list[dict[str, Any]]:
    """Return the entries of one requester once there are at least ``count``."""
    return wait_for_entries(server, lambda found: len(found) >= count, subject=subject)


def subject_of(token: dict[str, Any]) -> str:
    """Return how the trail names the requester of an API token."""
    return f"token {token['id']}"


def one(found: list[dict[str, Any]], **where: Any) -> dict[str, Any]:
    """Return the one entry whose fields equal ``where``; fail with the candidates otherwise."""
    matching = [item for item in found if all(item.get(key) == value for key, value in where.items())]
    assert len(matching) == 1, (where, [(item["event_type"], item["action"]) for item in found])
    return matching[0]


def execute(archive: Archive, *statements: str) -> None:
    """Run SQL statements on the archive's index database, as its administrator could."""
    if archive.database_url is None:
        connection = sqlite3.connect(archive.data_dir / "index.sqlite3")
        try:
            for statement in statements:
                connection.execute(statement)
            connection.commit()
        finally:
            connection.close()
        return

    import asyncpg

    async def run() -> None:
        connection = await asyncpg.connect(archive.database_url, timeout=10)
        try:
            async with connection.transaction():
                for statement in statements:
                    await connection.execute(statement)
        finally:
            await connection.close()

    asyncio.run(run())


def query(archive: Archive, statement: str) -> list[tuple[Any, ...]]:
    """Return the rows of one SQL query on the archive's index database."""
    if archive.database_url is None:
        connection = sqlite3.connect(archive.data_dir / "index.sqlite3")
        try:
            return list(connection.execute(statement).fetchall())
        finally:
            connection.close()

    import asyncpg

    async def run() -> list[tuple[Any, ...]]:
        connection = await asyncpg.connect(archive.database_url, timeout=10)
        try:
            return [tuple(row) for row in await connection.fetch(statement)]
        finally:
            await connection.close()

    return asyncio.run(run())


def allow_changes(archive: Archive) -> None:
    """Drop the triggers that make the entry tables append-only, as a database administrator could."""
    if archive.database_url is None:
        execute(
            archive,
            *(
                f"DROP TRIGGER {table}_no_{operation}"
                for table in ("audit_event", "audit_event_study")
                for operation in ("update", "delete")
            ),
        )
        return
    execute(
        archive,
        "DROP TRIGGER audit_event_append_only ON audit_event",
        "DROP TRIGGER audit_event_study_append_only ON audit_event_study",
    )


def block_appends(archive: Archive) -> None:
    """Make every insert into audit_event fail, as a full disk or a broken table would."""
    if archive.database_url is None:
        execute(
            archive,
            "CREATE TRIGGER test_block_audit BEFORE INSERT ON audit_event "
            "BEGIN SELECT RAISE(ABORT, 'audit table unwritable in this test'); END",
        )
        return
    execute(
        archive,
        "CREATE FUNCTION test_block_audit() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION 'audit table unwritable in this test'; END $$",
        "CREATE TRIGGER test_block_audit BEFORE INSERT ON audit_event "
        "FOR EACH ROW EXECUTE FUNCTION test_block_audit()",
    )


def unblock_appends(archive: Archive) -> None:
    if archive.database_url is None:
        execute(archive, "DROP TRIGGER test_block_audit")
        return
    execute(archive, "DROP TRIGGER test_block_audit ON audit_event", "DROP FUNCTION test_block_audit()")
