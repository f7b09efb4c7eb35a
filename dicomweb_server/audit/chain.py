"""Appending to the hash-chained trail, and checking the chain.

Entry ``n`` stores ``hash = SHA-256(previous_hash + "\\n" + n + "\\n" + content)``, where
``previous_hash`` is the hash of entry ``n - 1`` (64 zeros for the first) and ``content`` the
entry as canonical JSON (keys sorted, UTF-8). Changing, removing or moving an entry therefore
breaks either its own hash or the link of the entry after it, and :func:`verify_chain` names the
first entry that does not fit.

Appends are serialised by the one row of ``audit_chain``, which contains the sequence and hash
of the last entry. On PostgreSQL :func:`append` locks that row (SELECT ... FOR UPDATE) until the
caller's transaction ends, so replicas writing at once still form one chain; callers append as
the last step of their transaction to keep that lock short. On SQLite the write transaction
(BEGIN IMMEDIATE) already holds the database's write lock.
"""

from __future__ import annotations

import hashlib
import logging
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Connection, bindparam, insert, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from dicomweb_server.audit.events import AuditEntry, parse_utc
from dicomweb_server.audit.postgresql import append_after_head
from dicomweb_server.audit.resolve import resolve_entries
from dicomweb_server.audit.tables import CHAIN_KEY, GENESIS_HASH, audit_chain, audit_event, audit_event_study
from dicomweb_server.errors import DependencyUnavailable, InvalidRequest

logger = logging.getLogger(__name__)

SOURCE = socket.gethostname()
"""The name of this server process's host, stored in each entry it writes."""

VERIFY_BATCH = 1000

# The statements of every append are built once, because building a statement costs CPU on every call.
_READ_HEAD = select(audit_chain.c.sequence, audit_chain.c.hash).where(audit_chain.c.chain_key == CHAIN_KEY)
_READ_HEAD_FOR_UPDATE = _READ_HEAD.with_for_update()
_MOVE_HEAD = (
    update(audit_chain)
    .where(audit_chain.c.chain_key == CHAIN_KEY)
    .values(sequence=bindparam("new_sequence"), hash=bindparam("new_hash"))
)
# The head moves only if it still names the entry this writer appended last (see _insert).
_MOVE_HEAD_FROM = (
    update(audit_chain)
    .where(
        audit_chain.c.chain_key == CHAIN_KEY,
        audit_chain.c.sequence == bindparam("old_sequence"),
        audit_chain.c.hash == bindparam("old_hash"),
    )
    .values(sequence=bindparam("new_sequence"), hash=bindparam("new_hash"))
)
_INSERT_EVENTS = insert(audit_event)
_INSERT_EVENT_STUDIES = insert(audit_event_study)


class AuditUnavailable(DependencyUnavailable):
    """The trail cannot be written, so the request it would record is rejected without being carried out."""


def canonical_json(content: dict[str, Any]) -> bytes:
    return orjson.dumps(content, option=orjson.OPT_SORT_KEYS)


def entry_hash(previous_hash: str, sequence: int, content: bytes) -> str:
    digest = hashlib.sha256()
    digest.update(f"{previous_hash}\n{sequence}\n".encode())
    digest.update(content)
    return digest.hexdigest()


@dataclass(frozen=True)
class Appended:
    """The position of an appended entry in the chain: its sequence, event id and hash."""

    sequence: int
    event_id: str
    hash: str


async def append(connection: AsyncConnection, entries: Sequence[AuditEntry]) -> list[Appended]:
    """Append entries, and those the writer derives from them, in the caller's write transaction.

    The entries are resolved first: the patients of their studies, and the authorizations that
    allowed a disclosure (see ``resolve``). The chain head is locked only for the inserts. The
    work runs as one synchronous step (``append_in``), which a caller with a synchronous
    connection, such as the audit writer's worker thread, calls directly.

    Raises
    ------
    AuditUnavailable
        When the database rejects the write; the caller's transaction must roll back.
    """
    if not entries:
        return []
    return await connection.run_sync(append_in, list(entries))


def append_in(
    connection: Connection, entries: list[AuditEntry], head: tuple[int, str] | None = None
) -> list[Appended]:
    """Append entries in the transaction of a synchronous connection; see :func:`append`.

    ``head`` is the (sequence, hash) of the last entry as the caller last saw it. When the chain
    head still has these values, the head is updated without being read first; otherwise it is
    read, locked and the hashes computed again.
    """
    try:
        return _insert(connection, resolve_entries(connection, entries), head)
    except DBAPIError as error:
        logger.error("Audit: writing %d entries failed: %s", len(entries), type(error.orig).__name__)
        raise AuditUnavailable(
            "the archive cannot write its audit trail, so it rejected this request without carrying it "
            "out; try again later"
        ) from error


def _insert(
    connection: Connection, entries: list[AuditEntry], head: tuple[int, str] | None
) -> list[Appended]:
    if head is not None:
        events, studies, appended = _chained(entries, head)
        last = (appended[-1].sequence, appended[-1].hash)
        # Moving the head locks its row like the SELECT ... FOR UPDATE below. It changes no row
        # when another writer appended since, and the chain is then built from the stored head.
        if connection.dialect.name == "postgresql":
            if append_after_head(connection, head, last, events, studies):
                return appended
        elif _move_head_from(connection, head, last):
            _insert_rows(connection, events, studies)
            return appended

    events, studies, appended = _chained(entries, _lock_head(connection))
    _insert_rows(connection, events, studies)
    connection.execute(_MOVE_HEAD, {"new_sequence": appended[-1].sequence, "new_hash": appended[-1].hash})
    return appended


def _chained(
    entries: list[AuditEntry], head: tuple[int, str]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[Appended]]:
    """Return the rows of entries appended after ``head``, each hash chained to the one before."""
    sequence, previous = head
    events: list[dict[str, Any]] = []
    studies: list[dict[str, Any]] = []
    appended: list[Appended] = []
    for entry in entries:
        sequence += 1
        content = entry.to_json(SOURCE)
        encoded = canonical_json(content)
        digest = entry_hash(previous, sequence, encoded)
        events.append(
            {
                **indexed_columns(content),
                "sequence": sequence,
                "content": encoded.decode(),
                "previous_hash": previous,
                "hash": digest,
            }
        )
        studies += [{"sequence": sequence, **row} for row in study_rows(content)]
        appended.append(Appended(sequence, entry.event_id, digest))
        previous = digest
    return events, studies, appended


def _move_head_from(connection: Connection, head: tuple[int, str], last: tuple[int, str]) -> bool:
    parameters = {"old_sequence": head[0], "old_hash": head[1], "new_sequence": last[0], "new_hash": last[1]}
    return connection.execute(_MOVE_HEAD_FROM, parameters).rowcount == 1


def _insert_rows(connection: Connection, events: list[dict[str, Any]], studies: list[dict[str, Any]]) -> None:
    connection.execute(_INSERT_EVENTS, events)
    if studies:
        connection.execute(_INSERT_EVENT_STUDIES, studies)


def _lock_head(connection: Connection) -> tuple[int, str]:
    """Return the sequence and hash of the last entry, holding the chain head until the transaction ends."""
    statement = _READ_HEAD_FOR_UPDATE if connection.dialect.name == "postgresql" else _READ_HEAD
    row = connection.execute(statement).first()
    if row is None:
        # Migration 0004 adds the head, but a database built from the table definitions alone
        # (unit tests) gets it here. When two first writers race, the second insert does nothing.
        factory = postgresql_insert if connection.dialect.name == "postgresql" else sqlite_insert
        connection.execute(
            factory(audit_chain)
            .values(chain_key=CHAIN_KEY, sequence=0, hash=GENESIS_HASH)
            .on_conflict_do_nothing(index_elements=["chain_key"])
        )
        row = connection.execute(statement).one()
    return int(row.sequence), str(row.hash)


def indexed_columns(content: dict[str, Any]) -> dict[str, Any]:
    """Return the ``audit_event`` columns that repeat parts of an entry's content."""
    requester = content["requester"]
    return {
        "event_id": content["event_id"],
        "request_id": content["request_id"],
        "event_time": parse_utc(content["event_time"]),
        "event_type": content["event_type"],
        "action": content["action"][:64],
        "outcome": content["outcome"],
        "subject": requester["subject"],
        "organisation": requester["organisation"],
        "external": bool(requester["external"]),
    }


def study_rows(content: dict[str, Any]) -> list[dict[str, Any]]:
    """Return the ``audit_event_study`` rows of an entry: one per study it names.

    An entry that names a patient none of its studies belongs to (an authorization recorded
    before any study) gets a row with an empty StudyInstanceUID, so it is found by patient too.
    """
    rows: dict[str, dict[str, Any]] = {}
    for study in content["studies"]:
        rows[study["study_instance_uid"]] = {
            "study_instance_uid": study["study_instance_uid"],
            "patient_id": study["patient_id"],
            "issuer_of_patient_id": study["issuer_of_patient_id"] or "",
        }
    patient = content["patient"]
    named = {(row["patient_id"], row["issuer_of_patient_id"]) for row in rows.values()}
    if patient and (patient["patient_id"], patient["issuer_of_patient_id"]) not in named:
        rows[""] = {"study_instance_uid": "", **patient}
    return list(rows.values())


@dataclass(frozen=True)
class Verification:
    """The result of checking the chain.

    ``problem`` is None when every entry fits. Otherwise it describes the first entry that does
    not fit, which ``sequence`` and ``event_id`` name. ``event_id`` is None for a missing entry.
    """

    checked: int
    head_sequence: int
    head_hash: str
    problem: str | None = None
    sequence: int | None = None
    event_id: str | None = None

    @property
    def valid(self) -> bool:
        return self.problem is None

    def to_json(self) -> dict[str, Any]:
        return {
            "valid": self.valid,
            "checked": self.checked,
            "head_sequence": self.head_sequence,
            "head_hash": self.head_hash,
            "problem": self.problem,
            "sequence": self.sequence,
            "event_id": self.event_id,
        }


class _Broken(Exception):
    def __init__(self, problem: str, sequence: int, event_id: str | None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.sequence = sequence
        self.event_id = event_id


async def verify_chain(connection: AsyncConnection, anchor: tuple[int, str] | None = None) -> Verification:
    """Check every entry against its hash and the one before, and the chain head against the last.

    ``anchor`` is a (sequence, hash) pair noted earlier outside the database, such as printed by
    a previous ``audit verify``. It detects a chain rewritten from that entry on, or cut before it,
    which the database alone cannot show because the hashes carry no secret.
    """
    head = (await connection.execute(select(audit_chain.c.sequence, audit_chain.c.hash))).first()
    head_sequence, head_hash = (int(head.sequence), str(head.hash)) if head else (0, GENESIS_HASH)
    checked, last_sequence, last_hash = 0, 0, GENESIS_HASH
    anchor_seen = anchor is None
    try:
        await _check_entries_below_first(connection)
        while True:
            rows = await _event_batch(connection, last_sequence)
            if not rows:
                break
            study_map = await _study_batch(connection, rows[0].sequence, rows[-1].sequence)
            for row in rows:
                _check_entry(row, last_sequence, last_hash, study_map.get(row.sequence, set()))
                if anchor is not None and row.sequence == anchor[0]:
                    _check_anchor(row, anchor)
                    anchor_seen = True
                checked, last_sequence, last_hash = checked + 1, row.sequence, row.hash
        _check_head(head_sequence, head_hash, last_sequence, last_hash)
        await _check_study_rows_without_entry(connection)
        if not anchor_seen:
            assert anchor is not None
            raise _Broken(
                f"entry {anchor[0]}, named by the anchor, is missing: the chain ends at "
                f"entry {last_sequence}",
                anchor[0],
                None,
            )
    except _Broken as broken:
        return Verification(
            checked, head_sequence, head_hash, broken.problem, broken.sequence, broken.event_id
        )
    return Verification(checked, head_sequence, head_hash)


async def _check_entries_below_first(connection: AsyncConnection) -> None:
    """Find an entry numbered below 1, which the walk from entry 1 never reads.

    The triggers reject UPDATE and DELETE but not INSERT, and the reports read every row, so such
    an entry would add a disclosure or a search that no hash covers.
    """
    statement = (
        select(audit_event.c.sequence, audit_event.c.event_id)
        .where(audit_event.c.sequence < 1)
        .order_by(audit_event.c.sequence)
        .limit(1)
    )
    outside = (await connection.execute(statement)).first()
    if outside is not None:
        raise _Broken(
            f"entry {outside.sequence} is outside the chain, which starts at entry 1: "
            "it was inserted into the database directly",
            int(outside.sequence),
            str(outside.event_id),
        )


async def _check_study_rows_without_entry(connection: AsyncConnection) -> None:
    """Find a study row whose entry does not exist, once the walk has found every entry in place.

    An inserted row of this kind would attach itself to the entry appended later with its number.
    """
    has_entry = select(audit_event.c.sequence).where(audit_event.c.sequence == audit_event_study.c.sequence)
    statement = (
        select(audit_event_study.c.sequence)
        .where(~has_entry.exists())
        .order_by(audit_event_study.c.sequence)
        .limit(1)
    )
    orphan = (await connection.execute(statement)).first()
    if orphan is not None:
        raise _Broken(
            f"a study row names entry {orphan.sequence}, which does not exist: "
            "it was inserted into the database directly",
            int(orphan.sequence),
            None,
        )


async def _event_batch(connection: AsyncConnection, after: int) -> list[Any]:
    statement = (
        select(audit_event)
        .where(audit_event.c.sequence > after)
        .order_by(audit_event.c.sequence)
        .limit(VERIFY_BATCH)
    )
    return list((await connection.execute(statement)).all())


async def _study_batch(connection: AsyncConnection, first: int, last: int) -> dict[int, set[tuple[Any, ...]]]:
    rows = await connection.execute(
        select(audit_event_study).where(audit_event_study.c.sequence.between(first, last))
    )
    found: dict[int, set[tuple[Any, ...]]] = {}
    for row in rows:
        found.setdefault(row.sequence, set()).add(
            (row.study_instance_uid, row.patient_id, row.issuer_of_patient_id)
        )
    return found


def _check_entry(row: Any, last_sequence: int, last_hash: str, studies: set[tuple[Any, ...]]) -> None:
    """Raise _Broken when the entry does not follow the last one or does not match its hash."""
    if row.sequence != last_sequence + 1:
        missing = (
            f"entry {last_sequence + 1} is missing"
            if row.sequence == last_sequence + 2
            else f"entries {last_sequence + 1} to {row.sequence - 1} are missing"
        )
        raise _Broken(
            f"{missing}: the chain goes from entry {last_sequence} to entry {row.sequence}",
            last_sequence + 1,
            None,
        )
    if entry_hash(row.previous_hash, row.sequence, row.content.encode()) != row.hash:
        raise _Broken(
            f"entry {row.sequence} does not match its hash: its content or its position was changed",
            row.sequence,
            row.event_id,
        )
    if row.previous_hash != last_hash:
        raise _Broken(
            f"entry {row.sequence} does not follow entry {last_sequence}: the hash it names as previous "
            "differs, so an entry before it was changed, removed or moved",
            row.sequence,
            row.event_id,
        )
    _check_repeated_columns(row, studies)


def _check_repeated_columns(row: Any, studies: set[tuple[Any, ...]]) -> None:
    content = orjson.loads(row.content)
    expected = indexed_columns(content)
    for name, value in expected.items():
        stored = getattr(row, name)
        if name == "external":
            stored = bool(stored)
        if stored != value:
            raise _Broken(
                f"entry {row.sequence} was changed: its column {name} differs from its hashed content",
                row.sequence,
                row.event_id,
            )
    named = {
        (item["study_instance_uid"], item["patient_id"], item["issuer_of_patient_id"])
        for item in study_rows(content)
    }
    if named != studies:
        raise _Broken(
            f"entry {row.sequence} was changed: the studies indexed for it differ from its hashed content",
            row.sequence,
            row.event_id,
        )


def _check_anchor(row: Any, anchor: tuple[int, str]) -> None:
    if row.hash != anchor[1]:
        raise _Broken(
            f"entry {row.sequence} has another hash than the anchor: the chain was rewritten from there on",
            row.sequence,
            row.event_id,
        )


def _check_head(head_sequence: int, head_hash: str, last_sequence: int, last_hash: str) -> None:
    if head_sequence > last_sequence:
        raise _Broken(
            f"entries {last_sequence + 1} to {head_sequence} are missing: the chain head names entry "
            f"{head_sequence}, but the last entry is {last_sequence}",
            last_sequence + 1,
            None,
        )
    if (head_sequence, head_hash) != (last_sequence, last_hash):
        raise _Broken(
            f"the chain head (entry {head_sequence}) does not match the last entry ({last_sequence}): "
            "the head or the last entries were changed",
            last_sequence,
            None,
        )


def parse_anchor(text: str | None) -> tuple[int, str] | None:
    """Parse an anchor written SEQUENCE:HASH, as ``audit verify`` prints it.

    Raises
    ------
    InvalidRequest
        When the text is not a sequence number and a 64-digit hex hash separated by a colon.
    """
    if text is None:
        return None
    sequence, _, digest = text.strip().partition(":")
    if not sequence.isdigit() or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise InvalidRequest(
            f"invalid anchor {text!r}; give SEQUENCE:HASH as `dicomweb-server audit verify` prints it"
        )
    return int(sequence), digest
