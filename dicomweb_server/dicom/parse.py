"""Read a stored Part 10 file into what the index keeps: identity, DICOM JSON and byte locations.

Reading stops before (7FE0,0010) *Pixel Data* and defers every value longer than the bulk data
threshold, so a multi-gigabyte instance is read in a few kilobytes of memory. The positions of
the deferred values and of each frame are recorded instead, so that bulk data and frames can
later be served with ranged reads of the stored object.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from pydicom import dcmread
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.encaps import generate_fragmented_frames
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID
from pydicom.valuerep import BYTES_VR

from dicomweb_server.dicom import transfer
from dicomweb_server.dicom.raw_json import dataset_encodings, fast_path_applies, raw_element_json
from dicomweb_server.dicom.status import FailureReason, WarningReason
from dicomweb_server.dicom.uids import check_uid

BULK_DATA_THRESHOLD = 1024
"""Binary values longer than this many bytes are given as BulkDataURI instead of InlineBinary."""

PIXEL_DATA_TAG = 0x7FE00010
FLOAT_PIXEL_DATA_TAG = 0x7FE00008
DOUBLE_FLOAT_PIXEL_DATA_TAG = 0x7FE00009
UNDEFINED_LENGTH = 0xFFFFFFFF
ITEM_TAG = 0xFFFEE000
SEQUENCE_DELIMITER_TAG = 0xFFFEE0DD

DEFLATED_TRANSFER_SYNTAXES = frozenset({"1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.99"})
"""Syntaxes that deflate the whole data set, so byte positions in the file mean nothing."""

_REQUIRED_UIDS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID")
_LONG_VALUE_VRS = {"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"}
"""Explicit VRs whose element header has a 4-byte length (PS3.5 Table 7.1-1)."""
_PIXEL_DATA_VRS = {PIXEL_DATA_TAG: "OW", FLOAT_PIXEL_DATA_TAG: "OF", DOUBLE_FLOAT_PIXEL_DATA_TAG: "OD"}
"""The pixel data elements pydicom stops before, with their VR in an implicit VR data set."""


class InstanceError(ValueError):
    """A part that cannot be stored, with the Failure Reason the STOW-RS response reports."""

    def __init__(self, failure_reason: FailureReason, message: str) -> None:
        super().__init__(message)
        self.failure_reason = failure_reason
        self.message = message


@dataclass(frozen=True)
class BulkDataLocation:
    """Where the value of one bulk data element sits in the stored object."""

    offset: int
    length: int
    vr: str


@dataclass(frozen=True)
class PixelDataLayout:
    """Where each frame of the pixel data sits in the stored object.

    For encapsulated (compressed) pixel data each frame is a list of fragments, each an
    (offset, length) of the fragment's bytes without its item header. Native pixel data has one
    (offset, length) per frame.
    """

    encapsulated: bool
    frames: tuple[tuple[tuple[int, int], ...], ...]
    pixel_attributes: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "encapsulated": self.encapsulated,
            "frames": [[list(fragment) for fragment in frame] for frame in self.frames],
            "pixel_attributes": self.pixel_attributes,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PixelDataLayout:
        frames = tuple(
            tuple((int(offset), int(length)) for offset, length in frame) for frame in data["frames"]
        )
        return cls(bool(data["encapsulated"]), frames, dict(data.get("pixel_attributes", {})))


PIXEL_ATTRIBUTES = (
    "Rows",
    "Columns",
    "SamplesPerPixel",
    "BitsAllocated",
    "BitsStored",
    "HighBit",
    "PixelRepresentation",
    "PhotometricInterpretation",
    "PlanarConfiguration",
    "NumberOfFrames",
)
"""Attributes of the Image Pixel module needed to decode or describe one frame on its own."""


def pixel_attributes(dataset: Dataset) -> dict[str, Any]:
    """Return the Image Pixel module attributes of a data set as plain Python values."""
    values: dict[str, Any] = {}
    for keyword in PIXEL_ATTRIBUTES:
        value = dataset.get(keyword)
        if value is None or value == "":
            continue
        values[keyword] = str(value) if keyword == "PhotometricInterpretation" else int(value)
    return values


@dataclass(frozen=True)
class ParsedInstance:
    """What the archive learns from one stored instance.

    ``metadata`` is the instance as DICOM JSON (PS3.18 Annex F) in which every BulkDataURI is
    relative to the DICOMweb root ("studies/…/bulkdata/7FE00010"), because the absolute root
    depends on how each client reaches the server. ``bulkdata`` maps the attribute path used in
    those URIs ("7FE00010", "00880200/0/7FE00010") to the value's location, and is empty when
    positions in the file cannot be used (deflated or big endian data sets).
    """

    study_instance_uid: str
    series_instance_uid: str
    sop_instance_uid: str
    sop_class_uid: str
    transfer_syntax_uid: str
    metadata: dict[str, Any]
    bulkdata: dict[str, BulkDataLocation]
    pixel_data: PixelDataLayout | None
    warnings: tuple[tuple[WarningReason, str], ...] = field(default=())

    @property
    def base_uri(self) -> str:
        return instance_path(self.study_instance_uid, self.series_instance_uid, self.sop_instance_uid)


def instance_path(study_instance_uid: str, series_instance_uid: str, sop_instance_uid: str) -> str:
    """Return the path of an instance relative to the DICOMweb root."""
    return f"studies/{study_instance_uid}/series/{series_instance_uid}/instances/{sop_instance_uid}"


def read_instance(path: Path) -> ParsedInstance:
    """Read a Part 10 file (preamble, "DICM" and File Meta Information present).

    Raises
    ------
    InstanceError
        When the file is not DICOM, its transfer syntax is unknown, or a required UID is
        missing or unusable. The message says which, and never contains more of the data set
        than the client sent.
    """
    with path.open("rb") as fp:
        dataset = _read_dataset(fp)
        pixel_element_offset = fp.tell()

        transfer_syntax = _transfer_syntax(dataset)
        identity, warnings = _identity(dataset)
        offsets_usable = (
            transfer.is_little_endian(transfer_syntax) and transfer_syntax not in DEFLATED_TRANSFER_SYNTAXES
        )
        base = instance_path(*identity[:3])

        try:
            if not offsets_usable:
                return _read_without_offsets(path, transfer_syntax, identity, warnings, base)

            bulkdata: dict[str, BulkDataLocation] = {}
            metadata = dataset_to_json(dataset, base, bulkdata)
            pixel_data = _read_pixel_data(
                fp, pixel_element_offset, dataset, transfer_syntax, metadata, base, bulkdata
            )
            _check_within_file(path.stat().st_size, bulkdata, pixel_data)
        except InstanceError:
            raise
        except Exception as error:  # noqa: BLE001 - any parser failure on untrusted input is a client error
            raise InstanceError(
                FailureReason.CANNOT_UNDERSTAND, f"the data set cannot be parsed: {error}"
            ) from error

    return ParsedInstance(
        *identity,
        transfer_syntax_uid=str(transfer_syntax),
        metadata=metadata,
        bulkdata=bulkdata,
        pixel_data=pixel_data,
        warnings=tuple(warnings),
    )


def _read_dataset(fp: BinaryIO) -> Dataset:
    try:
        return dcmread(fp, defer_size=BULK_DATA_THRESHOLD, stop_before_pixels=True)
    except InvalidDicomError as error:
        raise InstanceError(
            FailureReason.CANNOT_UNDERSTAND, f"the part is not a DICOM file: {error}"
        ) from error
    except Exception as error:  # noqa: BLE001 - any parser failure on untrusted input is a client error
        raise InstanceError(
            FailureReason.CANNOT_UNDERSTAND, f"the DICOM file cannot be parsed: {error}"
        ) from error


def _transfer_syntax(dataset: Dataset) -> UID:
    file_meta = getattr(dataset, "file_meta", None)
    value = getattr(file_meta, "TransferSyntaxUID", None) if file_meta is not None else None
    if not value:
        raise InstanceError(
            FailureReason.CANNOT_UNDERSTAND,
            "the File Meta Information has no TransferSyntaxUID (0002,0010); "
            "write the file with complete File Meta Information",
        )
    uid = UID(str(value))
    if transfer.lookup(uid) is None:
        raise InstanceError(
            FailureReason.TRANSFER_SYNTAX_NOT_SUPPORTED,
            f"the transfer syntax {str(uid)!r} is not a DICOM transfer syntax this archive knows",
        )
    return uid


def _identity(dataset: Dataset) -> tuple[tuple[str, str, str, str], list[tuple[WarningReason, str]]]:
    values = []
    warnings: list[tuple[WarningReason, str]] = []
    for keyword in _REQUIRED_UIDS:
        try:
            value = dataset.get(keyword)
        except Exception as error:  # noqa: BLE001 - a malformed value is a client error
            raise InstanceError(
                FailureReason.CANNOT_UNDERSTAND, f"{keyword} cannot be read: {error}"
            ) from error
        if value is None or str(value).strip() == "":
            raise InstanceError(
                FailureReason.DATA_SET_DOES_NOT_MATCH,
                f"the required attribute {keyword} is missing or empty",
            )
        text = str(value).strip().rstrip("\0")
        check = check_uid(text)
        if not check.usable:
            raise InstanceError(
                FailureReason.CANNOT_UNDERSTAND, f"{keyword} value {text!r} cannot be used: {check.reason}"
            )
        if check.warning:
            warnings.append(
                (WarningReason.DATA_SET_DOES_NOT_MATCH_SOP_CLASS, f"{keyword} {text!r}: {check.warning}")
            )
        values.append(text)
    return (values[0], values[1], values[2], values[3]), warnings


def dataset_to_json(
    dataset: Dataset,
    base_uri: str,
    bulkdata: dict[str, BulkDataLocation] | None = None,
    path_prefix: str = "",
    stream_offset: int = 0,
) -> dict[str, Any]:
    """Convert a data set to DICOM JSON, giving long binary values as BulkDataURIs.

    Each BulkDataURI is ``{base_uri}/bulkdata/{path}``, where ``path`` lists the tags and
    item indices leading to the element ("00880200/0/7FE00010"). When ``bulkdata`` is given, the
    file position of each such value is recorded in it under the same path. ``stream_offset`` is
    the file position at which pydicom's positions for the elements of ``dataset`` start (see
    :func:`_items_offset`).
    """
    result: dict[str, Any] = {}
    encodings = dataset_encodings(dataset) if fast_path_applies() else None
    for tag in sorted(dataset.keys()):
        if tag >> 16 == 0x0002:
            continue
        raw = dataset.get_item(tag, keep_deferred=True)
        if raw is None:
            continue
        if encodings is not None and isinstance(raw, RawDataElement):
            converted = raw_element_json(raw, encodings)
            if converted is not None:
                result[f"{tag:08X}"] = converted
                continue

        path = f"{path_prefix}{tag:08X}"
        location = _raw_location(raw, stream_offset)
        deferred = _deferred_bulk_vr(raw)
        if deferred is not None:
            result[f"{tag:08X}"] = {"vr": deferred, "BulkDataURI": f"{base_uri}/bulkdata/{path}"}
            if bulkdata is not None and location is not None:
                bulkdata[path] = BulkDataLocation(location[0], location[1], deferred)
            continue

        try:
            element = dataset[tag]
            if element.VR == "SQ":
                items_offset = _items_offset(raw, stream_offset)
                result[f"{tag:08X}"] = _sequence_to_json(element, base_uri, bulkdata, path, items_offset)
                continue
            result[f"{tag:08X}"] = element.to_json_dict(
                _bulk_handler(base_uri, path, location, bulkdata), BULK_DATA_THRESHOLD
            )
        except InstanceError:
            raise
        except Exception as error:  # noqa: BLE001 - a malformed value is a client error
            raise InstanceError(
                FailureReason.CANNOT_UNDERSTAND,
                f"the value of the element at {_describe_path(path)} cannot be read: {error}",
            ) from error
    return result


def _describe_path(path: str) -> str:
    """Write an attribute path as tags: "(0008,1115)[0](0020,000E)"."""
    parts = []
    for part in path.split("/"):
        if part.isdigit() and len(part) < 8:
            parts.append(f"[{part}]")
        else:
            parts.append(f"({part[:4]},{part[4:]})")
    return "".join(parts)


def _sequence_to_json(
    element: DataElement,
    base_uri: str,
    bulkdata: dict[str, BulkDataLocation] | None,
    path: str,
    items_offset: int,
) -> dict[str, Any]:
    items = [
        dataset_to_json(item, base_uri, bulkdata, f"{path}/{index}/", items_offset)
        for index, item in enumerate(element.value)
    ]
    return {"vr": "SQ", "Value": items} if items else {"vr": "SQ"}


def _items_offset(raw: DataElement | RawDataElement, stream_offset: int) -> int:
    """Return the file position at which pydicom's positions inside a sequence's items start.

    pydicom keeps a sequence of defined length as raw bytes and parses its items later from a
    buffer holding only the sequence value, so positions inside the items count from the start
    of that value. A sequence of undefined length is parsed in place while the data set is read,
    so positions inside its items count from the same point as the sequence's own.
    """
    if isinstance(raw, RawDataElement):
        return stream_offset + raw.value_tell
    return stream_offset


def _raw_location(raw: DataElement | RawDataElement, stream_offset: int) -> tuple[int, int] | None:
    """Return the file position and length of a value not yet parsed; the length may be undefined."""
    if isinstance(raw, RawDataElement):
        return stream_offset + raw.value_tell, raw.length
    return None


def _deferred_bulk_vr(raw: DataElement | RawDataElement) -> str | None:
    """Return the VR of a value pydicom left unread because it is long and binary, else None."""
    if not isinstance(raw, RawDataElement) or raw.value is not None:
        return None
    if raw.length <= BULK_DATA_THRESHOLD or raw.length == UNDEFINED_LENGTH:
        return None
    vr = raw.VR or _implicit_vr(raw.tag)
    if vr == "UN" and not raw.tag.is_private:
        # pydicom replaces UN with the dictionary VR when it converts the element, so a long
        # UN value of a known text attribute is converted and read, not given as bulk data.
        vr = _implicit_vr(raw.tag)
    return vr if vr in BYTES_VR else None


def _implicit_vr(tag: int) -> str:
    try:
        vr = dictionary_VR(tag)
    except KeyError:
        return "UN"
    # An ambiguous VR of a long value in an implicit VR data set is OW: PS3.5 A.1 (c).
    return "OW" if " or " in vr else vr


def _bulk_handler(
    base_uri: str,
    path: str,
    location: tuple[int, int] | None,
    bulkdata: dict[str, BulkDataLocation] | None,
) -> Callable[[DataElement], str]:
    def handle(element: DataElement) -> str:
        if bulkdata is not None and location is not None:
            bulkdata[path] = BulkDataLocation(location[0], location[1], str(element.VR))
        return f"{base_uri}/bulkdata/{path}"

    return handle


def _read_pixel_data(
    fp: BinaryIO,
    element_offset: int,
    dataset: Dataset,
    transfer_syntax: UID,
    metadata: dict[str, Any],
    base_uri: str,
    bulkdata: dict[str, BulkDataLocation],
) -> PixelDataLayout | None:
    header = _read_pixel_data_header(
        fp, element_offset, transfer_syntax == transfer.IMPLICIT_VR_LITTLE_ENDIAN
    )
    if header is None:
        return None
    tag, vr, length, value_offset = header

    metadata[f"{tag:08X}"] = {"vr": vr, "BulkDataURI": f"{base_uri}/bulkdata/{tag:08X}"}
    bulkdata[f"{tag:08X}"] = BulkDataLocation(value_offset, length, vr)

    number_of_frames = _number_of_frames(dataset)
    if length == UNDEFINED_LENGTH:
        return _encapsulated_layout(fp, value_offset, number_of_frames, dataset)
    return _native_layout(value_offset, length, number_of_frames, dataset)


def _read_pixel_data_header(fp: BinaryIO, offset: int, implicit: bool) -> tuple[int, str, int, int] | None:
    """Read the header of the pixel data element where pydicom stopped reading.

    Returns its tag, VR, value length and value position, or None when no pixel data follows.
    """
    fp.seek(offset)
    head = fp.read(12)
    if len(head) < 8:
        return None
    group, element = struct.unpack("<HH", head[:4])
    tag = (group << 16) | element
    if tag not in _PIXEL_DATA_VRS:
        return None
    if implicit:
        (length,) = struct.unpack("<I", head[4:8])
        return tag, _PIXEL_DATA_VRS[tag], length, offset + 8
    vr = head[4:6].decode("ascii", "replace")
    if vr in _LONG_VALUE_VRS:
        (length,) = struct.unpack("<I", head[8:12])
        return tag, vr, length, offset + 12
    (length,) = struct.unpack("<H", head[6:8])
    return tag, vr, length, offset + 8


def _number_of_frames(dataset: Dataset) -> int:
    try:
        value = int(dataset.get("NumberOfFrames") or 1)
    except (TypeError, ValueError):
        return 1
    return max(value, 1)


def _encapsulated_layout(
    fp: BinaryIO, value_offset: int, number_of_frames: int, dataset: Dataset
) -> PixelDataLayout:
    fragments = _fragment_positions(fp, value_offset)
    if number_of_frames == 1:
        return PixelDataLayout(True, (tuple(fragments),), pixel_attributes(dataset))
    if len(fragments) == number_of_frames:
        return PixelDataLayout(True, tuple((fragment,) for fragment in fragments), pixel_attributes(dataset))

    fp.seek(value_offset)
    extended = _extended_offsets(dataset)
    counts = [
        len(frame)
        for frame in generate_fragmented_frames(
            fp, number_of_frames=number_of_frames, extended_offsets=extended
        )
    ]
    frames = []
    start = 0
    for count in counts[:number_of_frames]:
        frames.append(tuple(fragments[start : start + count]))
        start += count
    return PixelDataLayout(True, tuple(frames), pixel_attributes(dataset))


def _fragment_positions(fp: BinaryIO, value_offset: int) -> list[tuple[int, int]]:
    """List (offset, length) of every fragment after the Basic Offset Table, reading only headers."""
    position = value_offset
    fragments: list[tuple[int, int]] = []
    first = True
    while True:
        fp.seek(position)
        header = fp.read(8)
        if len(header) < 8:
            raise InstanceError(
                FailureReason.CANNOT_UNDERSTAND,
                "the encapsulated Pixel Data (7FE0,0010) ends without a Sequence Delimitation Item",
            )
        group, element, length = struct.unpack("<HHI", header)
        tag = (group << 16) | element
        if tag == SEQUENCE_DELIMITER_TAG:
            return fragments
        if tag != ITEM_TAG or length == UNDEFINED_LENGTH:
            raise InstanceError(
                FailureReason.CANNOT_UNDERSTAND,
                f"the encapsulated Pixel Data (7FE0,0010) has an invalid item at byte {position}",
            )
        if not first:
            fragments.append((position + 8, length))
        first = False
        position += 8 + length


def _extended_offsets(dataset: Dataset) -> tuple[bytes, bytes] | None:
    offsets = dataset.get("ExtendedOffsetTable")
    lengths = dataset.get("ExtendedOffsetTableLengths")
    if offsets is None or lengths is None:
        return None
    return bytes(offsets), bytes(lengths)


def _native_layout(
    value_offset: int, length: int, number_of_frames: int, dataset: Dataset
) -> PixelDataLayout | None:
    frame_bits = _frame_bits(dataset)
    if frame_bits is None or frame_bits % 8:
        # Frames of 1-bit data that do not end on a byte boundary are cut out by decoding.
        return None
    frame_length = frame_bits // 8
    if frame_length * number_of_frames > length:
        raise InstanceError(
            FailureReason.DATA_SET_DOES_NOT_MATCH,
            f"Pixel Data (7FE0,0010) holds {length} bytes, fewer than the {frame_length * number_of_frames} "
            "that Rows, Columns, SamplesPerPixel, BitsAllocated and NumberOfFrames call for",
        )
    return PixelDataLayout(
        False,
        tuple(((value_offset + index * frame_length, frame_length),) for index in range(number_of_frames)),
        pixel_attributes(dataset),
    )


def _frame_bits(dataset: Dataset) -> int | None:
    try:
        rows = int(dataset.Rows)
        columns = int(dataset.Columns)
        samples = int(dataset.get("SamplesPerPixel") or 1)
        bits = int(dataset.BitsAllocated)
    except (AttributeError, TypeError, ValueError):
        return None
    if samples == 3 and dataset.get("PhotometricInterpretation") == "YBR_FULL_422":
        # Native YBR_FULL_422 stores two luminance values and one pair of chrominance values
        # for every two pixels (PS3.3 C.7.6.3.1.2), so a pixel takes two samples, not three.
        samples = 2
    return rows * columns * samples * bits


def _check_within_file(
    size: int, bulkdata: dict[str, BulkDataLocation], pixel_data: PixelDataLayout | None
) -> None:
    ends = [
        (path, location.offset + location.length)
        for path, location in bulkdata.items()
        if location.length != UNDEFINED_LENGTH
    ]
    if pixel_data is not None:
        ends += [("7FE00010", offset + length) for frame in pixel_data.frames for offset, length in frame]
    for path, end in ends:
        if end > size:
            raise InstanceError(
                FailureReason.CANNOT_UNDERSTAND,
                f"the file is truncated: the value of {_describe_path(path)} ends at byte {end}, "
                f"after the end of the file at byte {size}",
            )


def _read_without_offsets(
    path: Path,
    transfer_syntax: UID,
    identity: tuple[str, str, str, str],
    warnings: list[tuple[WarningReason, str]],
    base_uri: str,
) -> ParsedInstance:
    """Read a deflated or big endian file whole: its values cannot be located by file position."""
    dataset = dcmread(path)
    metadata = dataset_to_json(dataset, base_uri)
    return ParsedInstance(
        *identity,
        transfer_syntax_uid=str(transfer_syntax),
        metadata=metadata,
        bulkdata={},
        pixel_data=None,
        warnings=tuple(warnings),
    )
