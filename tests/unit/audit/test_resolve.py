"""Completing entries before they are written: patients, disclosures, hidden studies, emergency access."""

from __future__ import annotations

import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from dicomweb_server.audit import AuditEntry, EventType, Outcome, StudyInvolved, Who
from dicomweb_server.audit.chain import append
from dicomweb_server.audit.entries import EntryFilter, find_entries
from dicomweb_server.auth.identity import Requester, Scope
from dicomweb_server.auth.organisations import add_organisation
from dicomweb_server.consent.authorizations import NewAuthorization, record_authorization
from dicomweb_server.consent.tables import emergency_access
from tests.unit.auth.database import NOW, add_study, memory_index

UTC = ZoneInfo("UTC")


async def external(connection: AsyncConnection, *scopes: str) -> Requester:
    mercy = await add_organisation(connection, "Mercy", affiliated=False, by="test", now=NOW)
    return Requester("token 0123456789ab", "Mercy", False, frozenset(scopes or {Scope.READ}), mercy.key)


def entry(requester: Requester, **fields: object) -> AuditEntry:
    who = Who(requester.subject, requester.organisation, requester.external)
    return AuditEntry(EventType.BEGIN_TRANSFERRING, who, NOW, "RetrieveStudy", requester=requester, **fields)  # type: ignore[arg-type]


async def written(connection: AsyncConnection) -> list[dict[str, object]]:
    return [item.content for item in await find_entries(connection, EntryFilter(limit=1000))]


async def test_disclosure_names_authorization() -> None:
    async with memory_index() as connection:
        requester = await external(connection)
        await add_study(connection, "1.2.3.1", "P1")
        granted = await record_authorization(
            connection,
            NewAuthorization(
                patient_id="P1", purpose="second opinion", reference="form", organisations=("Mercy",)
            ),
            time_zone=UTC,
            by="test",
            now=NOW - datetime.timedelta(days=1),
        )
        await append(connection, [entry(requester, studies=[StudyInvolved("1.2.3.1", 2)], discloses=True)])
        found = await written(connection)

    retrieval, export = found[-2:]
    assert (retrieval["event_type"], export["event_type"]) == ("begin-transferring", "data-export")
    assert export["request_id"] == retrieval["request_id"]
    assert export["authorizations"] == [granted.authorization_id]
    assert export["purpose"] == "second opinion"
    assert export["studies"][0]["patient_id"] == "P1"
    assert export["studies"][0]["instances"] == 2


async def test_affiliated_read_is_no_disclosure() -> None:
    async with memory_index() as connection:
        await add_study(connection, "1.2.3.1", "P1")
        requester = Requester("token 0123456789ab", "Radiology", True, frozenset({Scope.READ}), 1)
        await append(connection, [entry(requester, studies=[StudyInvolved("1.2.3.1")], discloses=True)])
        found = await written(connection)

    assert [item["event_type"] for item in found] == ["begin-transferring"]


async def test_hidden_study_raises_alert() -> None:
    async with memory_index() as connection:
        requester = await external(connection)
        await add_study(connection, "1.2.3.1", "P1")
        failed = entry(requester, outcome=Outcome.MINOR_FAILURE, status=404, requested_studies=["1.2.3.1"])
        await append(connection, [failed])
        found = await written(connection)

    alert = found[-1]
    assert (alert["event_type"], alert["type_code"], alert["outcome"]) == ("security-alert", "110144", 4)
    assert alert["studies"][0]["patient_id"] == "P1"


async def test_absent_study_raises_no_alert() -> None:
    async with memory_index() as connection:
        requester = await external(connection)
        failed = entry(requester, outcome=Outcome.MINOR_FAILURE, status=404, requested_studies=["1.2.3.404"])
        await append(connection, [failed])
        found = await written(connection)

    assert [item["event_type"] for item in found][-1] == "begin-transferring"


async def test_emergency_disclosure_names_access() -> None:
    async with memory_index() as connection:
        requester = await external(connection, Scope.READ, Scope.EMERGENCY)
        await add_study(connection, "1.2.3.1", "P1")
        await connection.execute(
            insert(emergency_access).values(
                access_id="access-1",
                organisation_key=requester.organisation_key,
                subject=requester.subject,
                patient_id="P1",
                issuer_of_patient_id="",
                reason="trauma",
                opened_at=NOW - datetime.timedelta(minutes=5),
                expires_at=NOW + datetime.timedelta(hours=1),
            )
        )
        await append(connection, [entry(requester, studies=[StudyInvolved("1.2.3.1")], discloses=True)])
        found = await written(connection)

    export, alert = found[-2:]
    assert export["emergency_accesses"] == ["access-1"]
    assert export["purpose"] == "emergency access: trauma"
    assert (alert["event_type"], alert["type_code"]) == ("security-alert", "110132")
