"""Several worker processes serving one port, on one index and one object store."""

from __future__ import annotations

import signal
from collections.abc import Callable

from dicomweb_client.api import DICOMwebClient

from tests.services import ServerProcess
from tests.testdata import synthetic_ct


def test_workers_store_and_find(server_factory: Callable[..., ServerProcess], patient_id: str) -> None:
    server = server_factory({"DICOMWEB_WORKERS": "2"})
    client = DICOMwebClient(server.dicomweb, headers=dict(server.headers))
    datasets = [synthetic_ct(patient_id, instance_number=number) for number in range(1, 9)]

    for dataset in datasets:
        client.store_instances([dataset])

    found = client.search_for_instances(search_filters={"PatientID": patient_id})
    assert len(found) == len(datasets)
    assert server.stop(signal.SIGTERM) == 0
