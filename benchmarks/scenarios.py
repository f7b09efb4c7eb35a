"""The requests of each scenario, derived from a data set plan and a seed.

Every scenario is a deterministic sequence: the same plan and seed give the same requests in
the same order, whatever server receives them.
"""

from __future__ import annotations

import datetime
import itertools
import random
import uuid
from collections.abc import Iterator

import orjson

from benchmarks.dataset import DataSetPlan, StudyPlan
from benchmarks.instances import InstanceTemplate, planned_instances
from benchmarks.measure import Request

DICOM_JSON = {"Accept": "application/dicom+json"}
WHOLE_INSTANCES = {"Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*'}
FRAMES = {"Accept": 'multipart/related; type="application/octet-stream"; transfer-syntax=*'}

QIDO_KINDS = (
    "patient_id",
    "patient_name_wildcard",
    "study_date_range",
    "modalities_in_study",
    "studies_page",
    "series_of_study",
    "instances_of_series",
)
"""The QIDO-RS query mix, sent in this order round after round."""

STUDY_LIST_LIMIT = 50
PAGE_SIZE = 25
DATE_RANGE_DAYS = 30


def stow_requests(plan: DataSetPlan, instances_per_request: int) -> list[Request]:
    """Render every instance of the plan into STOW-RS requests, study by study.

    The bodies are built before the clock starts, so the client spends no time encoding while
    the server is measured.
    """
    template = InstanceTemplate(plan)
    requests = []
    for number in range(plan.studies):
        study = plan.study(number)
        instances = [template.render(values) for values in planned_instances(plan, study)]
        for start in range(0, len(instances), instances_per_request):
            chunk = instances[start : start + instances_per_request]
            boundary = uuid.UUID(int=random.Random(f"{plan.seed}:{number}:{start}").getrandbits(128)).hex
            requests.append(
                Request(
                    kind="store",
                    method="POST",
                    path="studies",
                    headers={
                        "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}',
                        "Accept": "application/dicom+json",
                    },
                    content=_multipart(chunk, boundary),
                    instances=len(chunk),
                )
            )
    return requests


def _multipart(parts: list[bytes], boundary: str) -> bytes:
    pieces = []
    for part in parts:
        pieces.append(f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode("ascii"))
        pieces.append(part)
        pieces.append(b"\r\n")
    pieces.append(f"--{boundary}--\r\n".encode("ascii"))
    return b"".join(pieces)


def qido_requests(plan: DataSetPlan, seed: int) -> Iterator[Request]:
    """Yield the QIDO-RS mix forever: one query of each kind per round, values drawn from the plan."""
    rng = random.Random(f"qido:{seed}")
    for kind in itertools.cycle(QIDO_KINDS):
        study = plan.study(rng.randrange(plan.studies))
        yield _qido_request(plan, kind, study, rng)


def _qido_request(plan: DataSetPlan, kind: str, study: StudyPlan, rng: random.Random) -> Request:
    if kind == "patient_id":
        return _search(kind, "studies", {"PatientID": study.patient_id})
    if kind == "patient_name_wildcard":
        # Three letters of a stored family name match about one patient in a thousand.
        return _search(
            kind, "studies", {"PatientName": study.patient_name[:3] + "*", "limit": str(STUDY_LIST_LIMIT)}
        )
    if kind == "study_date_range":
        first = datetime.datetime.strptime(study.study_date, "%Y%m%d").date()
        last = first + datetime.timedelta(days=DATE_RANGE_DAYS)
        dates = f"{study.study_date}-{last:%Y%m%d}"
        return _search(kind, "studies", {"StudyDate": dates, "limit": str(STUDY_LIST_LIMIT)})
    if kind == "modalities_in_study":
        modality = rng.choice(study.modalities)
        offset = rng.randrange(8) * PAGE_SIZE
        params = {"ModalitiesInStudy": modality, "limit": str(PAGE_SIZE), "offset": str(offset)}
        return _search(kind, "studies", params)
    if kind == "studies_page":
        offset = rng.randrange(max(1, plan.studies - PAGE_SIZE))
        return _search(kind, "studies", {"limit": str(PAGE_SIZE), "offset": str(offset)})
    if kind == "series_of_study":
        return _search(kind, f"studies/{study.study_instance_uid}/series", {})
    series = rng.choice(study.series)
    path = f"studies/{study.study_instance_uid}/series/{series.series_instance_uid}/instances"
    return _search(kind, path, {})


def _search(kind: str, path: str, params: dict[str, str]) -> Request:
    return Request(kind=kind, method="GET", path=path, params=params, headers=DICOM_JSON)


def count_json_results(request: Request, body: bytes) -> int | None:
    """Return how many results a DICOM JSON array holds."""
    if not body:
        return 0
    value = orjson.loads(body)
    return len(value) if isinstance(value, list) else None


def count_stored_instances(request: Request, body: bytes) -> int | None:
    """Return how many instances a Store Instances Response lists in ReferencedSOPSequence."""
    if not body:
        return 0
    response = orjson.loads(body)
    return len(response.get("00081199", {}).get("Value", []))


def study_metadata_requests(plan: DataSetPlan, seed: int) -> Iterator[Request]:
    """Yield Retrieve Study Metadata requests for studies drawn from the plan."""
    rng = random.Random(f"metadata:{seed}")
    while True:
        study = plan.study(rng.randrange(plan.studies))
        yield Request(
            kind="study_metadata",
            method="GET",
            path=f"studies/{study.study_instance_uid}/metadata",
            headers=DICOM_JSON,
            instances=len(planned_instances(plan, study)),
        )


def study_retrieve_requests(plan: DataSetPlan, seed: int) -> Iterator[Request]:
    """Yield Retrieve Study requests for whole studies as multipart/related in the stored syntax."""
    rng = random.Random(f"wado:{seed}")
    while True:
        study = plan.study(rng.randrange(plan.studies))
        yield Request(
            kind="retrieve_study",
            method="GET",
            path=f"studies/{study.study_instance_uid}",
            headers=WHOLE_INSTANCES,
            instances=len(planned_instances(plan, study)),
        )


def frame_requests(plan: DataSetPlan, seed: int) -> Iterator[Request]:
    """Yield Retrieve Frames requests for frame 1 of instances drawn from the plan."""
    rng = random.Random(f"frames:{seed}")
    while True:
        study = plan.study(rng.randrange(plan.studies))
        series = rng.choice(study.series)
        sop_instance_uid = plan.sop_instance_uid(series, rng.randrange(series.instance_count))
        yield Request(
            kind="retrieve_frames",
            method="GET",
            path=(
                f"studies/{study.study_instance_uid}/series/{series.series_instance_uid}"
                f"/instances/{sop_instance_uid}/frames/1"
            ),
            headers=FRAMES,
            instances=1,
        )
