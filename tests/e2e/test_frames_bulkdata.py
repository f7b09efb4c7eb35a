"""WADO-RS frames and bulk data against a live server, on real files of every transfer syntax.

Frames and bulk values are compared with what pydicom reads from the original bytes: native
frames and bulk values byte for byte, compressed frames as pydicom splits the encapsulated pixel
data, and decoded frames with pydicom's pixel arrays.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pydicom
import pytest
from dicomweb_client.api import DICOMwebClient
from pydicom.dataset import Dataset
from pydicom.encaps import generate_frames

from tests.e2e.copies import Copy, copy_with_new_uids
from tests.e2e.dicomweb_http import BodyPart, get, parse_multipart, store
from tests.services import ServerProcess
from tests.testdata import entries

EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1"
EXPLICIT_VR_BIG_ENDIAN = "1.2.840.10008.1.2.2"
NATIVE_SYNTAXES = {
    "1.2.840.10008.1.2",
    EXPLICIT_VR_LITTLE_ENDIAN,
    EXPLICIT_VR_BIG_ENDIAN,
    "1.2.840.10008.1.2.1.99",
}
NATIVE_PART = f"application/octet-stream; transfer-syntax={EXPLICIT_VR_LITTLE_ENDIAN}"

# Accept headers OHIF sends for frames and bulk data, and the one dicomweb-client sends by default.
OHIF_QUOTED = 'multipart/related; type="application/octet-stream"; transfer-syntax=*'
OHIF_UNQUOTED = "multipart/related; type=application/octet-stream; transfer-syntax=*"
OCTET_STREAM = 'multipart/related; type="application/octet-stream"'

NATIVE_MULTIFRAME = "modalities/mr/emri_small.dcm"
J2K_MULTIFRAME = "transfer-syntaxes/jpeg2000-lossless/emri_small_jpeg_2k_lossless.dcm"
RLE_MULTIFRAME = "modalities/us/US-PAL-8-10x-echo.dcm"
JPEG_YBR_MULTIFRAME = "modalities/us/examples_ybr_color.dcm"
JPEG_XL_MULTIFRAME = "transfer-syntaxes/jpeg-xl/will-jxl.dcm"
SINGLE_FRAME = "modalities/ct/CT_small.dcm"
NO_PIXEL_DATA = "modalities/sr/sr_document.dcm"
BINARY_SEGMENTATIONS = ("modalities/seg/liver.dcm", "series/77654033/SEG/seg_image_ct_binary.dcm")
ICC_PROFILE_IN_SEQUENCE = "modalities/sm/sm_image.dcm"
ICON_IN_SEQUENCE = "edge-cases/icon-overlay/slicethickness_empty_string.dcm"

_WORD_SIZES = {"OW": 2, "OF": 4, "OL": 4, "OD": 8, "OV": 8}


def _corpus() -> list[str]:
    return [entry["path"].removeprefix("dicom/") for entry in entries() if entry["path"].endswith(".dcm")]


@pytest.fixture(scope="module")
def copies(server: ServerProcess) -> dict[str, Copy]:
    """Store a copy under new UIDs of every test file the server accepts."""
    stored = {}
    for relative in _corpus():
        try:
            copy = copy_with_new_uids(relative)
        except AttributeError:
            continue  # no UIDs, and pydicom cannot write it back without MediaStorageSOPClassUID
        response = store(server, [copy.data])
        if response.status_code == 200:
            stored[relative] = copy
    for relative in (
        NATIVE_MULTIFRAME,
        J2K_MULTIFRAME,
        RLE_MULTIFRAME,
        JPEG_YBR_MULTIFRAME,
        JPEG_XL_MULTIFRAME,
    ):
        assert relative in stored, relative
    assert len(stored) >= 55
    return stored


def _frames(server: ServerProcess, copy: Copy, frame_list: str, accept: str) -> list[BodyPart]:
    response = get(server, f"{copy.instance_path}/frames/{frame_list}", headers={"Accept": accept})
    assert response.status_code == 200, (copy.relative, accept, response.text)
    return parse_multipart(response)


def _original(copy: Copy) -> Dataset:
    return pydicom.dcmread(io.BytesIO(copy.data), force=True)


def _native_frame(dataset: Dataset, number: int) -> bytes:
    length = len(dataset.PixelData) // int(dataset.get("NumberOfFrames") or 1)
    return bytes(dataset.PixelData[(number - 1) * length : number * length])


def _compressed_frames(dataset: Dataset) -> list[bytes]:
    return list(generate_frames(dataset.PixelData, number_of_frames=int(dataset.get("NumberOfFrames") or 1)))


def test_frames_native_in_order_asked(server: ServerProcess, copies: dict[str, Copy]) -> None:
    copy = copies[NATIVE_MULTIFRAME]
    original = _original(copy)
    for accept in (OCTET_STREAM, OHIF_QUOTED, OHIF_UNQUOTED, "*/*"):
        parts = _frames(server, copy, "3,1,10", accept)
        assert [part.content_type for part in parts] == [NATIVE_PART] * 3, accept
        assert [part.content for part in parts] == [_native_frame(original, n) for n in (3, 1, 10)], accept


def test_frames_repeated_number(server: ServerProcess, copies: dict[str, Copy]) -> None:
    copy = copies[NATIVE_MULTIFRAME]
    parts = _frames(server, copy, "2,2", OCTET_STREAM)
    assert [part.content for part in parts] == [_native_frame(_original(copy), 2)] * 2


@pytest.mark.parametrize("relative", BINARY_SEGMENTATIONS)
def test_frames_binary_segmentation(server: ServerProcess, copies: dict[str, Copy], relative: str) -> None:
    copy = copies[relative]
    parts = _frames(server, copy, "3,1", OCTET_STREAM)
    assert [part.content for part in parts] == [_native_frame(_original(copy), n) for n in (3, 1)]


@pytest.mark.parametrize(
    ("relative", "media_type"),
    [
        (J2K_MULTIFRAME, "image/jp2"),
        (RLE_MULTIFRAME, "image/dicom-rle"),
        (JPEG_YBR_MULTIFRAME, "image/jpeg"),
        (JPEG_XL_MULTIFRAME, "image/jxl"),
    ],
)
def test_frames_compressed_as_stored(
    server: ServerProcess, copies: dict[str, Copy], relative: str, media_type: str
) -> None:
    copy = copies[relative]
    stored_frames = _compressed_frames(_original(copy))
    for accept in (OHIF_QUOTED, OHIF_UNQUOTED, f'multipart/related; type="{media_type}"'):
        response = get(server, f"{copy.instance_path}/frames/5,2,9", headers={"Accept": accept})
        assert response.status_code == 200, (accept, response.text)
        assert f'type="{media_type}"' in response.headers["content-type"], accept
        parts = parse_multipart(response)
        expected_type = f"{media_type}; transfer-syntax={copy.transfer_syntax_uid}"
        assert [part.content_type for part in parts] == [expected_type] * 3, accept
        assert [part.content for part in parts] == [stored_frames[n - 1] for n in (5, 2, 9)], accept


def test_frames_any_media_type_means_uncompressed(server: ServerProcess, copies: dict[str, Copy]) -> None:
    copy = copies[J2K_MULTIFRAME]
    pixels = _original(copy).pixel_array
    for accept in ("*/*", 'multipart/related; type="*/*"'):
        parts = _frames(server, copy, "3", accept)
        assert [part.content_type for part in parts] == [NATIVE_PART], accept
        assert parts[0].content == pixels[2].astype(pixels.dtype.newbyteorder("<")).tobytes(), accept


def test_frames_compressed_decoded_to_native(server: ServerProcess, copies: dict[str, Copy]) -> None:
    copy = copies[J2K_MULTIFRAME]
    pixels = _original(copy).pixel_array
    parts = _frames(server, copy, "4,2", OCTET_STREAM)
    assert [part.content_type for part in parts] == [NATIVE_PART] * 2
    for part, number in zip(parts, (4, 2), strict=True):
        assert part.content == pixels[number - 1].astype(pixels.dtype.newbyteorder("<")).tobytes()


def test_frames_color_decoded_to_rgb(server: ServerProcess, copies: dict[str, Copy]) -> None:
    copy = copies[JPEG_YBR_MULTIFRAME]
    pixels = _original(copy).pixel_array  # pydicom converts YBR_FULL_422 to RGB
    decoding = copy.entry["decoding"]
    tolerance = 0 if decoding.get("plugins_agree") else float(decoding.get("max_abs_diff") or 0)
    parts = _frames(server, copy, "30,1", OCTET_STREAM)
    for part, number in zip(parts, (30, 1), strict=True):
        frame = np.frombuffer(part.content, dtype=pixels.dtype).reshape(pixels.shape[1:])
        assert np.abs(frame.astype(int) - pixels[number - 1].astype(int)).max() <= tolerance


def test_frames_undecodable_as_native_is_406(server: ServerProcess, copies: dict[str, Copy]) -> None:
    copy = copies[JPEG_XL_MULTIFRAME]
    response = get(server, f"{copy.instance_path}/frames/1", headers={"Accept": OCTET_STREAM})
    assert response.status_code == 406
    message = response.json()["message"]
    assert copy.transfer_syntax_uid in message
    assert "transfer-syntax=*" in message


def test_frames_single_part(server: ServerProcess, copies: dict[str, Copy]) -> None:
    copy = copies[NATIVE_MULTIFRAME]
    response = get(server, f"{copy.instance_path}/frames/7", headers={"Accept": "application/octet-stream"})
    assert response.status_code == 200
    assert response.headers["content-type"] == NATIVE_PART
    assert response.content == _native_frame(_original(copy), 7)


def test_frames_accept_query_parameter(server: ServerProcess, copies: dict[str, Copy]) -> None:
    copy = copies[J2K_MULTIFRAME]
    response = get(server, f"{copy.instance_path}/frames/1", params={"accept": OHIF_QUOTED})
    assert response.status_code == 200
    (part,) = parse_multipart(response)
    assert part.content == _compressed_frames(_original(copy))[0]


@pytest.mark.parametrize(
    ("relative", "frame_list", "named"),
    [(NATIVE_MULTIFRAME, "11", "11"), (NATIVE_MULTIFRAME, "2,99", "99"), (SINGLE_FRAME, "2", "2")],
)
def test_frames_out_of_range_is_404_naming_it(
    server: ServerProcess, copies: dict[str, Copy], relative: str, frame_list: str, named: str
) -> None:
    response = get(server, f"{copies[relative].instance_path}/frames/{frame_list}", headers={"Accept": "*/*"})
    assert response.status_code == 404
    assert f"frame {named} " in response.json()["message"]


@pytest.mark.parametrize(
    ("frame_list", "named"), [("0", "'0'"), ("x", "'x'"), ("1,,2", "''"), ("-1", "'-1'")]
)
def test_frames_malformed_list_is_400_naming_it(
    server: ServerProcess, copies: dict[str, Copy], frame_list: str, named: str
) -> None:
    response = get(server, f"{copies[NATIVE_MULTIFRAME].instance_path}/frames/{frame_list}")
    assert response.status_code == 400
    assert f"frame number {named}" in response.json()["message"]


def test_frames_list_too_long_is_400(server: ServerProcess, copies: dict[str, Copy]) -> None:
    path = copies[NATIVE_MULTIFRAME].instance_path
    for suffix in ("", "/rendered"):
        response = get(server, f"{path}/frames/{','.join(['1'] * 1001)}{suffix}", headers={"Accept": "*/*"})
        assert response.status_code == 400, suffix
        assert "1001 frame numbers, more than the maximum of 1000" in response.json()["message"]
    at_limit = get(server, f"{path}/frames/{','.join(['1'] * 1000)}", headers={"Accept": OCTET_STREAM})
    assert at_limit.status_code == 200


def test_frames_of_instance_without_pixel_data_is_404(server: ServerProcess, copies: dict[str, Copy]) -> None:
    response = get(server, f"{copies[NO_PIXEL_DATA].instance_path}/frames/1", headers={"Accept": "*/*"})
    assert response.status_code == 404
    assert "no pixel data" in response.json()["message"]


def _bulk_data_uris(document: dict[str, Any], prefix: tuple[str | int, ...] = ()) -> list[tuple[Any, str]]:
    """List (attribute path, BulkDataURI) pairs; a path is tags and item indices."""
    found = []
    for key, element in document.items():
        if "BulkDataURI" in element:
            found.append(((*prefix, key), element["BulkDataURI"]))
        if element.get("vr") == "SQ":
            for index, item in enumerate(element.get("Value", [])):
                found += _bulk_data_uris(item, (*prefix, key, index))
    return found


def _element_at(dataset: Dataset, path: tuple[str | int, ...]) -> Any:
    current: Any = dataset
    for position, step in enumerate(path):
        if isinstance(step, int):
            current = current[step]
            continue
        element = current[int(step, 16)]
        if position == len(path) - 1:
            return element
        current = element.value
    raise AssertionError(path)


def _little_endian(value: bytes, vr: str, transfer_syntax_uid: str) -> bytes:
    """Return a value as the server sends it: binary words of a big endian data set are swapped."""
    size = _WORD_SIZES.get(vr)
    if transfer_syntax_uid != EXPLICIT_VR_BIG_ENDIAN or size is None:
        return value
    return np.frombuffer(value, dtype=f">u{size}").astype(f"<u{size}").tobytes()


def _expected_parts(copy: Copy, original: Dataset, path: tuple[str | int, ...]) -> list[bytes]:
    element = _element_at(original, path)
    if path == ("7FE00010",) and copy.transfer_syntax_uid not in NATIVE_SYNTAXES:
        return _compressed_frames(original)
    return [_little_endian(bytes(element.value), str(element.VR), copy.transfer_syntax_uid)]


def test_bulkdata_every_uri_returns_value(server: ServerProcess, copies: dict[str, Copy]) -> None:
    checked = 0
    for relative, copy in copies.items():
        response = get(server, f"{copy.instance_path}/metadata")
        assert response.status_code == 200, relative
        (document,) = response.json()
        original = _original(copy)
        for path, uri in _bulk_data_uris(document):
            assert uri.startswith(f"{server.dicomweb}{copy.instance_path}/bulkdata/"), (relative, uri)
            fetched = get(server, uri.removeprefix(server.dicomweb), headers={"Accept": OHIF_QUOTED})
            assert fetched.status_code == 200, (relative, path, fetched.text)
            parts = [part.content for part in parse_multipart(fetched)]
            assert parts == _expected_parts(copy, original, path), (relative, path)
            checked += 1
    assert checked >= 60


def test_bulkdata_value_in_defined_length_sequence(server: ServerProcess, copies: dict[str, Copy]) -> None:
    copy = copies[ICC_PROFILE_IN_SEQUENCE]
    icc_profile = _original(copy)[0x00480105][0][0x00282000].value
    response = get(server, f"{copy.instance_path}/bulkdata/00480105/0/00282000")
    assert response.status_code == 200
    (part,) = parse_multipart(response)
    assert part.content_type == "application/octet-stream"
    assert part.content == icc_profile


def test_bulkdata_encapsulated_icon_in_sequence(server: ServerProcess, copies: dict[str, Copy]) -> None:
    copy = copies[ICON_IN_SEQUENCE]
    icon = _original(copy)[0x00880200][0][0x7FE00010].value
    response = get(server, f"{copy.instance_path}/bulkdata/00880200/0/7FE00010")
    assert response.status_code == 200
    (part,) = parse_multipart(response)
    assert part.content == icon


def test_bulkdata_compressed_pixel_data_default_is_decoded(
    server: ServerProcess, copies: dict[str, Copy]
) -> None:
    copy = copies[J2K_MULTIFRAME]
    pixels = _original(copy).pixel_array
    client = DICOMwebClient(server.dicomweb, headers=dict(server.headers))
    uri = f"{server.dicomweb}{copy.instance_path}/bulkdata/7FE00010"
    frames = client.retrieve_bulkdata(uri, media_types=("application/octet-stream",))
    assert frames == [frame.astype(pixels.dtype.newbyteorder("<")).tobytes() for frame in pixels]

    # Without media_types, dicomweb-client sends type="*/*": the default representation, which
    # for frames is uncompressed pixels.
    assert client.retrieve_bulkdata(uri) == frames


def test_bulkdata_compressed_pixel_data_as_stored(server: ServerProcess, copies: dict[str, Copy]) -> None:
    copy = copies[RLE_MULTIFRAME]
    response = get(server, f"{copy.instance_path}/bulkdata/7FE00010", headers={"Accept": OHIF_UNQUOTED})
    assert response.status_code == 200
    parts = parse_multipart(response)
    assert [part.content for part in parts] == _compressed_frames(_original(copy))
    expected_type = f"image/dicom-rle; transfer-syntax={copy.transfer_syntax_uid}"
    assert {part.content_type for part in parts} == {expected_type}


def test_bulkdata_native_pixel_data_is_one_part(server: ServerProcess, copies: dict[str, Copy]) -> None:
    copy = copies[NATIVE_MULTIFRAME]
    client = DICOMwebClient(server.dicomweb, headers=dict(server.headers))
    (value,) = client.retrieve_bulkdata(f"{server.dicomweb}{copy.instance_path}/bulkdata/7FE00010")
    assert value == _original(copy).PixelData


def test_bulkdata_unknown_path_is_404(server: ServerProcess, copies: dict[str, Copy]) -> None:
    copy = copies[SINGLE_FRAME]
    response = get(server, f"{copy.instance_path}/bulkdata/00091001", headers={"Accept": "*/*"})
    assert response.status_code == 404
    assert "00091001" in response.json()["message"]


def test_bulkdata_refuses_json(server: ServerProcess, copies: dict[str, Copy]) -> None:
    response = get(
        server,
        f"{copies[SINGLE_FRAME].instance_path}/bulkdata/7FE00010",
        headers={"Accept": "application/json"},
    )
    assert response.status_code == 406
    assert "application/json" in response.json()["message"]


@pytest.mark.parametrize(
    "relative",
    ["transfer-syntaxes/explicit-vr-be/MR_small_bigendian.dcm", "transfer-syntaxes/deflated/image_dfl.dcm"],
)
def test_frames_of_data_set_without_positions(
    server: ServerProcess, copies: dict[str, Copy], relative: str
) -> None:
    # Big endian and deflated instances are indexed without value positions, so their frames
    # come from parsing the stored file, converted to little endian.
    copy = copies[relative]
    array = _original(copy).pixel_array
    (part,) = _frames(server, copy, "1", OCTET_STREAM)
    assert part.content_type == NATIVE_PART
    assert part.content == array.astype(array.dtype.newbyteorder("<")).tobytes()
