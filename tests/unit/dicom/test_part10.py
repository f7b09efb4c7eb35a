"""The check of the first bytes of a stored body, before pydicom parses it."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import pytest
from pydicom.dataset import Dataset

from dicomweb_server.dicom.parse import InstanceError
from dicomweb_server.dicom.part10 import check_start
from tests.testdata import entries, path_of, read

ZEROS = b"\0" * 100_000
PREAMBLE = b"\0" * 128 + b"DICM"


def _write(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "body.bin"
    path.write_bytes(data)
    return path


def _rejection(path: Path) -> str:
    with pytest.raises(InstanceError) as raised:
        check_start(path)
    return raised.value.message


def _file_meta(dataset: Dataset) -> bytes:
    """Return the File Meta Information as written in a Part 10 file, without the preamble."""
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    data = buffer.getvalue()[len(PREAMBLE) :]
    group_length = struct.unpack("<L", data[8:12])[0]
    return data[: 12 + group_length]


def test_check_start_zeros_without_preamble(tmp_path: Path) -> None:
    message = _rejection(_write(tmp_path, ZEROS))

    assert "not a DICOM data set" in message
    assert "(0000,0000)" in message


def test_check_start_zeros_after_preamble(tmp_path: Path) -> None:
    message = _rejection(_write(tmp_path, PREAMBLE + ZEROS))

    assert "not a DICOM file" in message
    assert "(0000,0000)" in message


def test_check_start_zeros_after_file_meta(tmp_path: Path) -> None:
    meta = _file_meta(read("modalities/ct/CT_small.dcm"))

    message = _rejection(_write(tmp_path, PREAMBLE + meta + ZEROS))

    assert "(0000,0000)" in message


def test_check_start_length_beyond_body(tmp_path: Path) -> None:
    # (0008,0016) UI with a length of 60000 bytes, in a body of a few bytes.
    element = struct.pack("<HH2sH", 0x0008, 0x0016, b"UI", 60000) + b"1.2"

    message = _rejection(_write(tmp_path, element))

    assert "60000" in message


def test_check_start_file_meta_without_vr(tmp_path: Path) -> None:
    message = _rejection(_write(tmp_path, PREAMBLE + struct.pack("<HHL", 0x0002, 0x0000, 4) + ZEROS))

    assert "(0002,0000)" in message


def test_check_start_bare_data_set(tmp_path: Path) -> None:
    dataset = read("modalities/ct/CT_small.dcm")
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    bare = buffer.getvalue()[len(PREAMBLE) + len(_file_meta(dataset)) :]

    check_start(_write(tmp_path, bare))


@pytest.mark.parametrize("entry", entries(), ids=lambda entry: entry["path"])
def test_check_start_shared_files(entry: dict[str, object]) -> None:
    check_start(path_of(entry))
