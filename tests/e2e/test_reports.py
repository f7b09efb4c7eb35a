"""The reports checked figure by figure against a small history with known results.

One archive of its own per backend contains the history: CT studies dated in the last sixty days
whose patients authorized sharing (A), chose an end before twelve months (B), revoked (C), never
authorized (D), declined (E), or have no PatientID (H); an MR study (F) and a CT study of last
year (G) that the report must leave out. An external organisation searches and retrieves, and
this archive's users search two peer archives (recorded through the audit API, as the federated
search records them). Every total, rate, reason and disclosure is compared with what that history
implies.
"""

from __future__ import annotations

import asyncio
import csv
import datetime
import io
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from pydicom.dataset import Dataset

from dicomweb_server.audit import AuditEntry, EventType, Outcome, TypeCode, Who
from dicomweb_server.audit.chain import append
from dicomweb_server.config import load_settings
from dicomweb_server.index.database import open_index
from tests.e2e.trail import entries
from tests.identity import AdminApi, bearer, store, unique
from tests.services import Archive, Backend, ServerProcess, own_scale_backend
from tests.testdata import synthetic_ct

TIMEOUT = 120.0
AS_STORED = 'multipart/related; type="application/dicom"; transfer-syntax=*'
TODAY = datetime.datetime.now(datetime.UTC).date()
PERIOD = {"from": (TODAY - datetime.timedelta(days=60)).isoformat(), "to": TODAY.isoformat()}
STRICT_CODES = {
    "A": ("G9340", None),
    "B": ("G9329", "ends too early"),
    "C": ("G9329", "revoked"),
    "D": ("G9329", "no authorization"),
    "E": ("G9329", "patient declined"),
    "H": ("G9329", "no authorization"),
}


def day(days_ago: int) -> str:
    return (TODAY - datetime.timedelta(days=days_ago)).strftime("%Y%m%d")


@dataclass
class History:
    archive: Archive
    server: ServerProcess
    admin: AdminApi
    organisation: str
    token: dict[str, Any]
    patients: dict[str, str] = field(default_factory=dict)
    studies: dict[str, Dataset] = field(default_factory=dict)
    authorizations: dict[str, str] = field(default_factory=dict)
    bytes_sent: dict[str, int] = field(default_factory=dict)

    def get(self, path: str, **params: str) -> httpx.Response:
        response = self.admin.http.get(path, params=params)
        assert response.status_code == 200, response.text
        return response


def _store(
    history: History, label: str, days_ago: int, *, modality: str = "CT", patient: bool = True
) -> None:
    patient_id = f"REPORT-{label}-{unique('p').split()[1]}"
    dataset = synthetic_ct(
        patient_id, study_date=day(days_ago), modality=modality, accession_number=f"ACC-{label}"
    )
    if not patient:
        del dataset.PatientID
    response = store(history.server, dataset)
    assert response.status_code == 200, response.text
    history.patients[label] = patient_id
    history.studies[label] = dataset


def _authorize(history: History) -> None:
    admin = history.admin
    for label in ("A", "C", "F", "G"):
        granted = admin.grant(patient_id=history.patients[label], organisations=[history.organisation])
        history.authorizations[label] = granted["id"]
    early = (TODAY + datetime.timedelta(days=30)).isoformat()
    history.authorizations["B"] = admin.grant(
        patient_id=history.patients["B"], any_external=True, ends_at=early
    )["id"]
    admin.revoke(history.authorizations["C"])
    refused = admin.http.post(
        "/admin/api/refusals", json={"patient_id": history.patients["E"], "reference": "refusal form"}
    )
    assert refused.status_code == 201, refused.text


def _external_traffic(history: History) -> None:
    headers = bearer(history.token["token"])
    server = history.server
    for patient in ("A", "A", "A", "D"):
        found = httpx.get(
            f"{server.dicomweb}/studies",
            params={"PatientID": history.patients[patient]},
            headers=headers,
            timeout=TIMEOUT,
        )
        assert len(found.json()) == (1 if patient == "A" else 0)
    study = history.studies["A"].StudyInstanceUID
    retrieved = httpx.get(
        f"{server.dicomweb}/studies/{study}", headers={**headers, "Accept": AS_STORED}, timeout=TIMEOUT
    )
    metadata = httpx.get(f"{server.dicomweb}/studies/{study}/metadata", headers=headers, timeout=TIMEOUT)
    assert (retrieved.status_code, metadata.status_code) == (200, 200)
    history.bytes_sent = {
        "RetrieveStudy": len(retrieved.content),
        "RetrieveStudyMetadata": len(metadata.content),
    }


def _peer_searches(archive: Archive) -> None:
    """Record three searches of peers and one retrieval, as the federated search records them."""

    async def record() -> None:
        index = await open_index(load_settings(environ=archive.settings_environment()))
        who = Who(subject="user dr-lee", organisation="archive")
        now = datetime.datetime.now(datetime.UTC)
        searches = [
            ("north", Outcome.SUCCESS, None),
            ("north", Outcome.SUCCESS, None),
            ("south", Outcome.SERIOUS_FAILURE, "timed out after 10 s"),
        ]
        recorded = [
            AuditEntry(
                event_type=EventType.FEDERATED_QUERY,
                who=who,
                event_time=now,
                action="FederatedSearchForStudies",
                type_code=TypeCode.FEDERATED_QUERY,
                peer=peer,
                outcome=outcome,
                failure_reason=reason,
                query="PatientID=X",
            )
            for peer, outcome, reason in searches
        ]
        recorded.append(
            AuditEntry(
                event_type=EventType.FEDERATED_RETRIEVE,
                who=who,
                event_time=now,
                action="FederatedRetrieveStudy",
                type_code=TypeCode.FEDERATED_RETRIEVE,
                peer="north",
            )
        )
        try:
            async with index.write() as connection:
                await append(connection, recorded)
        finally:
            await index.close()

    asyncio.run(record())


def _register_north(history: History) -> None:
    """Register peer north as acting for the external organisation, whose searches then count as north's."""
    body = {
        "name": "north",
        "url": "http://127.0.0.1:9/dicom-web",
        "token": "north-token",
        "as_organisation": history.organisation,
    }
    response = history.admin.http.post("/admin/api/peers", json=body)
    assert response.status_code == 201, response.text


@pytest.fixture(scope="module")
def history(
    backend: Backend, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[History]:
    with ExitStack() as stack:
        own = backend
        if backend.name == "scale":
            own = stack.enter_context(own_scale_backend(request.getfixturevalue("seaweedfs_service")))
        folder: Path = tmp_path_factory.mktemp("reports")
        archive = Archive(own, folder / "data", own.environment.get("DICOMWEB_INDEX_URL"))
        assert archive.run(["migrate"]).returncode == 0
        stack.callback(archive.stop_all)
        server = archive.start()
        admin = AdminApi(server)
        stack.callback(admin.close)
        organisation = admin.add_organisation(unique("Report Mercy"), affiliated=False)
        built = History(archive, server, admin, organisation, admin.create_token(organisation, "read"))
        for label, days_ago in (("A", 50), ("B", 40), ("C", 30), ("D", 20), ("E", 10), ("G", 400)):
            _store(built, label, days_ago)
        _store(built, "F", 15, modality="MR")
        _store(built, "H", 5, patient=False)
        _authorize(built)
        _external_traffic(built)
        _peer_searches(archive)
        _register_north(built)
        yield built


def _availability(history: History) -> dict[str, Any]:
    report: dict[str, Any] = history.get("/admin/api/reports/availability", **PERIOD).json()
    return report


def _by_label(history: History, report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    labels = {dataset.StudyInstanceUID: label for label, dataset in history.studies.items()}
    return {labels[item["study_instance_uid"]]: item for item in report["studies"]}


# The availability report


def test_availability_lists_ct_studies_of_period(history: History) -> None:
    assert sorted(_by_label(history, _availability(history))) == ["A", "B", "C", "D", "E", "H"]


def test_availability_strict_codes(history: History) -> None:
    studies = _by_label(history, _availability(history))
    assert {label: (item["strict"]["code"], item["strict"]["reason"]) for label, item in studies.items()} == (
        STRICT_CODES
    )
    assert studies["A"]["strict"]["authorization"] == history.authorizations["A"]


def test_availability_strict_totals(history: History) -> None:
    totals = _availability(history)["modes"]["strict"]
    assert (totals["studies"], totals["met"], totals["not_met"]) == (6, 1, 5)
    assert totals["not_met_by_reason"] == {
        "revoked": 1,
        "ends too early": 1,
        "patient declined": 1,
        "no authorization": 2,
    }
    assert totals["performance_rate"] == 0.1667


def test_availability_capability_totals(history: History) -> None:
    report = _availability(history)
    totals = report["modes"]["capability"]
    studies = _by_label(history, report)
    assert (totals["studies"], totals["met"], totals["not_met"]) == (6, 5, 1)
    assert totals["not_met_by_reason"] == {"no PatientID": 1, "no external organisation": 0}
    assert totals["performance_rate"] == 0.8333
    assert studies["H"]["capability"] == {"code": "G9329", "met": False, "reason": "no PatientID"}
    assert report["external_organisations"] == 1


def test_availability_twelve_months(history: History) -> None:
    study_a = _by_label(history, _availability(history))["A"]
    study_day = TODAY - datetime.timedelta(days=50)
    try:
        later = study_day.replace(year=study_day.year + 1)
    except ValueError:
        later = study_day.replace(year=study_day.year + 1, day=28)
    assert study_a["study_day"] == study_day.isoformat()
    assert study_a["required_until"] == f"{later + datetime.timedelta(days=1)}T00:00:00.000000Z"


def test_availability_reciprocity(history: History) -> None:
    reciprocity = _availability(history)["reciprocity"]
    assert reciprocity == {
        "searches_by_external_organisations": 4,
        "retrievals_by_external_organisations": 2,
        "external_organisations": [history.organisation],
        "searches_of_peers": 3,
        "searches_of_peers_answered": 2,
        "retrievals_from_peers": 1,
        "peers_searched": ["north", "south"],
        "peers": [
            {
                "peer": "north",
                "acts_as": history.organisation,
                "searches_by_peer": 4,
                "retrievals_by_peer": 2,
                "searches_of_peer": 2,
                "searches_of_peer_answered": 2,
                "retrievals_from_peer": 1,
            },
            {
                "peer": "south",
                "acts_as": None,
                "searches_by_peer": 0,
                "retrievals_by_peer": 0,
                "searches_of_peer": 1,
                "searches_of_peer_answered": 0,
                "retrievals_from_peer": 0,
            },
        ],
    }


def test_availability_cli_shows_each_peer(history: History) -> None:
    result = history.archive.run(["report", "availability", "--from", PERIOD["from"], "--to", PERIOD["to"]])
    assert result.returncode == 0, result.stderr
    assert (
        f"Peer north (acts as {history.organisation}): 4 searches and 2 retrievals of this archive; "
        "2 searches of it (2 answered) and 1 retrieval from it." in result.stdout
    )
    assert (
        "Peer south: 0 searches and 0 retrievals of this archive; 1 search of it (0 answered)"
        in result.stdout
    )


def test_availability_csv(history: History) -> None:
    text = history.get("/admin/api/reports/availability", **PERIOD, format="csv").text
    rows = list(csv.DictReader(io.StringIO(text)))
    labels = {dataset.StudyInstanceUID: label for label, dataset in history.studies.items()}
    assert {
        labels[row["study_instance_uid"]]: (row["strict_code"], row["strict_reason"] or None) for row in rows
    } == (STRICT_CODES)
    assert [row["capability_code"] for row in rows].count("G9340") == 5


def test_availability_cli_matches_api(history: History) -> None:
    result = history.archive.run(
        ["report", "availability", "--from", PERIOD["from"], "--to", PERIOD["to"], "--format", "json"]
    )
    assert result.returncode == 0, result.stderr
    from_cli = orjson.loads(result.stdout)
    from_api = _availability(history)
    assert from_cli["modes"] == from_api["modes"]
    assert from_cli["studies"] == from_api["studies"]
    table = history.archive.run(["report", "availability", "--from", PERIOD["from"], "--to", PERIOD["to"]])
    assert "6 studies, 1 met, 5 not met" in table.stdout
    assert "performance rate 16.7 %" in table.stdout


def test_availability_rejects_bad_period(history: History) -> None:
    response = history.admin.http.get(
        "/admin/api/reports/availability", params={"from": PERIOD["to"], "to": PERIOD["from"]}
    )
    assert response.status_code == 400
    assert "is after" in response.json()["message"]
    missing = history.admin.http.get("/admin/api/reports/availability", params={"from": PERIOD["from"]})
    assert missing.status_code == 400
    assert "to" in missing.json()["message"]


@pytest.mark.parametrize("report", ["availability", "disclosures"])
def test_reports_reject_last_representable_day(history: History, report: str) -> None:
    params = {"from": "9999-12-31", "to": "9999-12-31"}
    if report == "disclosures":
        params["patient_id"] = history.patients["A"]
    response = history.admin.http.get(f"/admin/api/reports/{report}", params=params)
    assert response.status_code == 400, response.text
    assert "9998-12-31" in response.json()["message"]


# The accounting of disclosures


def _accounting(history: History, label: str) -> dict[str, Any]:
    yesterday = (TODAY - datetime.timedelta(days=1)).isoformat()
    accounting: dict[str, Any] = history.get(
        "/admin/api/reports/disclosures",
        patient_id=history.patients[label],
        **{"from": yesterday, "to": PERIOD["to"]},
    ).json()
    return accounting


def test_disclosures_list_each_request(history: History) -> None:
    disclosures = _accounting(history, "A")["disclosures"]
    assert [item["disclosed"] for item in disclosures] == [
        "search results (study attributes)",
        "search results (study attributes)",
        "search results (study attributes)",
        "DICOM instances (images)",
        "metadata (all attributes, no pixel data)",
    ]
    for item in disclosures:
        assert item["organisation"] == history.organisation
        assert item["requester"] == f"token {history.token['id']}"
        assert item["purpose"] == "continuing care"
        assert item["legal_basis"] == "authorization"
        assert item["authorizations"] == [history.authorizations["A"]]
        assert [study["study_instance_uid"] for study in item["studies"]] == [
            history.studies["A"].StudyInstanceUID
        ]
        assert item["studies"][0]["accession_number"] == "ACC-A"
        assert item["studies"][0]["modalities"] == ["CT"]


def test_disclosures_count_instances_and_bytes(history: History) -> None:
    retrieval, metadata = _accounting(history, "A")["disclosures"][3:]
    assert (retrieval["instances"], retrieval["bytes"]) == (1, history.bytes_sent["RetrieveStudy"])
    assert retrieval["transfer_completed"] is True
    assert metadata["bytes"] == history.bytes_sent["RetrieveStudyMetadata"]


def test_disclosures_summary(history: History) -> None:
    accounting = _accounting(history, "A")
    (summary,) = accounting["summary"]
    assert (summary["organisation"], summary["purpose"], summary["disclosures"]) == (
        history.organisation,
        "continuing care",
        5,
    )
    assert summary["first"] == accounting["disclosures"][0]["date"]
    assert summary["last"] == accounting["disclosures"][-1]["date"]


def test_disclosures_none_without_results(history: History) -> None:
    for label in ("D", "B", "E"):
        assert _accounting(history, label)["disclosures"] == []


def test_disclosures_csv_and_cli(history: History) -> None:
    yesterday = (TODAY - datetime.timedelta(days=1)).isoformat()
    text = history.get(
        "/admin/api/reports/disclosures",
        patient_id=history.patients["A"],
        format="csv",
        **{"from": yesterday, "to": PERIOD["to"]},
    ).text
    rows = list(csv.DictReader(io.StringIO(text)))
    result = history.archive.run(
        [
            "audit",
            "disclosures",
            "--patient-id",
            history.patients["A"],
            "--from",
            yesterday,
            "--to",
            PERIOD["to"],
            "--format",
            "json",
        ]
    )

    assert [row["legal_basis"] for row in rows] == ["authorization"] * 5
    assert {row["study_instance_uid"] for row in rows} == {history.studies["A"].StudyInstanceUID}
    assert result.returncode == 0, result.stderr
    from_cli = [item["event_id"] for item in orjson.loads(result.stdout)["disclosures"]]
    assert from_cli == [row["event_id"] for row in rows]


def test_reports_recorded_as_audit_use(history: History) -> None:
    used = entries(history.server, event_type="audit-log-used")
    actions = {item["action"] for item in used}
    assert {"report.availability", "report.disclosures"} <= actions


# The sharing status of one study


def _sharing(history: History, label: str) -> dict[str, Any]:
    status: dict[str, Any] = history.get(
        f"/admin/api/studies/{history.studies[label].StudyInstanceUID}/sharing"
    ).json()
    return status


def test_sharing_statement_when_twelve_months(history: History) -> None:
    status = _sharing(history, "A")
    assert status["available_now"] is True
    assert status["reaches_twelve_months"] is True
    assert status["authorization"]["id"] == history.authorizations["A"]
    assert status["statement"].startswith("DATA AVAILABILITY: DICOM image data of this study are available")
    assert f"through {status['available_through_day']}" in status["statement"]
    assert status["statement_withheld_because"] is None


def test_sharing_no_statement_when_short(history: History) -> None:
    status = _sharing(history, "B")
    assert (status["available_now"], status["reaches_twelve_months"], status["statement"]) == (
        True,
        False,
        None,
    )
    assert status["available_through_day"] == (TODAY + datetime.timedelta(days=30)).isoformat()
    assert "before twelve months after the study" in status["statement_withheld_because"]


def test_sharing_no_statement_when_revoked_or_none(history: History) -> None:
    revoked, never = _sharing(history, "C"), _sharing(history, "D")
    assert (revoked["available_now"], revoked["statement"]) == (False, None)
    assert "revoked" in revoked["statement_withheld_because"]
    assert (never["available_now"], never["statement"]) == (False, None)
    assert never["statement_withheld_because"].startswith("No authorization covering this study is in force")


def test_sharing_rejects_csv(history: History) -> None:
    uid = history.studies["A"].StudyInstanceUID
    response = history.admin.http.get(f"/admin/api/studies/{uid}/sharing", params={"format": "csv"})
    assert response.status_code == 400, response.text
    assert "invalid format 'csv'" in response.json()["message"]


def test_sharing_cli_prints_statement(history: History) -> None:
    result = history.archive.run(["report", "sharing", history.studies["A"].StudyInstanceUID])
    assert result.returncode == 0, result.stderr
    assert "DATA AVAILABILITY:" in result.stdout
    assert "The twelve months after the study run through " in result.stdout
    missing = history.archive.run(["report", "sharing", "1.2.3.999"])
    assert missing.returncode == 1
    assert "no study with StudyInstanceUID '1.2.3.999'" in missing.stderr
