"""Positions of bulk data values recorded at ingest, checked against pydicom on real files."""

from __future__ import annotations

from typing import Any

import pydicom
import pytest
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset

from dicomweb_server.dicom.parse import UNDEFINED_LENGTH, InstanceError, read_instance
from tests.testdata import TESTDATA, entries, path_of

ICC_PROFILE_IN_SEQUENCE = "00480105/0/00282000"
ICON_PIXEL_DATA = "00880200/0/7FE00010"


def _element_at(dataset: Dataset, attribute_path: str) -> DataElement:
    """Follow a BulkDataURI attribute path ("00480105/0/00282000") through sequence items."""
    parts = attribute_path.split("/")
    current: Any = dataset
    for index, part in enumerate(parts):
        if index % 2 == 1:
            current = current[int(part)]
            continue
        element = current[int(part, 16)]
        if index == len(parts) - 1:
            return element  # type: ignore[no-any-return]
        current = element.value
    raise AssertionError(attribute_path)


def _readable_paths() -> list[str]:
    paths = []
    for entry in entries():
        try:
            read_instance(path_of(entry))
        except InstanceError:
            continue
        paths.append(entry["path"])
    return paths


@pytest.mark.parametrize("relative", _readable_paths())
def test_parse_bulkdata_positions_hold_values(relative: str) -> None:
    path = TESTDATA / relative
    parsed = read_instance(path)
    data = path.read_bytes()
    dataset = pydicom.dcmread(path)
    for attribute_path, location in parsed.bulkdata.items():
        if attribute_path == "7FE00010" or location.length == UNDEFINED_LENGTH:
            continue
        value = _element_at(dataset, attribute_path).value
        stored = data[location.offset : location.offset + location.length]
        assert stored == value, attribute_path


def test_parse_value_in_defined_length_sequence() -> None:
    path = TESTDATA / "dicom/modalities/sm/sm_image.dcm"
    parsed = read_instance(path)
    location = parsed.bulkdata[ICC_PROFILE_IN_SEQUENCE]
    icc_profile = _element_at(pydicom.dcmread(path), ICC_PROFILE_IN_SEQUENCE).value
    assert location.length == len(icc_profile)
    assert path.read_bytes()[location.offset : location.offset + location.length] == icc_profile


def test_parse_undefined_length_value_in_sequence_is_recorded() -> None:
    # The icon is JPEG 2000, encapsulated with undefined length inside an undefined length item.
    path = TESTDATA / "dicom/edge-cases/icon-overlay/slicethickness_empty_string.dcm"
    parsed = read_instance(path)
    assert parsed.bulkdata[ICON_PIXEL_DATA].length == UNDEFINED_LENGTH
    icon = parsed.metadata["00880200"]["Value"][0]["7FE00010"]
    assert icon["BulkDataURI"].endswith(f"/bulkdata/{ICON_PIXEL_DATA}")


def test_parse_every_bulk_data_uri_has_a_position() -> None:
    for relative in _readable_paths():
        parsed = read_instance(TESTDATA / relative)
        if not parsed.bulkdata:
            continue  # deflated and big endian data sets are read whole when a value is asked for
        for attribute_path in _bulk_data_paths(parsed.metadata):
            assert attribute_path in parsed.bulkdata, (relative, attribute_path)


def _bulk_data_paths(document: dict[str, Any], prefix: str = "") -> list[str]:
    paths = []
    for key, element in document.items():
        if "BulkDataURI" in element:
            paths.append(f"{prefix}{key}")
        if element.get("vr") == "SQ":
            for index, item in enumerate(element.get("Value", [])):
                paths += _bulk_data_paths(item, f"{prefix}{key}/{index}/")
    return paths
