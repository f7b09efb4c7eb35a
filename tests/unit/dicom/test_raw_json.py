"""DICOM JSON built from raw bytes, checked against pydicom's conversion of the same elements."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from pydicom.dataelem import RawDataElement, convert_raw_data_element
from pydicom.dataset import Dataset
from pydicom.tag import Tag

from dicomweb_server.dicom import parse
from dicomweb_server.dicom.parse import InstanceError, read_instance
from dicomweb_server.dicom.raw_json import fast_path_applies, raw_element_json
from tests.testdata import TESTDATA, entries, path_of

LATIN_1 = ["iso8859"]
UTF_8 = ["UTF8"]

# (VR, encoded value, encodings, handled): ``handled`` is True where raw_element_json builds the
# JSON itself and False where it leaves the element to pydicom.
CASES = [
    ("CS", b"ORIGINAL\\PRIMARY\\AXIAL ", LATIN_1, True),
    ("CS", b"  ", LATIN_1, True),
    ("CS", b"\\", LATIN_1, True),
    ("CS", b"A \\B\x00", LATIN_1, True),
    ("DA", b"20240115", LATIN_1, True),
    ("TM", b"101500.123 ", LATIN_1, True),
    ("DT", b"20240115101500", LATIN_1, True),
    ("AS", b"045Y", LATIN_1, True),
    ("AE", b" STORESCP  ", LATIN_1, True),
    ("AE", b"A\\ B ", LATIN_1, True),
    ("UI", b"1.2.840.10008.5.1.4.1.1.2\x00", LATIN_1, True),
    ("UI", b" 1.2.3\\1.2.4 \x00", LATIN_1, True),
    ("UI", b"\x00", LATIN_1, True),
    ("UR", b"http://example.org/a b ", LATIN_1, True),
    ("IS", b"12", LATIN_1, True),
    ("IS", b" -3\\+4 ", LATIN_1, True),
    ("IS", b"  ", LATIN_1, True),
    ("IS", b"1.0", LATIN_1, False),
    ("IS", b"1\\", LATIN_1, False),
    ("IS", b"1_000", LATIN_1, False),
    ("IS", b"12345678901234567890", LATIN_1, False),
    ("DS", b"0.5\\-1.25e3 ", LATIN_1, True),
    ("DS", b" 512 ", LATIN_1, True),
    ("DS", b".5\\5.", LATIN_1, True),
    ("DS", b"\x00", LATIN_1, True),
    ("DS", b"NaN", LATIN_1, False),
    ("DS", b"1\\\\2", LATIN_1, False),
    ("DS", b"1,5", LATIN_1, False),
    ("LO", b"Head \\Neck\x00", LATIN_1, True),
    ("LO", "Kr\u00e4ftig".encode("latin-1"), LATIN_1, True),
    ("LO", "Kr\u00e4ftig".encode(), UTF_8, True),
    ("LO", b"\xff\xfe", UTF_8, False),
    ("SH", b"\x1b$BF|K\\\x1b(B", ["iso2022_jp"], False),
    ("SH", b"CT1 ", LATIN_1, True),
    ("UC", b"a\\b", LATIN_1, True),
    ("LT", b"line one\\still one  ", LATIN_1, True),
    ("ST", b"\x00\x00", LATIN_1, True),
    ("UT", b"text", ["no-such-codec"], False),
    ("US", b"\x00\x02", LATIN_1, True),
    ("US", b"\x01\x00\x02\x00\x03\x00", LATIN_1, True),
    ("US", b"\x01\x00\x02", LATIN_1, False),
    ("SS", b"\xff\xff", LATIN_1, True),
    ("UL", b"\x00\x00\x01\x00", LATIN_1, True),
    ("SL", b"\xfe\xff\xff\xff", LATIN_1, True),
    ("FL", b"\x00\x00\xc0\x3f", LATIN_1, True),
    ("FD", b"\x00\x00\x00\x00\x00\x00\xf8\x7f", LATIN_1, True),
    ("UV", b"\x01\x00\x00\x00\x00\x00\x00\x00", LATIN_1, True),
    ("SV", b"\xff\xff\xff\xff\xff\xff\xff\xff", LATIN_1, True),
    ("FL", b"", LATIN_1, True),
    ("PN", b"Doe^John", LATIN_1, False),
    ("OB", b"\x00\x01", LATIN_1, False),
    ("AT", b"\x10\x00\x10\x00", LATIN_1, False),
]


def _raw(vr: str, value: bytes, tag: int = 0x00091010) -> RawDataElement:
    return RawDataElement(Tag(tag), vr, len(value), value, 0, False, True)


def _pydicom_json(raw: RawDataElement, encodings: list[str]) -> dict[str, Any]:
    return convert_raw_data_element(raw, encoding=encodings, ds=Dataset()).to_json_dict(None, 1024)


def test_raw_json_runs_with_server_options() -> None:
    # The test session sets pydicom's options as the server does; otherwise nothing below runs.
    assert fast_path_applies()


@pytest.mark.parametrize(("vr", "value", "encodings", "handled"), CASES)
def test_raw_json_matches_pydicom(vr: str, value: bytes, encodings: list[str], handled: bool) -> None:
    raw = _raw(vr, value)
    converted = raw_element_json(raw, encodings)
    if not handled:
        assert converted is None
        return
    assert converted is not None
    expected = _pydicom_json(raw, encodings)
    assert orjson.dumps(converted) == orjson.dumps(expected)


def test_raw_json_leaves_implicit_vr_to_pydicom() -> None:
    raw = RawDataElement(Tag(0x00080060), "CS", 2, b"CT", 0, True, True)
    assert raw_element_json(raw, LATIN_1) is None


def test_raw_json_leaves_big_endian_to_pydicom() -> None:
    raw = RawDataElement(Tag(0x00280010), "US", 2, b"\x02\x00", 0, False, False)
    assert raw_element_json(raw, LATIN_1) is None


def test_raw_json_leaves_lut_descriptor_to_pydicom() -> None:
    # pydicom adds 65536 to a negative first value of (0028,3002) LUT Descriptor.
    assert raw_element_json(_raw("SS", b"\x00\x80\x00\x00\x10\x00", 0x00283002), LATIN_1) is None


def _metadata_by_pydicom(path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    with monkeypatch.context() as patched:
        patched.setattr(parse, "raw_element_json", lambda raw, encodings: None)
        return read_instance(path).metadata


def _readable(entry: dict[str, Any]) -> bool:
    try:
        read_instance(path_of(entry))
    except InstanceError:
        return False
    return True


@pytest.mark.parametrize("relative", [entry["path"] for entry in entries(broken=None) if _readable(entry)])
def test_raw_json_metadata_same_as_pydicom(relative: str, monkeypatch: pytest.MonkeyPatch) -> None:
    entry = next(entry for entry in entries(broken=None) if entry["path"] == relative)
    path = path_of(entry)
    metadata = read_instance(path).metadata
    assert orjson.dumps(metadata) == orjson.dumps(_metadata_by_pydicom(path, monkeypatch))


def test_raw_json_converts_most_elements_of_ct(monkeypatch: pytest.MonkeyPatch) -> None:
    converted: list[dict[str, Any]] = []

    def counting(raw: RawDataElement, encodings: list[str]) -> dict[str, Any] | None:
        result = raw_element_json(raw, encodings)
        if result is not None:
            converted.append(result)
        return result

    monkeypatch.setattr(parse, "raw_element_json", counting)
    metadata = read_instance(TESTDATA / "dicom/series/77654033/CT2/17106.dcm").metadata
    assert len(converted) > len(metadata) * 3 // 4
