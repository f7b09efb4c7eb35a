"""Recognize a DICOM Part 10 file, and give a bare data set the preamble and File Meta Information.

STOW-RS clients sometimes send a data set without the 128-byte preamble, "DICM" and the File
Meta Information group (0002,eeee). The archive stores every instance as a Part 10 file, so it
writes those in front of the bytes received and leaves the data set itself untouched.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from pydicom import dcmread
from pydicom.dataset import FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_file_meta_info
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    UID,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from dicomweb_server.dicom.parse import InstanceError
from dicomweb_server.dicom.status import FailureReason

PREAMBLE_LENGTH = 128
MAGIC = b"DICM"


def has_part10_header(path: Path) -> bool:
    """Return whether the file starts with a 128-byte preamble followed by "DICM"."""
    with path.open("rb") as fp:
        head = fp.read(PREAMBLE_LENGTH + len(MAGIC))
    return head[PREAMBLE_LENGTH:] == MAGIC


def write_part10(source: Path, target: Path, transfer_syntax_hint: str | None = None) -> None:
    """Write ``source``, a data set without preamble, to ``target`` as a Part 10 file.

    The transfer syntax of the File Meta Information is the one the data set is encoded in,
    as pydicom detects it; ``transfer_syntax_hint`` (from the part's Content-Type) is used only
    when it names an encoding that agrees with the detected one.

    Raises
    ------
    InstanceError
        When the bytes are not a DICOM data set.
    """
    with source.open("rb") as fp:
        starts_with_meta = fp.read(2) == b"\x02\x00"
    if starts_with_meta:
        _prepend(source, target, b"")
        return

    try:
        dataset = dcmread(source, force=True, stop_before_pixels=True)
        implicit, little_endian = dataset.original_encoding
        sop_class_uid = dataset.get("SOPClassUID")
        sop_instance_uid = dataset.get("SOPInstanceUID")
    except Exception as error:  # noqa: BLE001 - any parser failure on untrusted input is a client error
        raise InstanceError(
            FailureReason.CANNOT_UNDERSTAND, f"the part is not a DICOM data set: {error}"
        ) from error
    if implicit is None or not (sop_class_uid and sop_instance_uid):
        raise InstanceError(
            FailureReason.CANNOT_UNDERSTAND,
            "the part is neither a DICOM file nor a data set with SOPClassUID and SOPInstanceUID",
        )

    transfer_syntax = _detected_syntax(implicit, little_endian, transfer_syntax_hint)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class_uid
    meta.MediaStorageSOPInstanceUID = sop_instance_uid
    meta.TransferSyntaxUID = transfer_syntax
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    buffer = DicomBytesIO()
    write_file_meta_info(buffer, meta, enforce_standard=True)
    _prepend(source, target, buffer.getvalue())


def _detected_syntax(implicit: bool, little_endian: bool, hint: str | None) -> UID:
    if implicit:
        detected = ImplicitVRLittleEndian
    elif little_endian:
        detected = ExplicitVRLittleEndian
    else:
        detected = ExplicitVRBigEndian
    if hint:
        hinted = UID(hint)
        if hinted.is_transfer_syntax and (hinted.is_implicit_VR, hinted.is_little_endian) == (
            implicit,
            little_endian,
        ):
            return hinted
    return detected


def _prepend(source: Path, target: Path, file_meta: bytes) -> None:
    with target.open("wb") as out, source.open("rb") as data:
        out.write(b"\0" * PREAMBLE_LENGTH + MAGIC + file_meta)
        shutil.copyfileobj(data, out, 1024 * 1024)
