"""Transfer syntaxes: what the archive knows of each, and conversion to Explicit VR Little Endian.

The table covers the syntaxes of the current standard, including some that pydicom does not
list yet (JPEG XL, Deflated Image Frame Compression), so that instances in them can be stored
and returned as they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

import numpy as np
from pydicom import dcmread, dcmwrite
from pydicom.dataset import Dataset
from pydicom.pixels import get_decoder
from pydicom.uid import UID

EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1"
IMPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2"
EXPLICIT_VR_BIG_ENDIAN = "1.2.840.10008.1.2.2"
ANY = "*"


@dataclass(frozen=True)
class TransferSyntax:
    """One transfer syntax and how frames in it are labelled (PS3.18 Table 8.7.3-2 to 8.7.3-5)."""

    uid: str
    name: str
    encapsulated: bool
    frame_media_type: str

    def __str__(self) -> str:
        return f"{self.uid} ({self.name})"


_OCTET = "application/octet-stream"

_TABLE = (
    TransferSyntax(IMPLICIT_VR_LITTLE_ENDIAN, "Implicit VR Little Endian", False, _OCTET),
    TransferSyntax(EXPLICIT_VR_LITTLE_ENDIAN, "Explicit VR Little Endian", False, _OCTET),
    TransferSyntax(
        "1.2.840.10008.1.2.1.98", "Encapsulated Uncompressed Explicit VR Little Endian", True, _OCTET
    ),
    TransferSyntax("1.2.840.10008.1.2.1.99", "Deflated Explicit VR Little Endian", False, _OCTET),
    TransferSyntax(EXPLICIT_VR_BIG_ENDIAN, "Explicit VR Big Endian", False, _OCTET),
    TransferSyntax("1.2.840.10008.1.2.4.50", "JPEG Baseline (Process 1)", True, "image/jpeg"),
    TransferSyntax("1.2.840.10008.1.2.4.51", "JPEG Extended (Process 2 and 4)", True, "image/jpeg"),
    TransferSyntax(
        "1.2.840.10008.1.2.4.57", "JPEG Lossless, Non-Hierarchical (Process 14)", True, "image/jpeg"
    ),
    TransferSyntax(
        "1.2.840.10008.1.2.4.70",
        "JPEG Lossless, Non-Hierarchical, First-Order Prediction (Process 14 [Selection Value 1])",
        True,
        "image/jpeg",
    ),
    TransferSyntax("1.2.840.10008.1.2.4.80", "JPEG-LS Lossless Image Compression", True, "image/jls"),
    TransferSyntax(
        "1.2.840.10008.1.2.4.81", "JPEG-LS Lossy (Near-Lossless) Image Compression", True, "image/jls"
    ),
    TransferSyntax(
        "1.2.840.10008.1.2.4.90", "JPEG 2000 Image Compression (Lossless Only)", True, "image/jp2"
    ),
    TransferSyntax("1.2.840.10008.1.2.4.91", "JPEG 2000 Image Compression", True, "image/jp2"),
    TransferSyntax(
        "1.2.840.10008.1.2.4.92",
        "JPEG 2000 Part 2 Multi-component Image Compression (Lossless Only)",
        True,
        "image/jpx",
    ),
    TransferSyntax(
        "1.2.840.10008.1.2.4.93", "JPEG 2000 Part 2 Multi-component Image Compression", True, "image/jpx"
    ),
    TransferSyntax("1.2.840.10008.1.2.4.100", "MPEG2 Main Profile / Main Level", True, "video/mpeg"),
    TransferSyntax("1.2.840.10008.1.2.4.101", "MPEG2 Main Profile / High Level", True, "video/mpeg"),
    TransferSyntax("1.2.840.10008.1.2.4.102", "MPEG-4 AVC/H.264 High Profile / Level 4.1", True, "video/mp4"),
    TransferSyntax(
        "1.2.840.10008.1.2.4.103",
        "MPEG-4 AVC/H.264 BD-compatible High Profile / Level 4.1",
        True,
        "video/mp4",
    ),
    TransferSyntax(
        "1.2.840.10008.1.2.4.104", "MPEG-4 AVC/H.264 High Profile / Level 4.2 For 2D Video", True, "video/mp4"
    ),
    TransferSyntax(
        "1.2.840.10008.1.2.4.105", "MPEG-4 AVC/H.264 High Profile / Level 4.2 For 3D Video", True, "video/mp4"
    ),
    TransferSyntax(
        "1.2.840.10008.1.2.4.106", "MPEG-4 AVC/H.264 Stereo High Profile / Level 4.2", True, "video/mp4"
    ),
    TransferSyntax("1.2.840.10008.1.2.4.107", "HEVC/H.265 Main Profile / Level 5.1", True, "video/mp4"),
    TransferSyntax("1.2.840.10008.1.2.4.108", "HEVC/H.265 Main 10 Profile / Level 5.1", True, "video/mp4"),
    TransferSyntax("1.2.840.10008.1.2.4.110", "JPEG XL Lossless", True, "image/jxl"),
    TransferSyntax("1.2.840.10008.1.2.4.111", "JPEG XL JPEG Recompression", True, "image/jxl"),
    TransferSyntax("1.2.840.10008.1.2.4.112", "JPEG XL", True, "image/jxl"),
    TransferSyntax(
        "1.2.840.10008.1.2.4.201",
        "High-Throughput JPEG 2000 Image Compression (Lossless Only)",
        True,
        "image/jphc",
    ),
    TransferSyntax(
        "1.2.840.10008.1.2.4.202",
        "High-Throughput JPEG 2000 with RPCL Options Image Compression (Lossless Only)",
        True,
        "image/jphc",
    ),
    TransferSyntax(
        "1.2.840.10008.1.2.4.203", "High-Throughput JPEG 2000 Image Compression", True, "image/jphc"
    ),
    TransferSyntax("1.2.840.10008.1.2.5", "RLE Lossless", True, "image/dicom-rle"),
    TransferSyntax("1.2.840.10008.1.2.8.1", "Deflated Image Frame Compression", True, _OCTET),
)

TRANSFER_SYNTAXES: dict[str, TransferSyntax] = {syntax.uid: syntax for syntax in _TABLE}


def lookup(uid: str) -> TransferSyntax | None:
    """Return what the archive knows of a transfer syntax, or None for an unknown UID."""
    return TRANSFER_SYNTAXES.get(uid)


def is_little_endian(uid: str) -> bool:
    """Return whether data sets in this syntax are little endian; every syntax but one is."""
    return uid != EXPLICIT_VR_BIG_ENDIAN


def describe(uid: str) -> str:
    syntax = lookup(uid)
    return str(syntax) if syntax else uid


def can_decode(uid: str) -> bool:
    """Return whether pixel data in this syntax can be decoded here (a pydicom plugin is installed)."""
    syntax = lookup(uid)
    if syntax is None:
        return False
    if not syntax.encapsulated:
        return True
    try:
        decoder = get_decoder(UID(uid))
    except NotImplementedError:
        return False
    return decoder.is_available


def instance_syntaxes(stored_uid: str, has_pixel_data: bool) -> list[str]:
    """Return the syntaxes in which an instance stored in ``stored_uid`` can be sent, stored first.

    Explicit VR Little Endian is available unless the pixel data is compressed in a syntax that
    no installed decoder reads.
    """
    syntaxes = [stored_uid]
    if stored_uid != EXPLICIT_VR_LITTLE_ENDIAN and (not has_pixel_data or can_decode(stored_uid)):
        syntaxes.append(EXPLICIT_VR_LITTLE_ENDIAN)
    return syntaxes


def to_explicit_vr_little_endian(path: Path) -> bytes:
    """Read a stored Part 10 file and write it again in Explicit VR Little Endian.

    Compressed pixel data is decoded, keeping the SOP Instance UID (PS3.18 8.7.3.5 lets the
    origin server convert without creating a new instance). Runs in a worker thread: it reads the
    whole instance into memory.
    """
    dataset = dcmread(path)
    stored = lookup(str(dataset.file_meta.TransferSyntaxUID))
    if "PixelData" in dataset and stored is not None and stored.encapsulated:
        dataset.decompress(generate_instance_uid=False)
    if str(dataset.file_meta.TransferSyntaxUID) == EXPLICIT_VR_BIG_ENDIAN:
        _swap_binary_values(dataset)

    dataset.file_meta.TransferSyntaxUID = EXPLICIT_VR_LITTLE_ENDIAN
    buffer = BytesIO()
    dcmwrite(buffer, dataset, implicit_vr=False, little_endian=True, enforce_file_format=True)
    return buffer.getvalue()


_WORD_SIZES = {"OW": 2, "OF": 4, "OL": 4, "OD": 8, "OV": 8}


def _swap_binary_values(dataset: Dataset) -> None:
    """Reverse the byte order of OW, OF, OL, OD and OV values read from a big endian data set.

    pydicom converts numbers to Python values, so they are written back in the new byte order,
    but it keeps these values as the bytes read.
    """
    for element in dataset:
        if element.VR == "SQ":
            for item in element.value:
                _swap_binary_values(item)
        elif element.VR in _WORD_SIZES and element.value:
            size = _WORD_SIZES[element.VR]
            element.value = np.frombuffer(element.value, dtype=f">u{size}").astype(f"<u{size}").tobytes()
