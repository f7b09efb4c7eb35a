"""Copies of the shared test files under new UIDs, so that tests can store them on a shared server.

A copy keeps the original's bytes except the Study, Series and SOP Instance UIDs, which are
replaced by random UIDs of the same length. Lengths and offsets stay valid, so a copy parses
exactly as the original does, also in transfer syntaxes pydicom cannot write (JPEG XL,
Deflated Image Frame Compression). A deflated data set has no readable UIDs in its bytes, and
some files lack a UID, so those are read and written again by pydicom instead.
"""

from __future__ import annotations

import io
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydicom
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from tests.testdata import TESTDATA, entries

IDENTITY_KEYWORDS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")
DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1.99"


@dataclass(frozen=True)
class Copy:
    """A test file under new UIDs: its bytes, the data set read back from them, and its manifest entry."""

    relative: str
    data: bytes
    dataset: Dataset
    entry: dict[str, Any]

    @property
    def study_instance_uid(self) -> str:
        return str(self.dataset.StudyInstanceUID)

    @property
    def series_instance_uid(self) -> str:
        return str(self.dataset.SeriesInstanceUID)

    @property
    def sop_instance_uid(self) -> str:
        return str(self.dataset.SOPInstanceUID)

    @property
    def transfer_syntax_uid(self) -> str:
        return str(self.entry["transfer_syntax_uid"])

    @property
    def instance_path(self) -> str:
        return (
            f"/studies/{self.study_instance_uid}/series/{self.series_instance_uid}"
            f"/instances/{self.sop_instance_uid}"
        )


def random_uid(length: int) -> str:
    """Make a UID of exactly ``length`` characters under the 2.25 root (UUID-derived UIDs)."""
    digits = max(length - len("2.25."), 1)
    return "2.25." + str(random.randint(1, 9)) + "".join(random.choices("0123456789", k=digits - 1))


def manifest_entry(relative: str) -> dict[str, Any]:
    (entry,) = [entry for entry in entries(broken=None) if entry["path"] == f"dicom/{relative}"]
    return entry


def copy_with_new_uids(relative: str) -> Copy:
    """Copy ``dicom/<relative>`` of the shared test data under new Study, Series and SOP Instance UIDs."""
    entry = manifest_entry(relative)
    path = TESTDATA / "dicom" / relative
    original = pydicom.dcmread(path, force=True, stop_before_pixels=True)
    complete = all(original.get(keyword) for keyword in IDENTITY_KEYWORDS)
    if complete and entry["transfer_syntax_uid"] != DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN:
        data = _substituted(path, original)
    else:
        data = _resaved(path)
    dataset = pydicom.dcmread(io.BytesIO(data), force=True)
    for keyword in IDENTITY_KEYWORDS:
        assert dataset[keyword].value != original.get(keyword), (relative, keyword)
    return Copy(relative, data, dataset, entry)


def _substituted(path: Path, original: Dataset) -> bytes:
    data = path.read_bytes()
    old_uids = sorted({str(original[keyword].value) for keyword in IDENTITY_KEYWORDS}, key=len, reverse=True)
    for old in old_uids:
        new = random_uid(len(old))
        # A match must not continue with a digit or dot: a Series Instance UID often starts with
        # the Study Instance UID. Nothing is checked before the match, because in a big endian
        # data set the byte before a value is its length, which may be a digit or a dot.
        pattern = re.compile(re.escape(old.encode()) + rb"(?![0-9.])")
        data, count = pattern.subn(new.encode(), data)
        assert count >= 1, (path, old)
    return data


def _resaved(path: Path) -> bytes:
    """Write the file again with new UIDs: for deflated data sets and files that lack a UID."""
    dataset = pydicom.dcmread(path)
    for keyword in IDENTITY_KEYWORDS:
        setattr(dataset, keyword, generate_uid())
    dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()
