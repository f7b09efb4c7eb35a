"""What the consent filter costs QIDO-RS: the same searches by an affiliated and an external requester.

The script starts our server on a backend (``benchmarks.servers.deployment``) and stores a data
set of CT studies: CT_small.dcm of the shared test files under new UIDs, several studies per
patient. It registers organisations and records authorizations through the admin API. Then it
sends one mix of searches twice per round: once with an affiliated token, whose predicate is
``true``, and once with the token of an external organisation, whose predicate is the consent
EXISTS subquery. Rounds alternate the two requesters, so drifting load on the machine touches
both alike. It prints a Markdown table of latencies per search and the ratio of medians.

Run from the repository root::

    python -m benchmarks.consent_filter --backend embedded --studies 5000
    python -m benchmarks.consent_filter --backend scale --studies 5000

Authorizations: the external organisation measured is authorized for ``--authorized`` of the
patients (all studies); other external organisations hold authorizations for most of the other
patients, so the authorization table is not trivially small.
"""

from __future__ import annotations

import argparse
import io
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
from pydicom.uid import generate_uid

from benchmarks.machine import describe_machine, load_average
from benchmarks.servers import BACKENDS, deployment
from tests.identity import AdminApi
from tests.services import ServerProcess
from tests.testdata import read

INSTANCES_PER_REQUEST = 50
TIMEOUT = 300.0


@dataclass(frozen=True)
class Search:
    name: str
    path: str
    params: dict[str, str]


def searches(patients: list[str], authorized: list[str], rng: random.Random) -> Iterator[Search]:
    """Yield the searches of one round: listings, one patient, dates, names, series, instances."""
    yield Search("studies, first 100", "/studies", {"limit": "100"})
    yield Search("studies, offset 200", "/studies", {"limit": "100", "offset": "200"})
    yield Search("studies of an authorized patient", "/studies", {"PatientID": rng.choice(authorized)})
    yield Search("studies of another patient", "/studies", {"PatientID": rng.choice(patients)})
    yield Search("studies in a month", "/studies", {"StudyDate": "20230301-20230331", "limit": "100"})
    yield Search("studies by name prefix", "/studies", {"PatientName": "Bench^P0001*", "limit": "100"})
    yield Search("series, CT, first 100", "/series", {"Modality": "CT", "limit": "100"})
    yield Search("instances, first 100", "/instances", {"limit": "100"})


def _part10(patient_id: str, study_date: str) -> bytes:
    dataset = read("modalities/ct/CT_small.dcm")
    dataset.PatientID = patient_id
    dataset.PatientName = f"Bench^{patient_id}"
    dataset.StudyInstanceUID = generate_uid()
    dataset.SeriesInstanceUID = generate_uid()
    dataset.SOPInstanceUID = generate_uid()
    dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
    dataset.StudyDate = study_date
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def load(server: ServerProcess, studies: int, studies_per_patient: int, rng: random.Random) -> list[str]:
    """Store the studies; return the PatientIDs."""
    patients = [f"P{number:06d}" for number in range(studies // studies_per_patient)]
    boundary = f"bench-{uuid.uuid4().hex}"
    batch: list[bytes] = []
    with httpx.Client(headers=server.headers, timeout=TIMEOUT) as client:
        for number in range(len(patients) * studies_per_patient):
            day = rng.randrange(365)
            study_date = time.strftime("%Y%m%d", time.gmtime(1672531200 + day * 86400))
            batch.append(_part10(patients[number // studies_per_patient], study_date))
            if len(batch) == INSTANCES_PER_REQUEST:
                _store(client, server, batch, boundary)
                batch = []
        if batch:
            _store(client, server, batch, boundary)
    return patients


def _store(client: httpx.Client, server: ServerProcess, parts: list[bytes], boundary: str) -> None:
    body = bytearray()
    for part in parts:
        body += f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + part + b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    response = client.post(
        f"{server.dicomweb}/studies",
        content=bytes(body),
        headers={
            "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}',
            "Accept": "application/dicom+json",
        },
    )
    if response.status_code != 200:
        raise RuntimeError(f"storing the data set failed with {response.status_code}: {response.text[:500]}")


def authorize(
    admin: AdminApi, patients: list[str], authorized: int, rng: random.Random
) -> tuple[dict[str, str], dict[str, str], list[str]]:
    """Register organisations and record authorizations; return both tokens and the authorized patients."""
    staff = admin.add_organisation(f"Bench Radiology {uuid.uuid4().hex[:6]}", affiliated=True)
    measured = admin.add_organisation(f"Bench Clinic {uuid.uuid4().hex[:6]}", affiliated=False)
    others = [
        admin.add_organisation(f"Bench Other {n} {uuid.uuid4().hex[:6]}", affiliated=False) for n in range(5)
    ]
    shuffled = patients[:]
    rng.shuffle(shuffled)
    chosen = shuffled[:authorized]
    for patient_id in chosen:
        admin.grant(patient_id=patient_id, organisations=[measured])
    for patient_id in shuffled[authorized : authorized + len(patients) // 2]:
        admin.grant(patient_id=patient_id, organisations=[rng.choice(others)])
    return admin.token_headers(staff, "read"), admin.token_headers(measured, "read"), chosen


@dataclass
class Timings:
    seconds: dict[tuple[str, str], list[float]]
    results: dict[tuple[str, str], list[int]]


def measure(
    server: ServerProcess,
    requesters: dict[str, dict[str, str]],
    patients: list[str],
    authorized: list[str],
    rounds: int,
    rng: random.Random,
) -> Timings:
    timings = Timings({}, {})
    with httpx.Client(timeout=TIMEOUT) as client:
        for round_number in range(rounds + 1):
            order = list(requesters.items())
            if round_number % 2:
                order.reverse()
            plan = list(searches(patients, authorized, rng))
            for who, headers in order:
                for search in plan:
                    started = time.perf_counter()
                    response = client.get(
                        f"{server.dicomweb}{search.path}", params=search.params, headers=headers
                    )
                    elapsed = time.perf_counter() - started
                    if response.status_code != 200:
                        raise RuntimeError(
                            f"{search.name} as {who}: {response.status_code} {response.text[:300]}"
                        )
                    if round_number == 0:
                        continue  # the first round warms caches and connections
                    timings.seconds.setdefault((search.name, who), []).append(elapsed)
                    timings.results.setdefault((search.name, who), []).append(len(response.json()))
    return timings


def report(timings: Timings, names: list[str]) -> str:
    lines = [
        "| search | affiliated median ms | affiliated p95 ms | external median ms | external p95 ms "
        "| ratio of medians | results (affiliated / external) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for name in names:
        affiliated = sorted(timings.seconds[(name, "affiliated")])
        external = sorted(timings.seconds[(name, "external")])
        ratio = statistics.median(external) / statistics.median(affiliated)
        counts = " / ".join(str(_typical(timings.results[(name, who)])) for who in ("affiliated", "external"))
        lines.append(
            f"| {name} | {_ms(statistics.median(affiliated))} | {_ms(_p95(affiliated))} | "
            f"{_ms(statistics.median(external))} | {_ms(_p95(external))} | {ratio:.2f} | {counts} |"
        )
    return "\n".join(lines)


def _typical(counts: list[int]) -> int:
    return int(statistics.median(counts))


def _p95(values: list[float]) -> float:
    return values[min(len(values) - 1, int(round(0.95 * (len(values) - 1))))]


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.consent_filter", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--backend", choices=BACKENDS, default="embedded")
    parser.add_argument("--studies", type=int, default=5000, help="studies stored, one instance each")
    parser.add_argument("--studies-per-patient", type=int, default=4)
    parser.add_argument(
        "--authorized", type=int, default=100, help="patients authorized for the measured organisation"
    )
    parser.add_argument(
        "--rounds", type=int, default=30, help="measured rounds of the search mix per requester"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--work-dir", type=Path, default=Path(tempfile.gettempdir()) / "dicomweb-consent-bench"
    )
    arguments = parser.parse_args(argv)

    rng = random.Random(arguments.seed)
    folder = arguments.work_dir / f"{arguments.backend}-{uuid.uuid4().hex[:6]}"
    with deployment(arguments.backend, folder) as running:
        server = running.server
        started = time.perf_counter()
        patients = load(server, arguments.studies, arguments.studies_per_patient, rng)
        loaded = time.perf_counter() - started
        admin = AdminApi(server)
        try:
            affiliated, external, chosen = authorize(admin, patients, arguments.authorized, rng)
        finally:
            admin.close()
        load_before = load_average()
        timings = measure(
            server, {"affiliated": affiliated, "external": external}, patients, chosen, arguments.rounds, rng
        )
        load_after = load_average()

    machine = describe_machine(arguments.work_dir)
    names = [search.name for search in searches(patients, chosen, random.Random(0))]
    print(
        f"Backend {arguments.backend}: {len(patients) * arguments.studies_per_patient} studies of "
        f"{len(patients)} patients, stored in {loaded:.0f} s; the external organisation is authorized for "
        f"{len(chosen)} patients, other organisations for {len(patients) // 2}."
    )
    print(
        f"Machine: {machine['cores']} cores, {machine['cpu']}, Python {machine['python']}, "
        f"commit {machine['code']['commit']}; load average {load_before[0]:.2f} before, "
        f"{load_after[0]:.2f} after."
    )
    print(f"{arguments.rounds} rounds per requester, one request at a time.\n")
    print(report(timings, names))
    return 0


if __name__ == "__main__":
    sys.exit(main())
