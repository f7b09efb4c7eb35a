"""Orthanc 1.10 with its DICOMweb plugin as a peer, both ways, inside a network namespace.

Our federated search finds, retrieves and imports studies Orthanc holds. Orthanc has our server
in its DICOMweb servers, with a bearer token we issued in its HttpHeaders. It queries and
retrieves from ours through its own REST API (/dicom-web/servers/{name}/qido, /retrieve and
/get), and gets only what our authorizations let its organisation see. Orthanc listens only
inside the namespace, and our server for this module listens on the host end of the veth pair.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from pydicom.dataset import Dataset

from tests.identity import store
from tests.orthanc import Namespace, Orthanc, namespace_for_tests, running_orthanc
from tests.services import Backend
from tests.sites import Site, own_backend, start_site
from tests.testdata import synthetic_ct, to_bytes

RUN = uuid.uuid4().hex[:8]
FEDERATION = "/federation/dicom-web"
SOURCE = "00111001"
AS_STORED = 'multipart/related; type="application/dicom"; transfer-syntax=*'
OCTETS = "multipart/related; type=application/octet-stream"


def patient(key: str) -> str:
    return f"{key}-{RUN}"


def orthanc_uids(results: list[dict[str, Any]]) -> list[str]:
    """Return the StudyInstanceUIDs of the QIDO results Orthanc relays.

    Orthanc 1.10 (DICOMweb plugin 1.7) relays them in a form where Value is the value itself,
    not a list; a plain DICOM JSON list is read too.
    """
    values = [item["0020000D"]["Value"] for item in results]
    return [value[0] if isinstance(value, list) else value for value in values]


@dataclass
class Exchange:
    """Our site and Orthanc, each registered at the other, and the studies each holds."""

    site: Site
    orthanc: Orthanc
    studies: dict[str, Dataset] = field(default_factory=dict)

    def uid(self, label: str) -> str:
        return str(self.studies[label].StudyInstanceUID)

    def orthanc_call(self, resource: str, body: dict[str, Any]) -> Any:
        response = self.orthanc.http.post(f"/dicom-web/servers/ours/{resource}", json=body)
        return response


@pytest.fixture(scope="session")
def orthanc_namespace() -> Iterator[Namespace]:
    with namespace_for_tests() as namespace:
        yield namespace


@pytest.fixture(scope="module")
def orthanc(
    backend: Backend, orthanc_namespace: Namespace, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Orthanc]:
    """An Orthanc of each backend's own, so the studies of one run never meet the other's."""
    with running_orthanc(orthanc_namespace, tmp_path_factory.mktemp(f"orthanc-{backend.name}")) as started:
        yield started


@pytest.fixture(scope="module")
def exchange(
    backend: Backend,
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    orthanc: Orthanc,
) -> Iterator[Exchange]:
    with own_backend(backend, request) as own:
        host = orthanc.namespace.host_address
        site = start_site("ours", own, tmp_path_factory.mktemp("ours"), host=host)
        try:
            world = Exchange(site, orthanc)
            _link(world)
            _fill(world)
            yield world
        finally:
            site.close()


def _link(world: Exchange) -> None:
    site, orthanc = world.site, world.orthanc
    site.admin.add_organisation(f"Orthanc site {RUN}", affiliated=False)
    token = site.token(f"Orthanc site {RUN}", "read")
    orthanc.add_dicomweb_server("ours", site.server.dicomweb + "/", {"Authorization": f"Bearer {token}"})
    # Orthanc's REST API has authentication off inside the namespace; the token is sent and ignored.
    added = site.request(
        "POST",
        "/admin/api/peers",
        json={"name": "orthanc", "url": orthanc.dicomweb, "token": "not-checked-by-orthanc", "timeout": 10},
    )
    assert added.status_code == 201, added.text


def _fill(world: Exchange) -> None:
    site, orthanc = world.site, world.orthanc
    for label in ("AT_ORTHANC", "IMPORT_ME"):
        dataset = synthetic_ct(
            patient(label), accession_number=f"O{RUN}", issuer_of_patient_id="ORTHANC-SITE"
        )
        orthanc.store(to_bytes(dataset))
        world.studies[label] = dataset
    for label in ("SHARED", "PRIVATE"):
        dataset = synthetic_ct(patient(label), accession_number=f"U{RUN}")
        response = store(site.server, dataset)
        assert response.status_code == 200, response.text
        world.studies[label] = dataset
    site.admin.grant(patient_id=patient("SHARED"), organisations=[f"Orthanc site {RUN}"])


def test_federated_search_finds_orthanc(exchange: Exchange) -> None:
    site = exchange.site
    uid = exchange.uid("AT_ORTHANC")

    response = site.request("GET", f"{FEDERATION}/studies", params={"PatientID": patient("AT_ORTHANC")})

    assert response.status_code == 200, response.text
    assert "warning" not in response.headers
    results = response.json()
    assert [item[SOURCE]["Value"][0] for item in results] == ["orthanc"]
    assert results[0]["0020000D"]["Value"] == [uid]
    assert results[0]["00081190"]["Value"] == [f"{site.server.url}{FEDERATION}/peers/orthanc/studies/{uid}"]


def test_federated_search_empty_at_orthanc(exchange: Exchange) -> None:
    response = exchange.site.request("GET", f"{FEDERATION}/studies", params={"PatientID": patient("NOBODY")})

    assert response.status_code == 200
    assert response.json() == []
    assert "warning" not in response.headers


def test_federated_series_at_orthanc(exchange: Exchange) -> None:
    dataset = exchange.studies["AT_ORTHANC"]

    response = exchange.site.request("GET", f"{FEDERATION}/studies/{dataset.StudyInstanceUID}/series")

    assert response.status_code == 200, response.text
    assert [item["0020000E"]["Value"][0] for item in response.json()] == [dataset.SeriesInstanceUID]


def test_retrieve_orthanc_instance_through_us(exchange: Exchange) -> None:
    site = exchange.site
    dataset = exchange.studies["AT_ORTHANC"]
    path = f"{FEDERATION}/peers/orthanc/studies/{dataset.StudyInstanceUID}"

    response = site.request("GET", path, headers={**site.server.headers, "Accept": AS_STORED})

    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("multipart/related")
    assert dataset.PixelData in response.content
    assert str(dataset.SOPInstanceUID).encode() in response.content


def test_retrieve_orthanc_metadata_and_pixels(exchange: Exchange) -> None:
    site = exchange.site
    dataset = exchange.studies["AT_ORTHANC"]

    metadata = site.request("GET", f"{FEDERATION}/peers/orthanc/studies/{dataset.StudyInstanceUID}/metadata")
    pixel_uri = metadata.json()[0]["7FE00010"]["BulkDataURI"]
    pixels = site.request(
        "GET", pixel_uri.removeprefix(site.server.url), headers={**site.server.headers, "Accept": OCTETS}
    )

    assert metadata.status_code == 200, metadata.text
    assert metadata.json()[0]["00080018"]["Value"] == [dataset.SOPInstanceUID]
    assert pixel_uri.startswith(f"{site.server.url}{FEDERATION}/peers/orthanc/")
    assert pixels.status_code == 200, pixels.text
    assert dataset.PixelData in pixels.content


def test_import_from_orthanc(exchange: Exchange) -> None:
    site = exchange.site
    dataset = exchange.studies["IMPORT_ME"]

    response = site.request(
        "POST",
        f"{FEDERATION}/peers/orthanc/studies/{dataset.StudyInstanceUID}/import",
        headers={**site.server.headers, "Accept": "application/dicom+json"},
    )
    local = site.request("GET", "/dicom-web/studies", params={"PatientID": patient("IMPORT_ME")})

    assert response.status_code == 200, response.text
    assert [item["0020000D"]["Value"][0] for item in local.json()] == [dataset.StudyInstanceUID]
    imports = [entry for entry in site.audit("import") if entry["peer"] == "orthanc"]
    assert [entry["studies"][0]["study_instance_uid"] for entry in imports] == [dataset.StudyInstanceUID]


def test_orthanc_finds_authorized_only(exchange: Exchange) -> None:
    response = exchange.orthanc_call("qido", {"Uri": "/studies", "Arguments": {"AccessionNumber": f"U{RUN}"}})

    assert response.status_code == 200, response.text
    assert orthanc_uids(response.json()) == [exchange.uid("SHARED")]


def test_orthanc_private_search_empty(exchange: Exchange) -> None:
    response = exchange.orthanc_call(
        "qido", {"Uri": "/studies", "Arguments": {"PatientID": patient("PRIVATE")}}
    )

    assert response.status_code == 200, response.text
    assert response.json() == []


def test_orthanc_gets_authorized_metadata(exchange: Exchange) -> None:
    shared = exchange.orthanc_call("get", {"Uri": f"/studies/{exchange.uid('SHARED')}/metadata"})
    private = exchange.orthanc_call("get", {"Uri": f"/studies/{exchange.uid('PRIVATE')}/metadata"})

    assert shared.status_code == 200, shared.text
    assert shared.json()[0]["0020000D"]["Value"] == [exchange.uid("SHARED")]
    assert private.status_code != 200


def test_orthanc_retrieves_authorized_only(exchange: Exchange) -> None:
    shared = exchange.orthanc_call("retrieve", {"Resources": [{"Study": exchange.uid("SHARED")}]})
    private = exchange.orthanc_call("retrieve", {"Resources": [{"Study": exchange.uid("PRIVATE")}]})

    held = exchange.orthanc.study_uids()
    assert shared.status_code == 200, shared.text
    assert exchange.uid("SHARED") in held
    assert exchange.uid("PRIVATE") not in held
    assert private.status_code != 200


def test_orthanc_requests_audited(exchange: Exchange) -> None:
    exchange.orthanc_call("qido", {"Uri": "/studies", "Arguments": {"PatientID": patient("SHARED")}})

    queries = [entry for entry in exchange.site.audit("query") if entry["requester"]["external"]]
    assert queries
    assert queries[-1]["requester"]["organisation"] == f"Orthanc site {RUN}"
