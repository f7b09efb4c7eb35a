"""Frames of pixel data: decoding one compressed frame, and cutting frames from a whole file.

The fast path reads a frame's bytes from the stored object by position (see ``parse``); these
functions serve the rest: decoding a compressed frame to native pixels, and the rare files
whose frames cannot be located by position (deflated, big endian, 1-bit frames that do not end
on a byte boundary).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate, generate_frames
from pydicom.pixels import get_decoder, pack_bits, pixel_array
from pydicom.uid import UID

from dicomweb_server.dicom.transfer import lookup

PIXEL_DATA_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")


class NoPixelData(LookupError):
    """The stored instance has no pixel data, so it has no frames."""


class FrameDecodeError(ValueError):
    """A stored frame that cannot be decoded to native pixels; the message names the cause."""


def decode_frame(frame: bytes, transfer_syntax_uid: str, pixel_attributes: dict[str, Any]) -> bytes:
    """Decode one compressed frame to native little endian pixel bytes.

    Colour frames compressed as YCbCr come back as RGB, pixel-interleaved, which is what
    decoders produce and what viewers expect of uncompressed frames.

    Raises
    ------
    FrameDecodeError
        When the decoder rejects the frame, such as a corrupt codestream stored as received.
    """
    dataset = _frame_dataset(pixel_attributes, transfer_syntax_uid)
    dataset.PixelData = encapsulate([frame])
    try:
        decoder = get_decoder(UID(transfer_syntax_uid))
        array, _ = decoder.as_array(dataset, index=0, as_rgb=True)
    except Exception as error:  # noqa: BLE001 - decoders raise many types for bad codestreams
        raise FrameDecodeError(f"the frame cannot be decoded ({type(error).__name__}: {error})") from error
    return _little_endian_bytes(array)


def _frame_dataset(pixel_attributes: dict[str, Any], transfer_syntax_uid: str) -> Dataset:
    dataset = Dataset()
    dataset.file_meta = FileMetaDataset()
    dataset.file_meta.TransferSyntaxUID = transfer_syntax_uid
    for keyword, value in pixel_attributes.items():
        setattr(dataset, keyword, value)
    dataset.NumberOfFrames = 1
    if "PlanarConfiguration" not in dataset and int(dataset.get("SamplesPerPixel", 1)) > 1:
        dataset.PlanarConfiguration = 0
    return dataset


def _little_endian_bytes(array: np.ndarray) -> bytes:
    if array.dtype.byteorder == ">" or (array.dtype.byteorder == "=" and np.little_endian is False):
        array = array.astype(array.dtype.newbyteorder("<"))
    return array.tobytes()


def read_frames_from_file(path: Path, frame_numbers: Sequence[int], native: bool) -> list[bytes]:
    """Read frames by parsing the whole stored file (the slow path).

    Parameters
    ----------
    path
        The stored Part 10 file.
    frame_numbers
        Frame numbers, starting at 1, already checked against (0028,0008) *Number of Frames*.
    native
        True for uncompressed little endian pixels; False for the frames as stored, which for
        encapsulated pixel data are the compressed bitstreams.

    Raises
    ------
    NoPixelData
        When the file has no pixel data element.
    FrameDecodeError
        When the pixel data cannot be cut into frames or decoded.
    """
    dataset = dcmread(path)
    if not any(keyword in dataset for keyword in PIXEL_DATA_KEYWORDS):
        raise NoPixelData("the instance has no pixel data")
    syntax = lookup(str(dataset.file_meta.TransferSyntaxUID))
    encapsulated = syntax is not None and syntax.encapsulated
    count = int(dataset.get("NumberOfFrames") or 1)

    try:
        if encapsulated and not native:
            frames = list(generate_frames(dataset.PixelData, number_of_frames=count))
            return [frames[number - 1] for number in frame_numbers]
        return [_native_frame(dataset, number - 1) for number in frame_numbers]
    except Exception as error:  # noqa: BLE001 - decoders raise many types for bad pixel data
        raise FrameDecodeError(
            f"the pixel data cannot be decoded ({type(error).__name__}: {error})"
        ) from error


def _native_frame(dataset: Dataset, index: int) -> bytes:
    array = pixel_array(dataset, index=index, raw=True)
    if int(dataset.BitsAllocated) == 1:
        return pack_bits(array)
    return _little_endian_bytes(array)
