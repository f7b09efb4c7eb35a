"""The consent predicate on an in-memory index: which requester may see which study, and when."""

from __future__ import annotations

import datetime
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from dicomweb_server.auth.identity import Requester, Scope
from dicomweb_server.auth.organisations import Organisation, add_organisation, delete_organisation
from dicomweb_server.consent.authorizations import (
    NewAuthorization,
    record_authorization,
    revoke_authorization,
)
from dicomweb_server.consent.emergency import close_emergency_access, open_emergency_access
from dicomweb_server.consent.periods import zone
from dicomweb_server.consent.policy import visible_studies
from dicomweb_server.consent.tables import patient_authorization
from dicomweb_server.index.schema import study
from tests.unit.auth.database import NOW, add_study, memory_index

UTC = datetime.UTC
UTC_ZONE = zone("UTC")
SECOND = datetime.timedelta(seconds=1)
MICROSECOND = datetime.timedelta(microseconds=1)


@dataclass
class World:
    connection: AsyncConnection
    mercy: Organisation
    lab: Organisation
    home: Organisation

    def requester(self, owner: Organisation, *scopes: Scope, subject: str = "token t1") -> Requester:
        return Requester(
            subject=subject,
            organisation=owner.name,
            affiliated=owner.affiliated,
            scopes=frozenset(scopes or {Scope.READ}),
            organisation_key=owner.key,
        )

    async def visible(self, requester: Requester, now: datetime.datetime = NOW) -> set[str]:
        statement = select(study.c.study_instance_uid).where(visible_studies(requester, now))
        return set((await self.connection.execute(statement)).scalars())

    async def grant(self, **fields: object) -> str:
        values: dict[str, object] = {"patient_id": "P1", "purpose": "care", "reference": "form 1"}
        values.update(fields)
        if "organisations" not in values and not values.get("any_external"):
            values["organisations"] = ("Mercy",)
        recorded = await record_authorization(
            self.connection,
            NewAuthorization(**values),
            time_zone=UTC_ZONE,
            by="test",
            now=NOW,  # type: ignore[arg-type]
        )
        return recorded.authorization_id


@pytest.fixture
async def world() -> AsyncIterator[World]:
    async with memory_index() as connection:
        mercy = await add_organisation(connection, "Mercy", affiliated=False, by="test", now=NOW)
        lab = await add_organisation(connection, "Lab", affiliated=False, by="test", now=NOW)
        home = await add_organisation(connection, "Home", affiliated=True, by="test", now=NOW)
        await add_study(connection, "1.1", "P1", study_date="20260101")
        await add_study(connection, "1.2", "P1", study_date="20250601")
        await add_study(connection, "1.3", "P2", study_date="20260101")
        await add_study(connection, "1.4", "P1", issuer_of_patient_id="OTHER", study_date="20260101")
        await add_study(connection, "1.5", "P1", issuer_of_patient_id="", study_date=None)
        await add_study(connection, "1.6", None, study_date="20260101")
        yield World(connection, mercy, lab, home)


async def test_affiliated_sees_every_study(world: World) -> None:
    assert await world.visible(world.requester(world.home)) == {"1.1", "1.2", "1.3", "1.4", "1.5", "1.6"}


async def test_external_without_authorization_sees_nothing(world: World) -> None:
    assert await world.visible(world.requester(world.mercy)) == set()


async def test_all_studies_matches_patient_and_empty_issuer(world: World) -> None:
    await world.grant()
    assert await world.visible(world.requester(world.mercy)) == {"1.1", "1.2", "1.5"}


async def test_issuer_must_match_exactly(world: World) -> None:
    await world.grant(issuer_of_patient_id="OTHER")
    assert await world.visible(world.requester(world.mercy)) == {"1.4"}


async def test_other_organisation_sees_nothing(world: World) -> None:
    await world.grant()
    assert await world.visible(world.requester(world.lab)) == set()


async def test_any_external_reaches_every_external(world: World) -> None:
    await world.grant(any_external=True)
    assert await world.visible(world.requester(world.lab)) == {"1.1", "1.2", "1.5"}


async def test_listed_studies_only(world: World) -> None:
    await world.grant(study_instance_uids=("1.1",))
    assert await world.visible(world.requester(world.mercy)) == {"1.1"}


async def test_date_range_inclusive(world: World) -> None:
    await world.grant(study_date_from="2025-06-01", study_date_to="20250601")
    assert await world.visible(world.requester(world.mercy)) == {"1.2"}


async def test_starts_now_visible(world: World) -> None:
    await world.grant(starts_at=NOW)
    requester = world.requester(world.mercy)
    assert await world.visible(requester, NOW) == {"1.1", "1.2", "1.5"}
    assert await world.visible(requester, NOW - MICROSECOND) == set()


async def test_not_yet_started_hidden(world: World) -> None:
    await world.grant(starts_at=NOW + datetime.timedelta(days=1))
    assert await world.visible(world.requester(world.mercy)) == set()


async def test_ended_a_second_ago_hidden(world: World) -> None:
    await world.grant(starts_at=NOW - datetime.timedelta(days=10), ends_at=NOW - SECOND)
    assert await world.visible(world.requester(world.mercy)) == set()


async def test_end_is_exclusive(world: World) -> None:
    end = NOW + datetime.timedelta(days=1)
    await world.grant(ends_at=end)
    requester = world.requester(world.mercy)
    assert await world.visible(requester, end - MICROSECOND) == {"1.1", "1.2", "1.5"}
    assert await world.visible(requester, end) == set()


async def test_revoked_hidden_from_then_on(world: World) -> None:
    authorization_id = await world.grant()
    await revoke_authorization(world.connection, authorization_id, reason="patient asked", by="test", now=NOW)
    assert await world.visible(world.requester(world.mercy)) == set()


async def test_deleted_organisation_sees_nothing(world: World) -> None:
    await world.grant()
    requester = world.requester(world.mercy)
    await delete_organisation(world.connection, "Mercy", by="test", now=NOW)
    assert await world.visible(requester) == set()


async def test_external_without_organisation_sees_nothing(world: World) -> None:
    await world.grant(any_external=True)
    assert await world.visible(Requester(subject="nobody", affiliated=False)) == set()


async def test_stored_end_not_trusted_by_other_columns(world: World) -> None:
    authorization_id = await world.grant()
    await world.connection.execute(
        update(patient_authorization)
        .where(patient_authorization.c.authorization_id == authorization_id)
        .values(starts_at=NOW + SECOND)
    )
    assert await world.visible(world.requester(world.mercy)) == set()


async def test_emergency_access_shows_patient(world: World) -> None:
    requester = world.requester(world.mercy, Scope.READ, Scope.EMERGENCY)
    await open_emergency_access(
        world.connection,
        requester,
        patient_id="P2",
        issuer_of_patient_id=None,
        reason="unconscious patient",
        minutes=60,
        now=NOW,
    )
    assert await world.visible(requester) == {"1.3"}
    assert await world.visible(requester, NOW + datetime.timedelta(minutes=60)) == set()
    assert (
        await world.visible(world.requester(world.mercy, Scope.READ, Scope.EMERGENCY, subject="token t2"))
        == set()
    )
    assert await world.visible(world.requester(world.mercy)) == set()


async def test_emergency_access_closed_hidden(world: World) -> None:
    requester = world.requester(world.lab, Scope.READ, Scope.EMERGENCY)
    opened = await open_emergency_access(
        world.connection,
        requester,
        patient_id="P2",
        issuer_of_patient_id="",
        reason="stroke",
        minutes=30,
        now=NOW,
    )
    await close_emergency_access(world.connection, opened.access_id, requester, now=NOW + SECOND)
    assert await world.visible(requester, NOW + 2 * SECOND) == set()
