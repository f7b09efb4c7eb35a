"""WADO-RS retrieval against a live server: instances, transfer syntaxes, metadata and 404s.

Instances are copies of the shared test files under new UIDs (see ``tests.e2e.copies``), stored
once per backend. Pixel data sent in Explicit VR Little Endian is compared with what pydicom
decodes from the original, with a tolerance only for lossy files whose decoders disagree.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pydicom
import pytest
from dicomweb_client.api import DICOMwebClient
from pydicom.uid import generate_uid

from tests.e2e.copies import Copy, copy_with_new_uids
from tests.e2e.dicomweb_http import get, parse_multipart, store
from tests.services import ServerProcess
from tests.testdata import read, synthetic_ct, to_bytes

EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1"
JPEG_BASELINE = "1.2.840.10008.1.2.4.50"
MULTIPART_DICOM = 'multipart/related; type="application/dicom"'
MULTIPART_DICOM_AS_STORED = 'multipart/related; type="application/dicom"; transfer-syntax=*'

DECODABLE = (
    "transfer-syntaxes/deflated/image_dfl.dcm",
    "transfer-syntaxes/explicit-vr-be/MR_small_bigendian.dcm",
    "transfer-syntaxes/implicit-vr-le/MR_small_implicit.dcm",
    "transfer-syntaxes/htj2k/HTJ2K_08_RGB.dcm",
    "transfer-syntaxes/htj2k-lossless/HTJ2KLossless_08_RGB.dcm",
    "transfer-syntaxes/jpeg-baseline/SC_jpeg_no_color_transform.dcm",
    "transfer-syntaxes/jpeg-baseline/SC_rgb_jpeg_dcmtk.dcm",
    "transfer-syntaxes/jpeg-extended-12bit/JPGExtended.dcm",
    "transfer-syntaxes/jpeg-lossless-p14/JPEGLossless_1s_1f_u_16_12.dcm",
    "transfer-syntaxes/jpeg-lossless-sv1/CT-JPEGLosslessSV1.dcm",
    "transfer-syntaxes/jpeg-lossless-sv1/SC_rgb_jpeg_gdcm.dcm",
    "transfer-syntaxes/jpeg-ls-lossless/MR_small_jpeg_ls_lossless.dcm",
    "transfer-syntaxes/jpeg-ls-near-lossless/CT1_JLSN.dcm",
    "transfer-syntaxes/jpeg2000/RG3_J2KI.dcm",
    "transfer-syntaxes/jpeg2000-lossless/MR_small_jp2klossless.dcm",
    "transfer-syntaxes/jpeg2000-lossless/US1_J2KR.dcm",
    "transfer-syntaxes/jpeg2000-lossless/emri_small_jpeg_2k_lossless.dcm",
    "transfer-syntaxes/rle/MR_small_RLE.dcm",
    "modalities/us/US-PAL-8-10x-echo.dcm",
    "modalities/us/examples_ybr_color.dcm",
)
"""Files stored in a syntax other than Explicit VR Little Endian that the server can convert."""

UNDECODABLE = (
    "transfer-syntaxes/jpeg-xl/will-jxl.dcm",
    "transfer-syntaxes/deflated-image-frame/liver_deflate.dcm",
)
"""Files whose pixel data no installed pydicom plugin decodes (JPEG XL, Deflated Image Frame)."""

EXPLICIT = ("modalities/mr/emri_small.dcm", "modalities/ct/CT_small.dcm")


@pytest.fixture(scope="module")
def copies(server: ServerProcess) -> dict[str, Copy]:
    """Store a copy of every file above under new UIDs, one STOW-RS request each."""
    stored = {}
    for relative in DECODABLE + UNDECODABLE + EXPLICIT:
        copy = copy_with_new_uids(relative)
        response = store(server, [copy.data])
        assert response.status_code == 200, (relative, response.text)
        stored[relative] = copy
    return stored


def _single_instance(server: ServerProcess, copy: Copy, accept: str) -> tuple[dict[str, str], bytes]:
    response = get(server, copy.instance_path, headers={"Accept": accept})
    assert response.status_code == 200, (copy.relative, response.text)
    (part,) = parse_multipart(response)
    return part.headers, part.content


def _tolerance(copy: Copy) -> float:
    """Pixel tolerance: zero unless the lossy decoders the manifest tried disagree on this file."""
    decoding = copy.entry["decoding"]
    if decoding.get("plugins_agree") is False:
        return float(decoding.get("max_abs_diff") or 0)
    return 0.0


def test_retrieve_as_stored_returns_stored_bytes(server: ServerProcess, copies: dict[str, Copy]) -> None:
    for copy in copies.values():
        headers, content = _single_instance(server, copy, MULTIPART_DICOM_AS_STORED)
        assert content == copy.data, copy.relative
        assert headers["content-type"] == f"application/dicom; transfer-syntax={copy.transfer_syntax_uid}"


@pytest.mark.parametrize("relative", DECODABLE)
def test_retrieve_default_converts_to_explicit_little_endian(
    server: ServerProcess, copies: dict[str, Copy], relative: str
) -> None:
    copy = copies[relative]
    headers, content = _single_instance(server, copy, MULTIPART_DICOM)
    assert headers["content-type"] == f"application/dicom; transfer-syntax={EXPLICIT_VR_LITTLE_ENDIAN}"

    returned = pydicom.dcmread(io.BytesIO(content))
    assert returned.file_meta.TransferSyntaxUID == EXPLICIT_VR_LITTLE_ENDIAN
    assert returned.SOPInstanceUID == copy.sop_instance_uid
    assert returned.SeriesInstanceUID == copy.series_instance_uid

    expected = pydicom.dcmread(io.BytesIO(copy.data)).pixel_array
    actual = returned.pixel_array
    assert actual.shape == expected.shape
    difference = np.abs(actual.astype(np.int64) - expected.astype(np.int64)).max()
    assert difference <= _tolerance(copy)


@pytest.mark.parametrize("relative", EXPLICIT)
def test_retrieve_default_sends_explicit_little_endian_as_stored(
    server: ServerProcess, copies: dict[str, Copy], relative: str
) -> None:
    _, content = _single_instance(server, copies[relative], MULTIPART_DICOM)
    assert content == copies[relative].data


@pytest.mark.parametrize("relative", UNDECODABLE)
def test_retrieve_undecodable_is_406_naming_syntaxes(
    server: ServerProcess, copies: dict[str, Copy], relative: str
) -> None:
    copy = copies[relative]
    response = get(server, copy.instance_path, headers={"Accept": MULTIPART_DICOM})
    assert response.status_code == 406
    message = response.json()["message"]
    assert copy.transfer_syntax_uid in message
    assert "transfer-syntax=*" in message


def test_retrieve_unproducible_syntax_is_406(server: ServerProcess, copies: dict[str, Copy]) -> None:
    copy = copies["modalities/ct/CT_small.dcm"]
    accept = f"{MULTIPART_DICOM}; transfer-syntax={JPEG_BASELINE}"
    response = get(server, copy.instance_path, headers={"Accept": accept})
    assert response.status_code == 406
    message = response.json()["message"]
    assert JPEG_BASELINE in message
    assert EXPLICIT_VR_LITTLE_ENDIAN in message


def test_retrieve_falls_back_to_next_accepted_syntax(server: ServerProcess, copies: dict[str, Copy]) -> None:
    copy = copies["transfer-syntaxes/jpeg-xl/will-jxl.dcm"]
    accept = f"{MULTIPART_DICOM}, {MULTIPART_DICOM_AS_STORED}; q=0.5"
    _, content = _single_instance(server, copy, accept)
    assert content == copy.data


def test_retrieve_accept_query_parameter(server: ServerProcess, copies: dict[str, Copy]) -> None:
    copy = copies["transfer-syntaxes/rle/MR_small_RLE.dcm"]
    response = get(server, copy.instance_path, params={"accept": MULTIPART_DICOM_AS_STORED})
    assert response.status_code == 200
    (part,) = parse_multipart(response)
    assert part.content == copy.data


def test_retrieve_single_part_application_dicom(server: ServerProcess, copies: dict[str, Copy]) -> None:
    copy = copies["modalities/ct/CT_small.dcm"]
    response = get(server, copy.instance_path, headers={"Accept": "application/dicom"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/dicom")
    assert response.content == copy.data


def test_retrieve_ohif_and_any_accept_forms(server: ServerProcess, copies: dict[str, Copy]) -> None:
    copy = copies["modalities/ct/CT_small.dcm"]
    for accept in (
        "*/*",
        "multipart/related; type=application/dicom; transfer-syntax=*",
        'multipart/related; type="application/dicom"; transfer-syntax="*"',
        f"multipart/related; type=application/dicom; transfer-syntax={EXPLICIT_VR_LITTLE_ENDIAN}",
        "multipart/related",
    ):
        response = get(server, copy.instance_path, headers={"Accept": accept})
        assert response.status_code == 200, accept
        (part,) = parse_multipart(response)
        assert part.content == copy.data, accept


def _into_study(relative: str, study_instance_uid: str, patient_id: str) -> bytes:
    """Write a test file into a given study under new UIDs, keeping its transfer syntax."""
    dataset = read(relative)
    dataset.StudyInstanceUID = study_instance_uid
    dataset.SeriesInstanceUID = generate_uid()
    dataset.SOPInstanceUID = generate_uid()
    dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
    dataset.PatientID = patient_id
    return to_bytes(dataset)


def test_retrieve_study_converts_each_instance(server: ServerProcess, patient_id: str) -> None:
    study_instance_uid = generate_uid()
    parts = [
        _into_study("transfer-syntaxes/rle/MR_small_RLE.dcm", study_instance_uid, patient_id),
        _into_study("transfer-syntaxes/implicit-vr-le/MR_small_implicit.dcm", study_instance_uid, patient_id),
        to_bytes(synthetic_ct(patient_id, study_instance_uid=study_instance_uid)),
    ]
    response = store(server, parts)
    assert response.status_code == 200, response.text

    converted = get(server, f"/studies/{study_instance_uid}", headers={"Accept": MULTIPART_DICOM})
    assert converted.status_code == 200
    returned = [pydicom.dcmread(io.BytesIO(part.content)) for part in parse_multipart(converted)]
    assert len(returned) == 3
    for dataset in returned:
        assert dataset.file_meta.TransferSyntaxUID == EXPLICIT_VR_LITTLE_ENDIAN
    originals = {
        str(dataset.SOPInstanceUID): dataset for dataset in map(pydicom.dcmread, map(io.BytesIO, parts))
    }
    for dataset in returned:
        assert np.array_equal(dataset.pixel_array, originals[str(dataset.SOPInstanceUID)].pixel_array)


def test_retrieve_study_with_undecodable_instance_is_406(
    server: ServerProcess, copies: dict[str, Copy]
) -> None:
    copy = copies["transfer-syntaxes/jpeg-xl/will-jxl.dcm"]
    path = f"/studies/{copy.study_instance_uid}"
    refused = get(server, path, headers={"Accept": MULTIPART_DICOM})
    assert refused.status_code == 406
    assert copy.transfer_syntax_uid in refused.json()["message"]
    as_stored = get(server, path, headers={"Accept": MULTIPART_DICOM_AS_STORED})
    assert as_stored.status_code == 200
    assert [part.content for part in parse_multipart(as_stored)] == [copy.data]


def test_retrieve_study_series_instance(server: ServerProcess, patient_id: str) -> None:
    study_instance_uid = generate_uid()
    first_series, second_series = generate_uid(), generate_uid()
    datasets = [
        synthetic_ct(
            patient_id,
            study_instance_uid=study_instance_uid,
            series_instance_uid=first_series,
            instance_number=number,
        )
        for number in (1, 2)
    ]
    datasets.append(
        synthetic_ct(
            patient_id,
            study_instance_uid=study_instance_uid,
            series_instance_uid=second_series,
            series_number=2,
            modality="MR",
        )
    )
    response = store(server, datasets)
    assert response.status_code == 200, response.text
    by_uid = {str(dataset.SOPInstanceUID): to_bytes(dataset) for dataset in datasets}

    study = get(server, f"/studies/{study_instance_uid}", headers={"Accept": MULTIPART_DICOM_AS_STORED})
    assert study.status_code == 200
    assert study.headers["content-type"].startswith('multipart/related; type="application/dicom"')
    parts = parse_multipart(study)
    assert {pydicom.dcmread(io.BytesIO(part.content)).SOPInstanceUID for part in parts} == set(by_uid)
    for part in parts:
        uid = str(pydicom.dcmread(io.BytesIO(part.content)).SOPInstanceUID)
        assert part.content == by_uid[uid]

    series = get(
        server,
        f"/studies/{study_instance_uid}/series/{first_series}",
        headers={"Accept": MULTIPART_DICOM_AS_STORED},
    )
    assert series.status_code == 200
    numbers = [pydicom.dcmread(io.BytesIO(part.content)).InstanceNumber for part in parse_multipart(series)]
    assert numbers == [1, 2]


def test_retrieve_with_dicomweb_client(server: ServerProcess, copies: dict[str, Copy]) -> None:
    client = DICOMwebClient(server.dicomweb, headers=dict(server.headers))
    copy = copies["transfer-syntaxes/jpeg2000-lossless/MR_small_jp2klossless.dcm"]
    uids = (copy.study_instance_uid, copy.series_instance_uid, copy.sop_instance_uid)

    # Without media_types, dicomweb-client sends transfer-syntax=*.
    as_stored = client.retrieve_instance(*uids)
    assert as_stored.file_meta.TransferSyntaxUID == copy.transfer_syntax_uid

    converted = client.retrieve_instance(
        *uids, media_types=(("application/dicom", EXPLICIT_VR_LITTLE_ENDIAN),)
    )
    assert converted.SOPInstanceUID == copy.sop_instance_uid
    assert converted.file_meta.TransferSyntaxUID == EXPLICIT_VR_LITTLE_ENDIAN
    assert np.array_equal(converted.pixel_array, as_stored.pixel_array)


def _bulk_data_uris(document: dict[str, Any]) -> list[str]:
    uris = []
    for element in document.values():
        if "BulkDataURI" in element:
            uris.append(element["BulkDataURI"])
        if element.get("vr") == "SQ":
            for item in element.get("Value", []):
                uris += _bulk_data_uris(item)
    return uris


def test_metadata_at_three_levels(server: ServerProcess, patient_id: str) -> None:
    study_instance_uid, series_instance_uid = generate_uid(), generate_uid()
    datasets = [
        synthetic_ct(
            patient_id,
            study_instance_uid=study_instance_uid,
            series_instance_uid=series_instance_uid,
            instance_number=number,
        )
        for number in (1, 2)
    ]
    datasets.append(synthetic_ct(patient_id, study_instance_uid=study_instance_uid, series_number=2))
    assert store(server, datasets).status_code == 200
    uids = [str(dataset.SOPInstanceUID) for dataset in datasets]

    study = get(server, f"/studies/{study_instance_uid}/metadata")
    assert study.status_code == 200
    assert study.headers["content-type"] == "application/dicom+json"
    assert sorted(item["00080018"]["Value"][0] for item in study.json()) == sorted(uids)

    series = get(server, f"/studies/{study_instance_uid}/series/{series_instance_uid}/metadata")
    assert [item["00080018"]["Value"][0] for item in series.json()] == uids[:2]

    instance_path = f"/studies/{study_instance_uid}/series/{series_instance_uid}/instances/{uids[0]}"
    (instance,) = get(server, f"{instance_path}/metadata").json()
    assert instance["00100020"]["Value"] == [patient_id]
    assert instance["0020000D"]["Value"] == [study_instance_uid]
    uris = _bulk_data_uris(instance)
    assert f"{server.dicomweb}{instance_path}/bulkdata/7FE00010" in uris
    for uri in uris:
        assert uri.startswith(f"{server.dicomweb}{instance_path}/bulkdata/"), uri


def test_metadata_read_back_equals_original(server: ServerProcess, copies: dict[str, Copy]) -> None:
    copy = copies["transfer-syntaxes/explicit-vr-be/MR_small_bigendian.dcm"]
    (document,) = get(server, f"{copy.instance_path}/metadata").json()
    read_back = pydicom.Dataset.from_json(document, bulk_data_uri_handler=lambda *_: b"")
    original = pydicom.dcmread(io.BytesIO(copy.data))
    for element in original:
        if element.tag == 0x7FE00010:
            continue
        assert read_back[element.tag].value == element.value, element.keyword


def test_metadata_accept_forms(server: ServerProcess, copies: dict[str, Copy]) -> None:
    path = f"{copies['modalities/ct/CT_small.dcm'].instance_path}/metadata"
    for accept, media_type in (
        ('application/dicom+json, multipart/related; type="application/dicom+xml"', "application/dicom+json"),
        ("*/*", "application/dicom+json"),
        ("application/json", "application/json"),
    ):
        response = get(server, path, headers={"Accept": accept})
        assert response.status_code == 200, accept
        assert response.headers["content-type"] == media_type
    refused = get(server, path, headers={"Accept": "application/dicom+xml"})
    assert refused.status_code == 406
    assert "application/dicom+xml" in refused.json()["message"]


def _not_found_paths(copies: dict[str, Copy]) -> list[str]:
    one = copies["modalities/ct/CT_small.dcm"]
    other = copies["modalities/mr/emri_small.dcm"]
    unknown = "1.2.826.0.1.3680043.8.498.1"
    study, series, instance = one.study_instance_uid, one.series_instance_uid, one.sop_instance_uid
    return [
        f"/studies/{unknown}",
        f"/studies/{unknown}/metadata",
        f"/studies/{study}/series/{unknown}",
        f"/studies/{study}/series/{unknown}/metadata",
        f"/studies/{study}/series/{series}/instances/{unknown}",
        f"/studies/{study}/series/{series}/instances/{unknown}/metadata",
        f"/studies/{study}/series/{series}/instances/{unknown}/frames/1",
        f"/studies/{study}/series/{series}/instances/{unknown}/bulkdata/7FE00010",
        # A series and an instance that exist, under a study or series they do not belong to.
        f"/studies/{study}/series/{other.series_instance_uid}",
        f"/studies/{study}/series/{other.series_instance_uid}/metadata",
        f"/studies/{other.study_instance_uid}/series/{series}/instances/{instance}",
        f"/studies/{study}/series/{other.series_instance_uid}/instances/{instance}",
        f"/studies/{other.study_instance_uid}/series/{series}/instances/{instance}/frames/1",
    ]


def test_retrieve_unknown_is_404_with_one_body(server: ServerProcess, copies: dict[str, Copy]) -> None:
    bodies = set()
    for path in _not_found_paths(copies):
        response = get(server, path, headers={"Accept": "*/*"})
        assert response.status_code == 404, path
        bodies.add(response.content)
    assert len(bodies) == 1
