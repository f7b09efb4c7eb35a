"""Appending a batch on PostgreSQL in one statement: moving the chain head and inserting the rows.

On PostgreSQL every statement is a round trip to the database server. After the look-ups, a
batch took three of them: move the chain head, insert the entries, insert their study rows.
Data-modifying WITH queries do all three in one statement. The rows are sent as one array per
column, so the statement text is the same for every batch and stays in the cache of prepared
statements that SQLAlchemy keeps for each asyncpg connection.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Column, Connection, Table, text
from sqlalchemy.dialects import postgresql

from dicomweb_server.audit.tables import CHAIN_KEY, audit_event, audit_event_study

_DIALECT = postgresql.dialect()  # type: ignore[no-untyped-call]


def _names(table: Table) -> str:
    return ", ".join(_DIALECT.identifier_preparer.quote(column.name) for column in table.columns)


def _arrays(table: Table, prefix: str) -> str:
    return ", ".join(_array_parameter(column, prefix) for column in table.columns)


def _array_parameter(column: Column[Any], prefix: str) -> str:
    # The cast names the array type, which asyncpg needs to encode a Python list.
    return f"CAST(:{prefix}{column.name} AS {column.type.compile(dialect=_DIALECT)}[])"


# The entries are inserted only when the head still names the entry this writer appended last.
# Each data-modifying WITH query runs once and to completion, even though the final SELECT
# reads only "moved" (PostgreSQL manual, "Data-Modifying Statements in WITH").
_APPEND_AFTER_HEAD = text(
    # The text is built from the table definitions alone, and every value is a bound parameter.
    f"""
    WITH moved AS (
        UPDATE audit_chain SET sequence = :new_sequence, hash = :new_hash
        WHERE chain_key = {CHAIN_KEY} AND sequence = :old_sequence AND hash = :old_hash
        RETURNING chain_key
    ), inserted_events AS (
        INSERT INTO audit_event ({_names(audit_event)})
        SELECT * FROM unnest({_arrays(audit_event, "event_")})
        WHERE EXISTS (SELECT FROM moved)
    ), inserted_studies AS (
        INSERT INTO audit_event_study ({_names(audit_event_study)})
        SELECT * FROM unnest({_arrays(audit_event_study, "study_")})
        WHERE EXISTS (SELECT FROM moved)
    )
    SELECT count(*) FROM moved
    """  # noqa: S608
)


def append_after_head(
    connection: Connection,
    head: tuple[int, str],
    last: tuple[int, str],
    events: list[dict[str, Any]],
    studies: list[dict[str, Any]],
) -> bool:
    """Move the chain head from ``head`` to ``last`` and insert the rows, in one statement.

    Return False, having changed nothing, when the head no longer has the values of ``head``
    because another writer appended since. Like an UPDATE of its own, the statement locks the
    head row until the transaction ends.
    """
    parameters: dict[str, Any] = {
        "old_sequence": head[0],
        "old_hash": head[1],
        "new_sequence": last[0],
        "new_hash": last[1],
    }
    for column in audit_event.columns:
        parameters[f"event_{column.name}"] = [row[column.name] for row in events]
    for column in audit_event_study.columns:
        parameters[f"study_{column.name}"] = [row[column.name] for row in studies]
    return bool(connection.execute(_APPEND_AFTER_HEAD, parameters).scalar_one() == 1)
