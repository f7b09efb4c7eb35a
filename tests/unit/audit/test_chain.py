"""The hash chain: appending entries and finding the first one that does not fit."""

from __future__ import annotations

import dataclasses
import datetime

from sqlalchemy import delete, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from dicomweb_server.audit import AuditEntry, EventType, StudyInvolved, Who, verify_chain
from dicomweb_server.audit.chain import append, canonical_json, entry_hash
from dicomweb_server.audit.tables import GENESIS_HASH, audit_chain, audit_event, audit_event_study
from tests.unit.auth.database import NOW, add_study, memory_index

WHO = Who(subject="token 0123456789ab", organisation="Radiology", address="127.0.0.1")


def entry(number: int, *studies: str) -> AuditEntry:
    return AuditEntry(
        event_type=EventType.QUERY,
        who=WHO,
        event_time=NOW + datetime.timedelta(seconds=number),
        action="SearchForStudies",
        query=f"PatientID=P{number}",
        studies=[StudyInvolved(uid) for uid in studies],
    )


async def chain_of(connection: AsyncConnection, count: int) -> None:
    await add_study(connection, "1.2.3.1", "P1")
    for number in range(count):
        await append(connection, [entry(number, "1.2.3.1")])


async def test_append_links_each_entry_to_previous() -> None:
    async with memory_index() as connection:
        await chain_of(connection, 3)
        rows = (await connection.execute(select(audit_event).order_by(audit_event.c.sequence))).all()

    assert [row.sequence for row in rows] == [1, 2, 3]
    assert rows[0].previous_hash == GENESIS_HASH
    assert rows[1].previous_hash == rows[0].hash
    assert rows[2].previous_hash == rows[1].hash
    assert rows[1].hash == entry_hash(rows[0].hash, 2, rows[1].content.encode())


async def test_append_fills_patient_from_index() -> None:
    async with memory_index() as connection:
        await add_study(connection, "1.2.3.9", "P9", issuer_of_patient_id="HOSP")
        await append(connection, [entry(1, "1.2.3.9")])
        study_row = (await connection.execute(select(audit_event_study))).one()

    assert (study_row.patient_id, study_row.issuer_of_patient_id) == ("P9", "HOSP")


async def test_verify_accepts_untouched_chain() -> None:
    async with memory_index() as connection:
        await chain_of(connection, 5)
        result = await verify_chain(connection)
        head = (await connection.execute(select(audit_chain))).one()

    assert result.valid, result.problem
    assert result.checked == 5
    assert (result.head_sequence, result.head_hash) == (5, head.hash)


async def test_verify_names_changed_content() -> None:
    async with memory_index() as connection:
        await chain_of(connection, 5)
        row = (await connection.execute(select(audit_event).where(audit_event.c.sequence == 3))).one()
        changed = row.content.replace("PatientID=P2", "PatientID=P7")
        await connection.execute(
            update(audit_event).where(audit_event.c.sequence == 3).values(content=changed)
        )
        result = await verify_chain(connection)

    assert not result.valid
    assert result.sequence == 3
    assert result.event_id == row.event_id
    assert "does not match its hash" in (result.problem or "")


async def test_verify_names_rehashed_entry() -> None:
    async with memory_index() as connection:
        await chain_of(connection, 5)
        row = (await connection.execute(select(audit_event).where(audit_event.c.sequence == 2))).one()
        changed = row.content.replace("PatientID=P1", "PatientID=P8")
        rehashed = entry_hash(row.previous_hash, 2, changed.encode())
        await connection.execute(
            update(audit_event).where(audit_event.c.sequence == 2).values(content=changed, hash=rehashed)
        )
        result = await verify_chain(connection)

    assert result.sequence == 3
    assert "does not follow entry 2" in (result.problem or "")


async def test_verify_names_deleted_entry() -> None:
    async with memory_index() as connection:
        await chain_of(connection, 5)
        await connection.execute(delete(audit_event).where(audit_event.c.sequence == 4))
        result = await verify_chain(connection)

    assert result.sequence == 4
    assert result.event_id is None
    assert "entry 4 is missing" in (result.problem or "")


async def test_verify_names_deleted_last_entries() -> None:
    async with memory_index() as connection:
        await chain_of(connection, 5)
        await connection.execute(delete(audit_event).where(audit_event.c.sequence >= 4))
        result = await verify_chain(connection)

    assert result.sequence == 4
    assert "entries 4 to 5 are missing" in (result.problem or "")


async def test_verify_names_swapped_entries() -> None:
    async with memory_index() as connection:
        await chain_of(connection, 5)
        await connection.execute(update(audit_event).where(audit_event.c.sequence == 2).values(sequence=-2))
        await connection.execute(update(audit_event).where(audit_event.c.sequence == 3).values(sequence=2))
        await connection.execute(update(audit_event).where(audit_event.c.sequence == -2).values(sequence=3))
        result = await verify_chain(connection)

    assert result.sequence == 2
    assert not result.valid


async def test_verify_names_changed_indexed_column() -> None:
    async with memory_index() as connection:
        await chain_of(connection, 3)
        await connection.execute(
            update(audit_event).where(audit_event.c.sequence == 2).values(subject="token ffffffffffff")
        )
        result = await verify_chain(connection)

    assert result.sequence == 2
    assert "column subject" in (result.problem or "")


async def test_verify_names_changed_study_row() -> None:
    async with memory_index() as connection:
        await chain_of(connection, 3)
        await connection.execute(
            update(audit_event_study).where(audit_event_study.c.sequence == 2).values(patient_id="OTHER")
        )
        result = await verify_chain(connection)

    assert result.sequence == 2
    assert "studies indexed" in (result.problem or "")


async def test_verify_rejects_other_anchor() -> None:
    async with memory_index() as connection:
        await chain_of(connection, 3)
        result = await verify_chain(connection, anchor=(2, "f" * 64))

    assert result.sequence == 2
    assert "anchor" in (result.problem or "")


async def test_verify_accepts_own_anchor() -> None:
    async with memory_index() as connection:
        await chain_of(connection, 3)
        head = (
            await connection.execute(select(audit_event.c.hash).where(audit_event.c.sequence == 2))
        ).scalar()
        result = await verify_chain(connection, anchor=(2, str(head)))

    assert result.valid, result.problem


async def test_canonical_json_sorts_keys() -> None:
    assert canonical_json({"b": 1, "a": "é"}) == '{"a":"é","b":1}'.encode()


async def test_append_creates_missing_head() -> None:
    async with memory_index() as connection:
        await connection.execute(text("DELETE FROM audit_chain"))
        await append(connection, [entry(1)])
        head = (await connection.execute(select(audit_chain))).one()

    assert head.sequence == 1


async def test_study_json_has_every_field() -> None:
    study = StudyInvolved(
        "1.2.3",
        instances=4,
        patient_id="P1",
        issuer_of_patient_id="Mercy",
        patient_name="Doe^Jane",
        accession_number="A7",
        study_date="20260101",
        study_description="Chest",
        modalities=["CT", "MR"],
    )

    assert study.to_json() == dataclasses.asdict(study)
    assert study.to_json()["modalities"] is not study.modalities
