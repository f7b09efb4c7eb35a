"""Recognize a DICOM Part 10 file, and give a bare data set the preamble and File Meta Information.

STOW-RS clients sometimes send a data set without the 128-byte preamble, "DICM" and the File
Meta Information group (0002,eeee). The archive stores every instance as a Part 10 file, so it
writes those in front of the bytes received and leaves the data set itself untouched.
"""

from __future__ import annotations

import shutil
import struct
from pathlib import Path
from typing import BinaryIO

from pydicom import dcmread
from pydicom.datadict import DicomDictionary
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

from dicomweb_server.dicom.parse import DEFLATED_TRANSFER_SYNTAXES, InstanceError
from dicomweb_server.dicom.status import FailureReason

PREAMBLE_LENGTH = 128
MAGIC = b"DICM"
FILE_META_GROUP = 0x0002
TRANSFER_SYNTAX_ELEMENT = 0x0010
MAX_FILE_META_ELEMENTS = 100
UNDEFINED_LENGTH = 0xFFFFFFFF

_EXPLICIT_VRS = frozenset(
    b"AE AS AT CS DA DS DT FD FL IS LO LT OB OD OF OL OV OW PN SH SL SQ SS ST SV TM UC UI UL UN UR US UT "
    b"UV".split()
)
_LONG_VRS = frozenset(b"OB OD OF OL OV OW SQ SV UC UN UR UT UV".split())
"""VRs whose explicit encoding has two reserved bytes and a 4-byte length (PS3.5 7.1.2)."""

_KNOWN_GROUPS = frozenset(tag >> 16 for tag in DicomDictionary) - {0x0000, 0xFFFA, 0xFFFC, 0xFFFE}
"""Groups of standard data elements. Group 0000 contains DIMSE commands, and FFFx items and delimiters."""
_REPEATING_GROUPS = range(0x5000, 0x6020)
"""Curve (50xx) and overlay (60xx) groups, which the dictionary lists as patterns."""
_PRIVATE_GROUPS = range(0x0009, 0xFFFF, 2)
"""Odd groups that private data elements may use; 0001 to 0007 and FFFF are not allowed (PS3.5 7.8.1)."""


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


def check_start(path: Path) -> None:
    """Check that a file starts like DICOM, before pydicom parses it.

    pydicom reads zeros as endless empty (0000,0000) elements when it is forced to read a
    stream, so a large body of zeros would be parsed to its end before it is rejected. Here the
    File Meta Information, when present, is walked element by element, and the first element of
    the data set after it must be plausible (see :func:`first_element_problem`). A deflated data
    set is compressed, so its first element is not checked.

    Raises
    ------
    InstanceError
        When the File Meta Information or the first data set element is implausible.
    """
    size = path.stat().st_size
    with path.open("rb") as fp:
        has_preamble = fp.read(PREAMBLE_LENGTH + len(MAGIC))[PREAMBLE_LENGTH:] == MAGIC
        position = PREAMBLE_LENGTH + len(MAGIC) if has_preamble else 0
        fp.seek(position)
        if has_preamble or fp.read(2) == b"\x02\x00":
            position, transfer_syntax = _skip_file_meta(fp, position, size)
        else:
            transfer_syntax = None
        fp.seek(position)
        head = fp.read(12)

    if position == size or (transfer_syntax is not None and transfer_syntax in DEFLATED_TRANSFER_SYNTAXES):
        return
    problem = first_element_problem(head, size - position)
    if problem is not None:
        kind = "DICOM file" if has_preamble else "DICOM data set"
        raise InstanceError(FailureReason.CANNOT_UNDERSTAND, f"the part is not a {kind}: {problem}")


def _skip_file_meta(fp: BinaryIO, position: int, size: int) -> tuple[int, str | None]:
    """Return where the data set starts after the File Meta Information, and its TransferSyntaxUID.

    The File Meta Information is always explicit VR little endian (PS3.10 7.1).
    """
    transfer_syntax = None
    for _ in range(MAX_FILE_META_ELEMENTS):
        fp.seek(position)
        head = fp.read(12)
        if len(head) < 8 or struct.unpack("<H", head[:2])[0] != FILE_META_GROUP:
            return position, transfer_syntax
        element, vr = struct.unpack("<H", head[2:4])[0], head[4:6]
        if vr not in _EXPLICIT_VRS:
            raise InstanceError(
                FailureReason.CANNOT_UNDERSTAND,
                f"the File Meta Information element (0002,{element:04X}) has no valid VR; "
                "File Meta Information is always explicit VR little endian",
            )
        long_form = vr in _LONG_VRS
        length = struct.unpack("<L", head[8:12])[0] if long_form else struct.unpack("<H", head[6:8])[0]
        value_start = position + (12 if long_form else 8)
        if length == UNDEFINED_LENGTH or value_start + length > size:
            raise InstanceError(
                FailureReason.CANNOT_UNDERSTAND,
                f"the File Meta Information element (0002,{element:04X}) has a value length of {length} "
                "bytes, which does not fit in the file",
            )
        if element == TRANSFER_SYNTAX_ELEMENT:
            fp.seek(value_start)
            transfer_syntax = fp.read(length).rstrip(b"\0 ").decode("ascii", "replace")
        position = value_start + length
    raise InstanceError(
        FailureReason.CANNOT_UNDERSTAND,
        f"the File Meta Information has more than {MAX_FILE_META_ELEMENTS} elements; "
        "PS3.10 defines about a dozen",
    )


def first_element_problem(head: bytes, size: int) -> str | None:
    """Return why the first bytes of a data set cannot be its first data element, or None when they can.

    ``head`` is the first 12 bytes and ``size`` the size of the whole data set. The element must
    have the tag of a standard or private group, read as little or big endian, and a length that fits in
    ``size``. When bytes 4 and 5 are a VR the element is read as explicit VR (PS3.5 7.1.2),
    otherwise as implicit VR (PS3.5 7.1.3).
    """
    if len(head) < 8:
        return f"it has {size} bytes, fewer than one data element needs"
    for order in ("<", ">"):
        group = struct.unpack(order + "H", head[:2])[0]
        if group in _KNOWN_GROUPS or group in _REPEATING_GROUPS or group in _PRIVATE_GROUPS:
            return _length_problem(head, size, order)
    group, element = struct.unpack("<HH", head[:4])
    return f"it starts with the tag ({group:04X},{element:04X}), which is in no standard or private group"


def _length_problem(head: bytes, size: int, order: str) -> str | None:
    vr = head[4:6]
    if vr in _LONG_VRS and len(head) >= 12:
        length, header = struct.unpack(order + "L", head[8:12])[0], 12
    elif vr in _EXPLICIT_VRS:
        length, header = struct.unpack(order + "H", head[6:8])[0], 8
    else:
        length, header = struct.unpack(order + "L", head[4:8])[0], 8
    if length == UNDEFINED_LENGTH or header + length <= size:
        return None
    return f"its first data element has a value length of {length} bytes, longer than the {size} bytes sent"
