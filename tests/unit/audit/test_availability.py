"""The counting modes of the availability report and the sharing statement, case by case."""

from __future__ import annotations

import datetime
from zoneinfo import ZoneInfo

import pytest

from dicomweb_server.audit.availability import (
    CoveringAuthorization,
    StudyStatus,
    _classify_capability,
    _classify_strict,
    parse_period,
)
from dicomweb_server.consent import periods

UTC = ZoneInfo("UTC")
STUDY_DAY = datetime.date(2026, 3, 10)
REQUIRED = periods.required_until(STUDY_DAY, UTC)
NOW = datetime.datetime(2026, 6, 1, tzinfo=datetime.UTC)
START = datetime.datetime(2026, 3, 10, 9, tzinfo=datetime.UTC)


def status(patient_id: str | None = "P1") -> StudyStatus:
    return StudyStatus("1.2.3", patient_id, "", None, "20260310", STUDY_DAY, REQUIRED)


def covering(
    ends_at: datetime.datetime = REQUIRED,
    revoked_at: datetime.datetime | None = None,
    starts_at: datetime.datetime = START,
) -> CoveringAuthorization:
    return CoveringAuthorization("auth-1", starts_at, ends_at, revoked_at)


@pytest.mark.parametrize(
    ("authorizations", "refused", "expected"),
    [
        ([covering()], False, ("G9340", None)),
        ([covering(revoked_at=REQUIRED + datetime.timedelta(days=1))], False, ("G9340", None)),
        ([covering(revoked_at=NOW - datetime.timedelta(days=1))], False, ("G9329", "revoked")),
        ([covering(revoked_at=NOW - datetime.timedelta(days=1))], True, ("G9329", "revoked")),
        ([covering(ends_at=REQUIRED - datetime.timedelta(seconds=1))], False, ("G9329", "ends too early")),
        ([covering(starts_at=NOW + datetime.timedelta(days=1))], False, ("G9329", "no authorization")),
        ([], True, ("G9329", "patient declined")),
        ([], False, ("G9329", "no authorization")),
    ],
)
def test_strict_mode_case(
    authorizations: list[CoveringAuthorization], refused: bool, expected: tuple[str, str | None]
) -> None:
    item = status()
    _classify_strict(item, authorizations, {("P1", "")} if refused else set(), NOW)
    assert (item.strict_code, item.strict_reason) == expected


def test_strict_mode_names_authorization() -> None:
    item = status()
    _classify_strict(item, [covering(ends_at=REQUIRED - datetime.timedelta(days=1)), covering()], set(), NOW)
    assert item.strict_authorization == "auth-1"


@pytest.mark.parametrize(
    ("patient_id", "organisations", "expected"),
    [
        ("P1", 2, ("G9340", None)),
        (None, 2, ("G9329", "no PatientID")),
        ("P1", 0, ("G9329", "no external organisation")),
    ],
)
def test_capability_mode_case(
    patient_id: str | None, organisations: int, expected: tuple[str, str | None]
) -> None:
    item = status(patient_id)
    _classify_capability(item, organisations)
    assert (item.capability_code, item.capability_reason) == expected


def test_twelve_months_end_after_last_day() -> None:
    assert REQUIRED == datetime.datetime(2027, 3, 11, tzinfo=datetime.UTC)


def test_period_rejects_reversed_days() -> None:
    with pytest.raises(ValueError, match="is after"):
        parse_period("2026-02-01", "2026-01-01", UTC)


@pytest.mark.parametrize(
    ("first", "last", "zone_name"),
    [
        ("9999-12-31", "9999-12-31", "UTC"),
        ("9998-12-31", "9999-01-01", "UTC"),
        ("0001-01-01", "0001-01-31", "Asia/Tokyo"),
    ],
)
def test_period_rejects_unrepresentable_days(first: str, last: str, zone_name: str) -> None:
    with pytest.raises(ValueError, match="give days from 0001-01-02 to 9998-12-31"):
        parse_period(first, last, ZoneInfo(zone_name))


def test_period_before_year_1000() -> None:
    period = parse_period("0999-01-01", "0999-01-31", UTC)
    assert period.first == datetime.date(999, 1, 1)
    assert period.ends_at == datetime.datetime(999, 2, 1, tzinfo=datetime.UTC)


def test_period_accepts_dicom_dates() -> None:
    period = parse_period("20260101", "2026-01-31", ZoneInfo("Europe/Paris"))
    assert period.starts_at == datetime.datetime(2025, 12, 31, 23, tzinfo=datetime.UTC)
    assert period.ends_at == datetime.datetime(2026, 1, 31, 23, tzinfo=datetime.UTC)
