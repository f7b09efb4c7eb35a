"""Recording authorizations: their checks, their default end, and how stored studies move it."""

from __future__ import annotations

import datetime
from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncConnection

from dicomweb_server.auth.organisations import add_organisation
from dicomweb_server.consent.authorizations import (
    NewAuthorization,
    extend_for_study,
    get_authorization,
    list_authorizations,
    record_authorization,
    revoke_authorization,
)
from dicomweb_server.consent.fhir import to_fhir_consent
from dicomweb_server.consent.periods import zone
from dicomweb_server.errors import Conflict, InvalidRequest, NotFound
from tests.unit.auth.database import NOW, add_study, memory_index

UTC = datetime.UTC
PARIS = zone("Europe/Paris")


@pytest.fixture
async def connection() -> AsyncIterator[AsyncConnection]:
    async with memory_index() as connection:
        await add_organisation(connection, "Mercy", affiliated=False, by="test", now=NOW)
        await add_organisation(connection, "Home", affiliated=True, by="test", now=NOW)
        yield connection


def _new(**fields: object) -> NewAuthorization:
    values: dict[str, object] = {
        "patient_id": "P1",
        "purpose": "continuing care",
        "reference": "scan 42",
        "organisations": ("Mercy",),
    }
    values.update(fields)
    return NewAuthorization(**values)  # type: ignore[arg-type]


async def _record(connection: AsyncConnection, **fields: object) -> str:
    recorded = await record_authorization(connection, _new(**fields), time_zone=PARIS, by="clerk", now=NOW)
    return recorded.authorization_id


async def test_record_keeps_every_field(connection: AsyncConnection) -> None:
    recorded = await record_authorization(
        connection, _new(issuer_of_patient_id="HOSP"), time_zone=PARIS, by="clerk", now=NOW
    )
    document = recorded.to_json(NOW)
    assert document["patient_id"] == "P1"
    assert document["issuer_of_patient_id"] == "HOSP"
    assert document["coverage"] == "all"
    assert document["organisations"] == ["Mercy"]
    assert document["purpose"] == "continuing care"
    assert document["reference"] == "scan 42"
    assert document["recorded_by"] == "clerk"
    assert document["state"] == "active"
    assert document["time_zone"] == "Europe/Paris"
    assert document["revoked_at"] is None


async def test_default_end_twelve_months_after_start(connection: AsyncConnection) -> None:
    found = await get_authorization(connection, await _record(connection))
    assert found.starts_at == NOW
    assert found.ends_at == datetime.datetime(2027, 6, 15, 12, 0, tzinfo=UTC)
    assert found.end_chosen_by_patient is False
    assert found.meets_twelve_months is True


async def test_default_end_after_latest_covered_study(connection: AsyncConnection) -> None:
    await add_study(connection, "1.1", "P1", study_date="20261220")
    found = await get_authorization(connection, await _record(connection))
    # End of 20 December 2027 in Paris (UTC+1) is 23:00 UTC that day.
    assert found.ends_at == datetime.datetime(2027, 12, 20, 23, 0, tzinfo=UTC)


async def test_new_study_extends_default_end(connection: AsyncConnection) -> None:
    authorization_id = await _record(connection)
    await add_study(connection, "1.9", "P1", study_date="20270301")
    await extend_for_study(connection, "1.9", NOW)
    found = await get_authorization(connection, authorization_id)
    assert found.ends_at == datetime.datetime(2028, 3, 1, 23, 0, tzinfo=UTC)
    assert found.updated_at == NOW


async def test_new_study_of_other_patient_changes_nothing(connection: AsyncConnection) -> None:
    authorization_id = await _record(connection)
    before = await get_authorization(connection, authorization_id)
    await add_study(connection, "1.9", "P2", study_date="20270301")
    await extend_for_study(connection, "1.9", NOW)
    assert (await get_authorization(connection, authorization_id)).ends_at == before.ends_at


async def test_new_study_keeps_patient_end_and_marks_it(connection: AsyncConnection) -> None:
    chosen = datetime.datetime(2027, 7, 1, tzinfo=UTC)
    authorization_id = await _record(connection, ends_at=chosen)
    assert (await get_authorization(connection, authorization_id)).meets_twelve_months is True

    await add_study(connection, "1.9", "P1", study_date="20270301")
    await extend_for_study(connection, "1.9", NOW)
    found = await get_authorization(connection, authorization_id)
    assert found.ends_at == chosen
    assert found.end_chosen_by_patient is True
    assert found.meets_twelve_months is False


async def test_earlier_patient_end_does_not_meet_twelve_months(connection: AsyncConnection) -> None:
    found = await get_authorization(
        connection, await _record(connection, ends_at=NOW + datetime.timedelta(days=90))
    )
    assert found.end_chosen_by_patient is True
    assert found.meets_twelve_months is False


async def test_ended_authorization_not_revived(connection: AsyncConnection) -> None:
    end = NOW - datetime.timedelta(days=1)
    authorization_id = await _record(connection, starts_at=NOW - datetime.timedelta(days=400), ends_at=end)
    await add_study(connection, "1.9", "P1", study_date="20260610")
    await extend_for_study(connection, "1.9", NOW)
    assert (await get_authorization(connection, authorization_id)).ends_at == end


async def test_listed_study_extends_only_when_listed(connection: AsyncConnection) -> None:
    authorization_id = await _record(connection, study_instance_uids=("1.9",))
    await add_study(connection, "1.8", "P1", study_date="20270301")
    await extend_for_study(connection, "1.8", NOW)
    assert (await get_authorization(connection, authorization_id)).ends_at.year == 2027

    await add_study(connection, "1.9", "P1", study_date="20270301")
    await extend_for_study(connection, "1.9", NOW)
    assert (await get_authorization(connection, authorization_id)).ends_at.year == 2028


async def test_revoke_records_who_and_why(connection: AsyncConnection) -> None:
    authorization_id = await _record(connection)
    revoked = await revoke_authorization(
        connection, authorization_id, reason="written request", by="clerk", now=NOW
    )
    assert revoked.revoked_at == NOW
    assert revoked.revoked_by == "clerk"
    assert revoked.revocation_reason == "written request"
    assert revoked.state(NOW) == "revoked"
    with pytest.raises(Conflict, match="revoked already"):
        await revoke_authorization(connection, authorization_id, reason="again", by="clerk", now=NOW)


async def test_list_by_patient(connection: AsyncConnection) -> None:
    first = await _record(connection)
    second = await _record(connection, issuer_of_patient_id="HOSP")
    await _record(connection, patient_id="P2")
    assert [item.authorization_id for item in await list_authorizations(connection, "P1")] == [first, second]
    assert [item.authorization_id for item in await list_authorizations(connection, "P1", "HOSP")] == [second]


INVALID = [
    ({"patient_id": " "}, "missing patient_id"),
    ({"purpose": ""}, "missing purpose"),
    ({"reference": ""}, "missing reference"),
    ({"organisations": ()}, "missing recipient"),
    ({"any_external": True}, "not both"),
    ({"organisations": ("Home",)}, "is affiliated"),
    ({"study_instance_uids": ("1.2.x",)}, "invalid StudyInstanceUID"),
    ({"study_instance_uids": ("1.2",), "study_date_from": "20240101"}, "not both"),
    ({"study_date_from": "20240101"}, "needs both"),
    ({"study_date_from": "20240201", "study_date_to": "20240101"}, "is after"),
    ({"ends_at": NOW}, "not after the start"),
]


@pytest.mark.parametrize(("fields", "message"), INVALID)
async def test_invalid_authorization_rejected(
    connection: AsyncConnection, fields: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidRequest, match=message):
        await _record(connection, **fields)


async def test_unknown_recipient_not_found(connection: AsyncConnection) -> None:
    with pytest.raises(NotFound, match="no organisation named 'Nowhere'"):
        await _record(connection, organisations=("Nowhere",))


async def test_listed_study_of_other_patient_rejected(connection: AsyncConnection) -> None:
    await add_study(connection, "1.7", "P2")
    with pytest.raises(InvalidRequest, match="belongs to another patient"):
        await _record(connection, study_instance_uids=("1.7",))


async def test_fhir_consent_of_listed_studies(connection: AsyncConnection) -> None:
    recorded = await record_authorization(
        connection,
        _new(issuer_of_patient_id="HOSP", study_instance_uids=("1.2.3",)),
        time_zone=PARIS,
        by="clerk",
        now=NOW,
    )
    resource = to_fhir_consent(recorded, NOW)
    assert resource["resourceType"] == "Consent"
    assert resource["status"] == "active"
    assert resource["patient"] == {"identifier": {"value": "P1", "assigner": {"display": "HOSP"}}}
    assert resource["sourceReference"] == {"display": "scan 42"}
    provision = resource["provision"]
    assert provision["type"] == "permit"
    assert provision["period"]["start"] == "2026-06-15T12:00:00.000000Z"
    assert provision["actor"][0]["reference"] == {"display": "Mercy"}
    assert provision["actor"][0]["role"]["coding"][0]["code"] == "IRCP"
    assert provision["data"][0]["reference"]["identifier"]["value"] == "urn:oid:1.2.3"


async def test_fhir_consent_revoked_is_inactive(connection: AsyncConnection) -> None:
    authorization_id = await _record(
        connection, any_external=True, organisations=(), study_date_from="20240101", study_date_to="20241231"
    )
    revoked = await revoke_authorization(connection, authorization_id, reason="letter", by="clerk", now=NOW)
    resource = to_fhir_consent(revoked, NOW)
    assert resource["status"] == "inactive"
    assert "actor" not in resource["provision"]
    assert resource["provision"]["dataPeriod"] == {"start": "2024-01-01", "end": "2024-12-31"}
