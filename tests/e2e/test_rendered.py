"""Rendered and thumbnail resources of WADO-RS against a live server, compared with pydicom.

Instances are copies of the shared test files under new UIDs, stored once per backend. PNG
output is compared pixel by pixel with what pydicom computes from the original file: its
decoders, Modality LUT, windowing and palette functions, independently of the server's code.
"""

from __future__ import annotations

import copy
import io
import re
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_windowing
from pydicom.uid import generate_uid

from tests.e2e.copies import Copy, copy_with_new_uids
from tests.e2e.dicomweb_http import get, parse_multipart, store
from tests.services import Archive, ServerProcess
from tests.testdata import read, to_bytes

SIGNED_CT = "modalities/ct/SignedCT.dcm"
CR_MONOCHROME1 = "modalities/cr/Monochrome1-Jpeg.dcm"
MR = "modalities/mr/MR_small.dcm"
RGB = "modalities/sc/SC_rgb.dcm"
YBR_JPEG = "transfer-syntaxes/jpeg-baseline/SC_rgb_jpeg_dcmtk.dcm"
YBR_422_MULTIFRAME = "modalities/us/examples_ybr_color.dcm"
PALETTE = "modalities/us/US-PAL-8-10x-echo.dcm"
NM_MULTIFRAME = "modalities/nm/NM-MONO2-16-13x-heart.dcm"
MODALITY_LUT = "modalities/rf/KarstenHilbertRF.dcm"
BIG_ENDIAN = "transfer-syntaxes/explicit-vr-be/MR_small_bigendian.dcm"
PDF = "modalities/doc/sample-pdf.dcm"
SR = "modalities/sr/sr_document.dcm"
RT_PLAN = "modalities/rt/rtplan.dcm"
JPEG_XL = "transfer-syntaxes/jpeg-xl/will-jxl.dcm"

FILES = (
    SIGNED_CT,
    CR_MONOCHROME1,
    MR,
    RGB,
    YBR_JPEG,
    YBR_422_MULTIFRAME,
    PALETTE,
    NM_MULTIFRAME,
    MODALITY_LUT,
    BIG_ENDIAN,
    PDF,
    SR,
    RT_PLAN,
    JPEG_XL,
)


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


@pytest.fixture(scope="module")
def mixed_study(server: ServerProcess) -> dict[str, Dataset]:
    """A study whose first series contains a structured report and whose second contains a CT image."""
    study_instance_uid = generate_uid()
    patient_id = f"TEST-{uuid.uuid4().hex[:16]}"
    report = read(SR)
    image = read(SIGNED_CT)
    for series_number, dataset in ((1, report), (2, image)):
        dataset.PatientID = patient_id
        dataset.IssuerOfPatientID = "RENDERED-TESTS"
        dataset.StudyInstanceUID = study_instance_uid
        dataset.SeriesInstanceUID = generate_uid()
        dataset.SOPInstanceUID = generate_uid()
        dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
        dataset.SeriesNumber = series_number
    response = store(server, [to_bytes(report), to_bytes(image)])
    assert response.status_code == 200, response.text
    return {"report": report, "image": image}


def _get(server: ServerProcess, path: str, accept: str | None = None, **params: str) -> httpx.Response:
    headers = {"Accept": accept} if accept is not None else {}
    return get(server, path, headers=headers, params=params)


def _image(response: httpx.Response) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(response.content)))


def _png(server: ServerProcess, path: str, **params: str) -> np.ndarray:
    response = _get(server, path, accept="image/png", **params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    return _image(response)


def _windowed(
    stored: np.ndarray, dataset: Dataset, window: tuple[float, float, str] | None = None
) -> np.ndarray:
    """Display values from pydicom's Modality LUT and windowing, scaled to 0-255."""
    dataset = copy.deepcopy(dataset)
    if window is not None:
        dataset.WindowCenter, dataset.WindowWidth, dataset.VOILUTFunction = window
    modality = apply_modality_lut(stored, dataset)
    windowed = apply_windowing(modality, dataset)
    center, width = float(dataset.WindowCenter), float(dataset.WindowWidth)
    low, high = apply_windowing(np.array([center - 100 * width, center + 100 * width]), dataset)
    return np.rint((windowed - low) / (high - low) * 255.0).astype(np.int64)


def _max_difference(image: np.ndarray, expected: np.ndarray) -> int:
    assert image.shape == expected.shape
    return int(np.abs(image.astype(np.int64) - expected.astype(np.int64)).max())


def _parts(response: httpx.Response) -> list[Any]:
    assert response.status_code == 200, response.text
    return parse_multipart(response)


def test_rendered_instance_default_jpeg(server: ServerProcess, copies: dict[str, Copy]) -> None:
    response = _get(server, copies[SIGNED_CT].instance_path + "/rendered")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/jpeg"
    image = Image.open(io.BytesIO(response.content))
    assert image.format == "JPEG"
    assert image.size == (512, 512)


@pytest.mark.parametrize(
    "window", [None, (40.0, 400.0, "LINEAR"), (-600.0, 1600.0, "LINEAR_EXACT"), (0.0, 300.0, "SIGMOID")]
)
def test_rendered_signed_ct_matches_pydicom(
    server: ServerProcess, copies: dict[str, Copy], window: tuple[float, float, str] | None
) -> None:
    params = {}
    if window is not None:
        params["window"] = f"{window[0]},{window[1]},{window[2].lower().replace('_', '-')}"
    image = _png(server, copies[SIGNED_CT].instance_path + "/rendered", **params)
    original = copies[SIGNED_CT].dataset
    assert _max_difference(image, _windowed(original.pixel_array, original, window)) <= 1


def test_rendered_window_changes_pixels(server: ServerProcess, copies: dict[str, Copy]) -> None:
    path = copies[SIGNED_CT].instance_path + "/rendered"
    default = _png(server, path)
    narrow = _png(server, path, window="40,80,linear")
    assert not np.array_equal(default, narrow)
    saturated_default = int(np.count_nonzero((default == 0) | (default == 255)))
    saturated_narrow = int(np.count_nonzero((narrow == 0) | (narrow == 255)))
    assert saturated_narrow > saturated_default


def test_rendered_modality_lut_matches_pydicom(server: ServerProcess, copies: dict[str, Copy]) -> None:
    original = copies[MODALITY_LUT].dataset
    assert "ModalityLUTSequence" in original
    image = _png(server, copies[MODALITY_LUT].instance_path + "/rendered")
    assert _max_difference(image, _windowed(original.pixel_array, original)) <= 1


def test_rendered_monochrome1_inverted(server: ServerProcess, copies: dict[str, Copy]) -> None:
    original = copies[CR_MONOCHROME1].dataset
    assert original.PhotometricInterpretation == "MONOCHROME1"
    image = _png(server, copies[CR_MONOCHROME1].instance_path + "/rendered")
    assert _max_difference(image, 255 - _windowed(original.pixel_array, original)) <= 1


def test_rendered_big_endian_matches_pydicom(server: ServerProcess, copies: dict[str, Copy]) -> None:
    original = copies[BIG_ENDIAN].dataset
    image = _png(server, copies[BIG_ENDIAN].instance_path + "/rendered")
    assert _max_difference(image, _windowed(original.pixel_array, original)) <= 1


@pytest.mark.parametrize("relative", [RGB, YBR_JPEG])
def test_rendered_colour_matches_pydicom(
    server: ServerProcess, copies: dict[str, Copy], relative: str
) -> None:
    image = _png(server, copies[relative].instance_path + "/rendered")
    assert np.array_equal(image, copies[relative].dataset.pixel_array)


def test_rendered_ybr_422_frame_matches_pydicom(server: ServerProcess, copies: dict[str, Copy]) -> None:
    image = _png(server, copies[YBR_422_MULTIFRAME].instance_path + "/frames/12/rendered")
    assert np.array_equal(image, copies[YBR_422_MULTIFRAME].dataset.pixel_array[11])


def test_rendered_palette_frame_matches_pydicom(server: ServerProcess, copies: dict[str, Copy]) -> None:
    original = copies[PALETTE].dataset
    image = _png(server, copies[PALETTE].instance_path + "/frames/3/rendered")
    expected = apply_color_lut(original.pixel_array[2], original) >> 8
    assert image.shape == (430, 600, 3)
    assert np.array_equal(image, expected.astype(np.uint8))


def test_rendered_frame_list_multipart(server: ServerProcess, copies: dict[str, Copy]) -> None:
    original = copies[NM_MULTIFRAME].dataset
    response = _get(server, copies[NM_MULTIFRAME].instance_path + "/frames/5,2/rendered", accept="image/png")
    assert response.headers["content-type"].startswith('multipart/related; type="image/png"')
    parts = _parts(response)
    assert [part.content_type for part in parts] == ["image/png", "image/png"]
    for part, number in zip(parts, (5, 2), strict=True):
        image = np.asarray(Image.open(io.BytesIO(part.content)))
        assert _max_difference(image, _windowed(original.pixel_array[number - 1], original)) <= 1


def test_rendered_multiframe_instance_first_frame(server: ServerProcess, copies: dict[str, Copy]) -> None:
    path = copies[NM_MULTIFRAME].instance_path
    assert np.array_equal(_png(server, path + "/rendered"), _png(server, path + "/frames/1/rendered"))


@pytest.mark.parametrize(
    ("viewport", "size"), [("256,256", (210, 256)), ("100,", (100, 122)), (",489", (402, 489))]
)
def test_rendered_viewport_keeps_aspect_ratio(
    server: ServerProcess, copies: dict[str, Copy], viewport: str, size: tuple[int, int]
) -> None:
    response = _get(server, copies[CR_MONOCHROME1].instance_path + "/rendered", viewport=viewport)
    assert response.status_code == 200, response.text
    assert Image.open(io.BytesIO(response.content)).size == size


def test_rendered_viewport_region_flipped(server: ServerProcess, copies: dict[str, Copy]) -> None:
    path = copies[RGB].instance_path + "/rendered"
    whole = _png(server, path)
    flipped = _png(server, path, viewport="40,20,39,0,-40,20")
    assert np.array_equal(flipped, whole[0:20, 39::-1])


def test_rendered_quality_changes_size(server: ServerProcess, copies: dict[str, Copy]) -> None:
    path = copies[SIGNED_CT].instance_path + "/rendered"
    low = _get(server, path, quality="5")
    high = _get(server, path, quality="95")
    assert low.status_code == high.status_code == 200
    assert len(low.content) < len(high.content)


@pytest.mark.parametrize(
    ("accept", "media_type"),
    [
        ("image/gif", "image/gif"),
        ("image/webp, image/png;q=0.9, */*;q=0.1", "image/png"),
        ("image/avif,image/webp,image/apng,image/*,*/*;q=0.8", "image/jpeg"),
        ('multipart/related; type="image/png"', "image/png"),
    ],
)
def test_rendered_accept_header(
    server: ServerProcess, copies: dict[str, Copy], accept: str, media_type: str
) -> None:
    response = _get(server, copies[MR].instance_path + "/rendered", accept=accept)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == media_type
    assert Image.MIME[Image.open(io.BytesIO(response.content)).format or ""] == media_type


def test_rendered_accept_query_parameter(server: ServerProcess, copies: dict[str, Copy]) -> None:
    # The accept query parameter, used by <img> elements, wins over the Accept header.
    response = get(
        server,
        copies[MR].instance_path + "/thumbnail",
        headers={"Accept": "image/png"},
        params={"accept": "image/jpeg"},
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/jpeg"


def test_rendered_annotation_warning(server: ServerProcess, copies: dict[str, Copy]) -> None:
    response = _get(server, copies[MR].instance_path + "/rendered", annotation="patient")
    assert response.status_code == 200, response.text
    assert "annotation" in response.headers["warning"]


def test_rendered_pdf_returns_document(server: ServerProcess, copies: dict[str, Copy]) -> None:
    response = _get(server, copies[PDF].instance_path + "/rendered")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/pdf"
    assert response.content == copies[PDF].dataset.EncapsulatedDocument


def test_rendered_pdf_as_image_not_acceptable(server: ServerProcess, copies: dict[str, Copy]) -> None:
    response = _get(server, copies[PDF].instance_path + "/rendered", accept="image/jpeg")
    assert response.status_code == 406, response.text
    assert "application/pdf" in response.json()["message"]


@pytest.mark.parametrize("relative", [SR, RT_PLAN])
def test_rendered_non_image_not_acceptable(
    server: ServerProcess, copies: dict[str, Copy], relative: str
) -> None:
    response = _get(server, copies[relative].instance_path + "/rendered")
    assert response.status_code == 406, response.text
    message = response.json()["message"]
    assert "no pixel data" in message
    assert str(copies[relative].dataset.SOPClassUID) in message


@pytest.mark.parametrize("relative", [SR, PDF])
def test_thumbnail_non_image_not_found(server: ServerProcess, copies: dict[str, Copy], relative: str) -> None:
    response = _get(server, copies[relative].instance_path + "/thumbnail")
    assert response.status_code == 404, response.text
    assert "no thumbnail" in response.json()["message"]


def test_thumbnail_fits_default_size(server: ServerProcess, copies: dict[str, Copy]) -> None:
    response = _get(server, copies[CR_MONOCHROME1].instance_path + "/thumbnail")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(response.content)).size == (105, 128)


def test_thumbnail_small_image_not_enlarged(server: ServerProcess, copies: dict[str, Copy]) -> None:
    response = _get(server, copies[MR].instance_path + "/thumbnail")
    assert response.status_code == 200, response.text
    assert Image.open(io.BytesIO(response.content)).size == (64, 64)


def test_thumbnail_levels(server: ServerProcess, copies: dict[str, Copy]) -> None:
    palette = copies[PALETTE]
    study = f"/studies/{palette.study_instance_uid}"
    series = f"{study}/series/{palette.series_instance_uid}"
    for path in (study, series, palette.instance_path, palette.instance_path + "/frames/4"):
        response = _get(server, path + "/thumbnail")
        assert response.status_code == 200, (path, response.text)
        assert Image.open(io.BytesIO(response.content)).size == (128, 92), path


def test_study_rendered_skips_non_image(server: ServerProcess, mixed_study: dict[str, Dataset]) -> None:
    image = mixed_study["image"]
    study = f"/studies/{image.StudyInstanceUID}"
    rendered_study = _png(server, study + "/rendered")
    rendered_instance = _png(
        server, f"{study}/series/{image.SeriesInstanceUID}/instances/{image.SOPInstanceUID}/rendered"
    )
    assert np.array_equal(rendered_study, rendered_instance)


def test_series_rendered_of_report_not_acceptable(
    server: ServerProcess, mixed_study: dict[str, Dataset]
) -> None:
    report = mixed_study["report"]
    response = _get(server, f"/studies/{report.StudyInstanceUID}/series/{report.SeriesInstanceUID}/rendered")
    assert response.status_code == 406, response.text


def test_rendered_undecodable_syntax_names_it(server: ServerProcess, copies: dict[str, Copy]) -> None:
    response = _get(server, copies[JPEG_XL].instance_path + "/rendered")
    assert response.status_code == 406, response.text
    assert "1.2.840.10008.1.2.4.111" in response.json()["message"]


@pytest.mark.parametrize(
    ("suffix", "params", "status", "named"),
    [
        ("/frames/14/rendered", {}, 404, "frame 14"),
        ("/frames/0/rendered", {}, 400, "frame number"),
        ("/rendered", {"window": "40,400"}, 400, "window"),
        ("/rendered", {"window": "40,0,linear"}, 400, "window width"),
        ("/rendered", {"viewport": "0,10"}, 400, "vw"),
        ("/rendered", {"viewport": "10,10,100,0,10,10"}, 400, "sx=100"),
        ("/rendered", {"quality": "0"}, 400, "quality"),
        ("/thumbnail", {"viewport": "x,10"}, 400, "vw"),
        ("/rendered", {"viewport": "60000,60000"}, 400, "the maximum is 8192 pixels"),
        ("/rendered", {"viewport": "100000,100000"}, 400, "the maximum is 8192 pixels"),
        ("/thumbnail", {"viewport": "65535,65535"}, 400, "the maximum is 8192 pixels"),
        # One side scales the other with the aspect ratio: 64x64 pixels become 8192x8192.
        ("/rendered", {"viewport": "8192,"}, 400, "8192x8192 pixels"),
        ("/frames/1/rendered", {"viewport": ",8192"}, 400, "8192x8192 pixels"),
    ],
)
def test_rendered_invalid_request(
    server: ServerProcess,
    copies: dict[str, Copy],
    suffix: str,
    params: dict[str, str],
    status: int,
    named: str,
) -> None:
    response = _get(server, copies[NM_MULTIFRAME].instance_path + suffix, **params)
    assert response.status_code == status, response.text
    assert named in response.json()["message"]


def test_rendered_dicom_accept_not_acceptable(server: ServerProcess, copies: dict[str, Copy]) -> None:
    response = _get(server, copies[MR].instance_path + "/rendered", accept="application/dicom")
    assert response.status_code == 406, response.text
    assert "image/jpeg" in response.json()["message"]


def test_rendered_unknown_paths_not_found(server: ServerProcess, copies: dict[str, Copy]) -> None:
    mr, ct = copies[MR], copies[SIGNED_CT]
    paths = [
        f"/studies/{generate_uid()}/rendered",
        f"/studies/{generate_uid()}/thumbnail",
        # The series and instance exist, but under another study.
        f"/studies/{ct.study_instance_uid}/series/{mr.series_instance_uid}/rendered",
        f"/studies/{ct.study_instance_uid}/series/{mr.series_instance_uid}/instances/{mr.sop_instance_uid}/thumbnail",
    ]
    for path in paths:
        response = _get(server, path)
        assert response.status_code == 404, (path, response.text)
        assert response.json()["message"] == "not found"


def test_rendered_stored_file_unchanged(server: ServerProcess, copies: dict[str, Copy]) -> None:
    # Rendering only reads the stored object, so the instance still comes back byte for byte.
    assert _get(server, copies[PALETTE].instance_path + "/rendered").status_code == 200
    response = _get(
        server,
        copies[PALETTE].instance_path,
        accept='multipart/related; type="application/dicom"; transfer-syntax=*',
    )
    (part,) = _parts(response)
    assert pydicom.dcmread(io.BytesIO(part.content)).SOPInstanceUID == copies[PALETTE].sop_instance_uid
    assert part.content == copies[PALETTE].data


def _external_reader(archive: Archive) -> dict[str, str]:
    """Register an external organisation without any authorization and return its read token header."""
    added = archive.run(["org", "add", "Rendered Tests Hospital", "--external"])
    assert added.returncode == 0, added.stderr
    created = archive.run(["token", "create", "--org", "Rendered Tests Hospital", "--scope", "read"])
    assert created.returncode == 0, created.stderr
    return {"Authorization": f"Bearer {created.stdout.strip().splitlines()[-1]}"}


def test_rendered_hidden_study_not_found(archive: Archive) -> None:
    server = archive.start()
    stored = copy_with_new_uids(SIGNED_CT)
    assert store(server, [stored.data]).status_code == 200
    external = _external_reader(archive)
    study = f"/studies/{stored.study_instance_uid}"
    series = f"{study}/series/{stored.series_instance_uid}"
    missing = f"/studies/{generate_uid()}"

    for suffix in ("/rendered", "/thumbnail"):
        for path in (study, series, stored.instance_path, stored.instance_path + "/frames/1"):
            assert get(server, path + suffix).status_code == 200, path + suffix
            hidden = get(server, path + suffix, headers=external)
            absent = get(server, path.replace(study, missing) + suffix, headers=external)
            assert hidden.status_code == absent.status_code == 404, (path + suffix, hidden.text)
            assert hidden.json() == absent.json()


def test_undecodable_instance_logged_once(server_factory: Callable[..., ServerProcess]) -> None:
    server = server_factory()
    broken = copy_with_new_uids("broken/JPEG2000-embedded-sequence-delimiter.dcm")
    assert store(server, [broken.data]).status_code == 200
    for _ in range(3):
        assert _get(server, broken.instance_path + "/rendered").status_code == 406
    frames = _get(
        server,
        broken.instance_path + "/frames/1",
        accept='multipart/related; type="application/octet-stream"',
    )
    assert frames.status_code == 406

    log = server.log()
    rendered = re.findall(r"WARNING .*WADO-RS rendered: cannot decode instance (\d+) \((\w+)\)", log)
    assert len(rendered) == 1, log
    framed = re.findall(r"WARNING .*WADO-RS frames: cannot decode instance (\d+) \((\w+)\)", log)
    assert framed == rendered
    assert "Traceback" not in log
    assert broken.sop_instance_uid not in log


def test_store_log_counts_failure_reasons(server_factory: Callable[..., ServerProcess]) -> None:
    server = server_factory()
    stored = copy_with_new_uids(MR)
    response = store(server, [stored.data, b"not DICOM" * 100, b"\0" * 1000])
    assert response.status_code == 202, response.text
    assert "STOW-RS: 1 stored, 0 already stored, 2 failed (Failure Reasons: 0xC000: 2)" in server.log()
