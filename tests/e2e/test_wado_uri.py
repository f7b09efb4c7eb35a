"""WADO-URI (``/wado?requestType=WADO``) against a live server, compared with pydicom.

Instances are copies of the shared test files under new UIDs, stored once per backend.
Rendered PNG output is compared with pydicom's own Modality LUT and windowing of the original.
"""

from __future__ import annotations

import copy
import io

import httpx
import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.pixels import apply_modality_lut, apply_windowing
from pydicom.uid import generate_uid

from tests.e2e.copies import Copy, copy_with_new_uids
from tests.e2e.dicomweb_http import TIMEOUT, store
from tests.services import Archive, ServerProcess

EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1"
JPEG_BASELINE = "1.2.840.10008.1.2.4.50"
JPEG_LS_LOSSLESS = "1.2.840.10008.1.2.4.80"

SIGNED_CT = "modalities/ct/SignedCT.dcm"
CR_MONOCHROME1 = "modalities/cr/Monochrome1-Jpeg.dcm"
RGB = "modalities/sc/SC_rgb.dcm"
YBR_JPEG = "transfer-syntaxes/jpeg-baseline/SC_rgb_jpeg_dcmtk.dcm"
NM_MULTIFRAME = "modalities/nm/NM-MONO2-16-13x-heart.dcm"
BIG_ENDIAN = "transfer-syntaxes/explicit-vr-be/MR_small_bigendian.dcm"
PDF = "modalities/doc/sample-pdf.dcm"
SR = "modalities/sr/sr_document.dcm"

FILES = (SIGNED_CT, CR_MONOCHROME1, RGB, YBR_JPEG, NM_MULTIFRAME, BIG_ENDIAN, PDF, SR)


@pytest.fixture(scope="module")
def copies(server: ServerProcess) -> dict[str, Copy]:
    """Store a copy of every file above under new UIDs, one STOW-RS request each."""
    stored = {}
    for relative in FILES:
        copied = copy_with_new_uids(relative)
        response = store(server, [copied.data])
        assert response.status_code == 200, (relative, response.text)
        stored[relative] = copied
    return stored


def _identity(copied: Copy) -> dict[str, str]:
    return {
        "requestType": "WADO",
        "studyUID": copied.study_instance_uid,
        "seriesUID": copied.series_instance_uid,
        "objectUID": copied.sop_instance_uid,
    }


def _wado(server: ServerProcess, params: dict[str, str]) -> httpx.Response:
    return httpx.get(f"{server.url}/wado", params=params, headers=dict(server.headers), timeout=TIMEOUT)


def _request(server: ServerProcess, copied: Copy, **params: str) -> httpx.Response:
    return _wado(server, {**_identity(copied), **params})


def _png(server: ServerProcess, copied: Copy, **params: str) -> np.ndarray:
    response = _request(server, copied, contentType="image/png", **params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    return np.asarray(Image.open(io.BytesIO(response.content)))


def _windowed(stored: np.ndarray, dataset: Dataset, center: float, width: float) -> np.ndarray:
    """Display values from pydicom's Modality LUT and linear windowing, scaled to 0-255."""
    dataset = copy.deepcopy(dataset)
    dataset.WindowCenter, dataset.WindowWidth = center, width
    windowed = apply_windowing(apply_modality_lut(stored, dataset), dataset)
    low, high = apply_windowing(np.array([center - 100 * width, center + 100 * width]), dataset)
    return np.rint((windowed - low) / (high - low) * 255.0).astype(np.int64)


def _max_difference(image: np.ndarray, expected: np.ndarray) -> int:
    assert image.shape == expected.shape
    return int(np.abs(image.astype(np.int64) - expected).max())


def test_wado_uri_image_default_jpeg(server: ServerProcess, copies: dict[str, Copy]) -> None:
    response = _request(server, copies[SIGNED_CT])
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(response.content)).size == (512, 512)


def test_wado_uri_window_matches_pydicom(server: ServerProcess, copies: dict[str, Copy]) -> None:
    original = copies[SIGNED_CT].dataset
    image = _png(server, copies[SIGNED_CT], windowCenter="40", windowWidth="400")
    assert _max_difference(image, _windowed(original.pixel_array, original, 40.0, 400.0)) <= 1
    default = _png(server, copies[SIGNED_CT])
    assert not np.array_equal(image, default)


def test_wado_uri_frame_number(server: ServerProcess, copies: dict[str, Copy]) -> None:
    original = copies[NM_MULTIFRAME].dataset
    image = _png(server, copies[NM_MULTIFRAME], frameNumber="7", windowCenter="70", windowWidth="141")
    assert _max_difference(image, _windowed(original.pixel_array[6], original, 70.0, 141.0)) <= 1


@pytest.mark.parametrize(
    ("params", "size"),
    [
        ({"rows": "256", "columns": "256"}, (210, 256)),
        ({"rows": "100"}, (82, 100)),
        ({"columns": "201"}, (201, 245)),
    ],
)
def test_wado_uri_rows_columns_keep_aspect_ratio(
    server: ServerProcess, copies: dict[str, Copy], params: dict[str, str], size: tuple[int, int]
) -> None:
    response = _request(server, copies[CR_MONOCHROME1], **params)
    assert response.status_code == 200, response.text
    assert Image.open(io.BytesIO(response.content)).size == size


def test_wado_uri_region(server: ServerProcess, copies: dict[str, Copy]) -> None:
    whole = _png(server, copies[RGB])
    region = _png(server, copies[RGB], region="0.5,0,1,0.5")
    assert np.array_equal(region, whole[0:50, 50:100])
    assert np.array_equal(whole, copies[RGB].dataset.pixel_array)


@pytest.mark.parametrize("name", ["imageQuality", "quality"])
def test_wado_uri_image_quality(server: ServerProcess, copies: dict[str, Copy], name: str) -> None:
    low = _request(server, copies[SIGNED_CT], **{name: "5"})
    high = _request(server, copies[SIGNED_CT], **{name: "95"})
    assert low.status_code == high.status_code == 200
    assert len(low.content) < len(high.content)


def test_wado_uri_dicom_stored_explicit_unchanged(server: ServerProcess, copies: dict[str, Copy]) -> None:
    response = _request(server, copies[SIGNED_CT], contentType="application/dicom")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/dicom"
    assert response.content == copies[SIGNED_CT].data


def test_wado_uri_dicom_default_syntax(server: ServerProcess, copies: dict[str, Copy]) -> None:
    original = copies[YBR_JPEG].dataset
    response = _request(server, copies[YBR_JPEG], contentType="application/dicom")
    assert response.status_code == 200, response.text
    returned = pydicom.dcmread(io.BytesIO(response.content))
    assert returned.file_meta.TransferSyntaxUID == EXPLICIT_VR_LITTLE_ENDIAN
    assert returned.SOPInstanceUID == original.SOPInstanceUID
    assert np.array_equal(returned.pixel_array, original.pixel_array)


def test_wado_uri_dicom_big_endian_converted(server: ServerProcess, copies: dict[str, Copy]) -> None:
    original = copies[BIG_ENDIAN].dataset
    response = _request(server, copies[BIG_ENDIAN], contentType="application/dicom")
    assert response.status_code == 200, response.text
    returned = pydicom.dcmread(io.BytesIO(response.content))
    assert returned.file_meta.TransferSyntaxUID == EXPLICIT_VR_LITTLE_ENDIAN
    assert np.array_equal(returned.pixel_array, original.pixel_array)


def test_wado_uri_dicom_stored_syntax_unchanged(server: ServerProcess, copies: dict[str, Copy]) -> None:
    response = _request(
        server, copies[YBR_JPEG], contentType="application/dicom", transferSyntax=JPEG_BASELINE
    )
    assert response.status_code == 200, response.text
    assert response.content == copies[YBR_JPEG].data


def test_wado_uri_transfer_syntax_not_producible(server: ServerProcess, copies: dict[str, Copy]) -> None:
    response = _request(
        server, copies[SIGNED_CT], contentType="application/dicom", transferSyntax=JPEG_LS_LOSSLESS
    )
    assert response.status_code == 406, response.text
    message = response.json()["message"]
    assert JPEG_LS_LOSSLESS in message
    assert EXPLICIT_VR_LITTLE_ENDIAN in message


def test_wado_uri_pdf(server: ServerProcess, copies: dict[str, Copy]) -> None:
    document = _request(server, copies[PDF])
    assert document.status_code == 200, document.text
    assert document.headers["content-type"] == "application/pdf"
    assert document.content == copies[PDF].dataset.EncapsulatedDocument
    instance = _request(server, copies[PDF], contentType="application/dicom")
    assert instance.status_code == 200, instance.text
    assert instance.content == copies[PDF].data


def test_wado_uri_report_default_dicom(server: ServerProcess, copies: dict[str, Copy]) -> None:
    response = _request(server, copies[SR])
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/dicom"
    assert response.content == copies[SR].data


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        ("image/webp,image/png", "image/png"),
        ("image/png;q=0.5,image/gif", "image/gif"),
        ("image/*", "image/jpeg"),
        ("*/*", "image/jpeg"),
    ],
)
def test_wado_uri_content_type_list(
    server: ServerProcess, copies: dict[str, Copy], content_type: str, expected: str
) -> None:
    response = _request(server, copies[SIGNED_CT], contentType=content_type)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == expected


@pytest.mark.parametrize(("relative", "content_type"), [(SIGNED_CT, "text/html"), (SR, "image/jpeg")])
def test_wado_uri_content_type_not_acceptable(
    server: ServerProcess, copies: dict[str, Copy], relative: str, content_type: str
) -> None:
    response = _request(server, copies[relative], contentType=content_type)
    assert response.status_code == 406, response.text
    assert "application/dicom" in response.json()["message"]


def test_wado_uri_unapplied_parameter_warning(server: ServerProcess, copies: dict[str, Copy]) -> None:
    response = _request(server, copies[SIGNED_CT], annotation="patient")
    assert response.status_code == 200, response.text
    assert "annotation" in response.headers["warning"]


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"requestType": None}, "requestType is missing"),
        ({"requestType": "WADO-RS"}, "requestType 'WADO-RS'"),
        ({"seriesUID": None}, "seriesUID"),
        ({"objectUID": "1.2.abc"}, "objectUID value '1.2.abc'"),
        ({"contentType": "image"}, "contentType"),
        ({"transferSyntax": "1.2.3"}, "not a transfer syntax"),
        ({"transferSyntax": "1..2"}, "transferSyntax"),
        (
            {"transferSyntax": EXPLICIT_VR_LITTLE_ENDIAN, "contentType": "image/jpeg"},
            "transferSyntax applies",
        ),
        ({"transferSyntax": EXPLICIT_VR_LITTLE_ENDIAN}, "transferSyntax applies"),
        ({"contentType": "application/dicom", "rows": "10"}, "rows cannot be used"),
        ({"contentType": "application/dicom", "frameNumber": "1"}, "frameNumber cannot be used"),
        ({"rows": "0"}, "rows"),
        ({"columns": "wide"}, "columns"),
        ({"windowCenter": "40"}, "windowCenter and windowWidth"),
        ({"windowCenter": "40", "windowWidth": "0.5"}, "windowWidth"),
        ({"windowCenter": "forty", "windowWidth": "400"}, "windowCenter"),
        ({"imageQuality": "101"}, "imageQuality"),
        ({"frameNumber": "0"}, "frameNumber"),
        ({"frameNumber": "14"}, "frame 14 does not exist"),
        ({"region": "0,0,2,1"}, "region"),
        ({"anonymize": "yes"}, "anonymize"),
        ({"rows": "100000", "columns": "100000"}, "invalid rows '100000'; give an integer from 1 to 8192"),
        ({"columns": "8193"}, "from 1 to 8192"),
        # Rows alone scale the columns with the aspect ratio: 64x64 pixels become 8192x8192.
        ({"rows": "8192"}, "8192x8192 pixels"),
    ],
)
def test_wado_uri_invalid_request(
    server: ServerProcess, copies: dict[str, Copy], change: dict[str, str | None], named: str
) -> None:
    params: dict[str, str] = {**_identity(copies[NM_MULTIFRAME])}
    for name, value in change.items():
        if value is None:
            params.pop(name)
        else:
            params[name] = value
    response = _wado(server, params)
    assert response.status_code == 400, response.text
    assert named in response.json()["message"]


def test_wado_uri_unknown_instance_not_found(server: ServerProcess, copies: dict[str, Copy]) -> None:
    ct, nm = copies[SIGNED_CT], copies[NM_MULTIFRAME]
    unknown = {**_identity(ct), "objectUID": generate_uid()}
    # The series and instance exist, but under another study.
    elsewhere = {**_identity(nm), "studyUID": ct.study_instance_uid}
    for params in (unknown, elsewhere):
        response = _wado(server, params)
        assert response.status_code == 404, response.text
        assert response.json()["message"] == "not found"


def test_wado_uri_hidden_study_not_found(archive: Archive) -> None:
    server = archive.start()
    stored = copy_with_new_uids(SIGNED_CT)
    assert store(server, [stored.data]).status_code == 200
    added = archive.run(["org", "add", "WADO-URI Tests Hospital", "--external"])
    assert added.returncode == 0, added.stderr
    created = archive.run(["token", "create", "--org", "WADO-URI Tests Hospital", "--scope", "read"])
    assert created.returncode == 0, created.stderr
    external = {"Authorization": f"Bearer {created.stdout.strip().splitlines()[-1]}"}

    for content_type in ("image/jpeg", "application/dicom"):
        params = {**_identity(stored), "contentType": content_type}
        assert _wado(server, params).status_code == 200, content_type
        hidden = httpx.get(f"{server.url}/wado", params=params, headers=external, timeout=TIMEOUT)
        absent = httpx.get(
            f"{server.url}/wado",
            params={**params, "studyUID": generate_uid()},
            headers=external,
            timeout=TIMEOUT,
        )
        assert hidden.status_code == absent.status_code == 404, (content_type, hidden.text)
        assert hidden.json() == absent.json()
