"""Rendering one frame of an instance as JPEG, PNG or GIF, for the rendered and thumbnail resources.

The steps follow the pixel transformation sequence of PS3.4 N.2. Grayscale frames get the
Modality LUT or rescale, then the VOI LUT or windowing, then MONOCHROME1 is inverted. Colour
frames (RGB, YBR, PALETTE COLOR) become RGB. Then the source image region and the viewport of
PS3.18 8.3.5.1.3 apply, and the result is encoded. Every step works on one decoded frame, so
memory follows the size of a frame, not of the instance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.multival import MultiValue
from pydicom.pixels import apply_color_lut, convert_color_space, get_decoder
from pydicom.uid import UID

from dicomweb_server.dicom.render_parameters import (
    GIF,
    JPEG,
    PNG,
    RENDERED_IMAGE_TYPES,
    RenderingParameters,
    Viewport,
    VoiLutFunction,
    Window,
    check_rendered_size,
    valid_window_width,
)
from dicomweb_server.dicom.transfer import EXPLICIT_VR_BIG_ENDIAN, EXPLICIT_VR_LITTLE_ENDIAN, describe

ENCAPSULATED_DOCUMENT_TYPES = {"1.2.840.10008.5.1.4.1.1.104.1": "application/pdf"}
"""SOP Class UID of each encapsulated document class that is rendered as the document itself.

Encapsulated PDF Storage fixes (0042,0012) *MIME Type of Encapsulated Document* to
application/pdf (PS3.3 A.45.1), so the class alone gives the media type.
"""

PIXEL_DATA_KEYWORDS = {
    0x7FE00010: "PixelData",
    0x7FE00008: "FloatPixelData",
    0x7FE00009: "DoubleFloatPixelData",
}

_PIXEL_MODULE = (
    "Rows",
    "Columns",
    "SamplesPerPixel",
    "BitsAllocated",
    "BitsStored",
    "HighBit",
    "PixelRepresentation",
    "PhotometricInterpretation",
    "PlanarConfiguration",
)
_COLOUR = ("RGB", "YBR_FULL", "YBR_FULL_422")


class RenderingError(ValueError):
    """A frame or document that cannot be rendered, with the reason in the message.

    Typical reasons are a transfer syntax without an installed decoder and an unsupported
    Photometric Interpretation.
    """


@dataclass(frozen=True)
class FramePixels:
    """One decoded frame and the Photometric Interpretation of the decoded values.

    Decoders return colour in RGB, so the value here can differ from the data set's own.
    """

    array: np.ndarray
    photometric_interpretation: str


def read_header(prefix: bytes) -> Dataset:
    """Parse the part of a stored Part 10 file that comes before its pixel data element."""
    try:
        return dcmread(BytesIO(prefix), stop_before_pixels=True)
    except Exception as error:  # noqa: BLE001 - a stored file that cannot be parsed is reported, not raised
        raise RenderingError(f"the data set cannot be parsed: {error}") from error


def read_dataset(path: Path) -> Dataset:
    """Parse a whole stored file, for the files whose frames cannot be read by position."""
    try:
        return dcmread(path)
    except Exception as error:  # noqa: BLE001 - a stored file that cannot be parsed is reported, not raised
        raise RenderingError(f"the data set cannot be parsed: {error}") from error


def read_encapsulated_document(path: Path) -> bytes:
    """Return (0042,0011) *Encapsulated Document* of a stored file, parsing the whole file."""
    dataset = read_dataset(path)
    value = dataset.get("EncapsulatedDocument")
    if not isinstance(value, bytes | bytearray):
        raise RenderingError("the instance has no Encapsulated Document (0042,0011)")
    return bytes(value)


def decode_stored_frame(
    header: Dataset, frame: bytes, transfer_syntax_uid: str, encapsulated: bool, pixel_keyword: str
) -> FramePixels:
    """Decode one frame read by position from the stored object.

    Parameters
    ----------
    header
        The data set up to the pixel data element, which gives the Image Pixel module.
    frame
        The frame as stored: native little endian pixels, or one compressed bitstream.
    transfer_syntax_uid
        The stored transfer syntax.
    encapsulated
        Whether the pixel data is encapsulated (compressed).
    pixel_keyword
        PixelData, FloatPixelData or DoubleFloatPixelData.
    """
    dataset = Dataset()
    dataset.file_meta = FileMetaDataset()
    # Native frames of an implicit VR file are the same little endian bytes as in an explicit one.
    dataset.file_meta.TransferSyntaxUID = transfer_syntax_uid if encapsulated else EXPLICIT_VR_LITTLE_ENDIAN
    for keyword in _PIXEL_MODULE:
        if keyword in header:
            setattr(dataset, keyword, header[keyword].value)
    dataset.NumberOfFrames = 1
    setattr(dataset, pixel_keyword, encapsulate([frame]) if encapsulated else frame)
    return decode_dataset_frame(dataset, 0)


def decode_dataset_frame(dataset: Dataset, frame_index: int) -> FramePixels:
    """Decode the frame at ``frame_index`` (from 0) of a data set, with colour converted to RGB."""
    if not any(keyword in dataset for keyword in PIXEL_DATA_KEYWORDS.values()):
        raise RenderingError("the instance has no pixel data")
    uid = UID(str(dataset.file_meta.TransferSyntaxUID))
    try:
        decoder = get_decoder(uid)
    except NotImplementedError:
        decoder = None
    if decoder is None or not decoder.is_available:
        raise RenderingError(f"no installed decoder reads pixel data in {describe(uid)}")
    try:
        array, meta = decoder.as_array(dataset, index=frame_index)
    except Exception as error:  # noqa: BLE001 - stored pixel data that fails to decode is reported, not raised
        raise RenderingError(f"the frame cannot be decoded: {error}") from error
    photometric = str(meta.get("photometric_interpretation") or dataset.get("PhotometricInterpretation", ""))
    return FramePixels(array, photometric)


def render_frame(
    header: Dataset, pixels: FramePixels, frame_index: int, parameters: RenderingParameters
) -> bytes:
    """Render a decoded frame as the media type of ``parameters`` and return the encoded image.

    Parameters
    ----------
    header
        The instance's data set, for the Modality LUT, VOI LUT, palette and functional groups.
    pixels
        The decoded frame.
    frame_index
        The frame's index from 0, which selects its item of (5200,9230) *Per-Frame Functional
        Groups Sequence*.
    parameters
        The rendering parameters. A window given here replaces the instance's own, and
        applies to grayscale frames only.

    Raises
    ------
    RenderingError
        When the Photometric Interpretation cannot be rendered.
    RenderingParameterError
        When the source image region does not fit the image, or the rendered image would be
        larger than MAX_RENDERED_SIDE or MAX_RENDERED_PIXELS allow.
    """
    values = _display_values(header, pixels, frame_index, parameters.window)

    viewport = parameters.viewport
    if viewport is not None and viewport.region is not None:
        values = viewport.region.crop(values)

    image = Image.fromarray(np.ascontiguousarray(values))
    size = _output_size(image.width, image.height, viewport, parameters.enlarge)
    if size != image.size:
        image = image.resize(size, Image.Resampling.LANCZOS)
    return _encode(image, parameters.media_type, parameters.quality)


def _display_values(
    header: Dataset, pixels: FramePixels, frame_index: int, window: Window | None
) -> np.ndarray:
    """Return the frame as 8-bit display values: rows x columns, or rows x columns x 3 for RGB."""
    photometric = pixels.photometric_interpretation
    if photometric in ("MONOCHROME1", "MONOCHROME2"):
        transform = grayscale_transform(header, frame_index)
        return grayscale_display_values(pixels.array, transform, window, invert=photometric == "MONOCHROME1")
    if photometric == "PALETTE COLOR":
        return _palette_to_rgb(pixels.array, header)
    if photometric in _COLOUR:
        rgb = pixels.array
        if photometric != "RGB":
            rgb = convert_color_space(rgb, photometric, "RGB")
        return _scale_to_8_bits(rgb, int(header.get("BitsStored") or 8))
    raise RenderingError(
        f"Photometric Interpretation {photometric!r} cannot be rendered; "
        "MONOCHROME1, MONOCHROME2, PALETTE COLOR, RGB, YBR_FULL and YBR_FULL_422 can"
    )


@dataclass(frozen=True)
class GrayscaleTransform:
    """The Modality LUT and VOI LUT stages of one grayscale frame (PS3.4 N.2.1).

    ``modality_lut`` and ``voi_lut`` are the first items of (0028,3000) *Modality LUT Sequence*
    and (0028,3010) *VOI LUT Sequence*. ``little_endian`` is the byte order of OW LUT data.
    """

    rescale_slope: float = 1.0
    rescale_intercept: float = 0.0
    modality_lut: Dataset | None = None
    window: Window | None = None
    voi_lut: Dataset | None = None
    signed: bool = False
    little_endian: bool = True


def grayscale_transform(header: Dataset, frame_index: int) -> GrayscaleTransform:
    """Collect the Modality LUT and VOI LUT stages that apply to one frame.

    Values of the Pixel Value Transformation and Frame VOI LUT functional groups (PS3.3
    C.7.6.16.2) replace the top-level attributes, and per-frame items replace shared ones.
    Only the first window of a multi-valued Window Center and Window Width is used.
    """
    slope = _number(header.get("RescaleSlope"), 1.0)
    intercept = _number(header.get("RescaleIntercept"), 0.0)
    window = _window_of(header)
    for group in _functional_groups(header, frame_index):
        transformation = _first_item(group, "PixelValueTransformationSequence")
        if transformation is not None:
            slope = _number(transformation.get("RescaleSlope"), slope)
            intercept = _number(transformation.get("RescaleIntercept"), intercept)
        frame_voi = _first_item(group, "FrameVOILUTSequence")
        if frame_voi is not None:
            window = _window_of(frame_voi) or window

    syntax = str(getattr(getattr(header, "file_meta", None), "TransferSyntaxUID", "") or "")
    return GrayscaleTransform(
        rescale_slope=slope,
        rescale_intercept=intercept,
        modality_lut=_first_item(header, "ModalityLUTSequence"),
        window=window,
        voi_lut=_first_item(header, "VOILUTSequence"),
        signed=int(header.get("PixelRepresentation") or 0) == 1,
        little_endian=syntax != EXPLICIT_VR_BIG_ENDIAN,
    )


def _functional_groups(header: Dataset, frame_index: int) -> list[Dataset]:
    groups = []
    shared = _first_item(header, "SharedFunctionalGroupsSequence")
    if shared is not None:
        groups.append(shared)
    per_frame = header.get("PerFrameFunctionalGroupsSequence")
    if per_frame is not None and frame_index < len(per_frame):
        groups.append(per_frame[frame_index])
    return groups


def _first_item(dataset: Dataset, keyword: str) -> Dataset | None:
    sequence = dataset.get(keyword)
    return sequence[0] if sequence else None


def _number(value: Any, default: float) -> float:
    if isinstance(value, MultiValue | list):
        value = value[0] if value else None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return default
    return number if math.isfinite(number) else default


def _window_of(dataset: Dataset) -> Window | None:
    """Return the first window of (0028,1050) *Window Center* and (0028,1051) *Window Width*.

    A window whose values cannot be read, or whose width breaks PS3.3 C.11.2.1.2, is skipped
    so that the next stage decides the display range.
    """
    center = _number(dataset.get("WindowCenter"), math.nan)
    width = _number(dataset.get("WindowWidth"), math.nan)
    if math.isnan(center) or math.isnan(width):
        return None
    try:
        function = VoiLutFunction(str(dataset.get("VOILUTFunction") or "LINEAR").strip().upper())
    except ValueError:
        function = VoiLutFunction.LINEAR
    if not valid_window_width(width, function):
        return None
    return Window(center, width, function)


def grayscale_display_values(
    stored: np.ndarray, transform: GrayscaleTransform, window: Window | None, *, invert: bool
) -> np.ndarray:
    """Apply the Modality LUT, then the VOI stage, then polarity, and return 8-bit values.

    The VOI stage is the requested window, else the instance's window, else its VOI LUT, else
    the range from the smallest to the largest modality value of the frame.
    """
    modality = _apply_modality(stored, transform)
    window = window or transform.window
    if window is not None:
        display = apply_window(modality, window)
    elif transform.voi_lut is not None:
        display = _apply_voi_lut(modality, transform)
    else:
        display = _full_range(modality)
    if invert:
        display = 1.0 - display
    # Float pixel data may contain NaN, which has no display value, so it is shown as black.
    display = np.nan_to_num(display, nan=0.0)
    return np.rint(display * 255.0).astype(np.uint8)


def _apply_modality(stored: np.ndarray, transform: GrayscaleTransform) -> np.ndarray:
    if transform.modality_lut is not None:
        output, _ = lookup(stored, transform.modality_lut, transform.signed, transform.little_endian)
        return output.astype(np.float64)
    values = stored.astype(np.float64)
    if transform.rescale_slope != 1.0:
        values *= transform.rescale_slope
    if transform.rescale_intercept != 0.0:
        values += transform.rescale_intercept
    return values


def apply_window(values: np.ndarray, window: Window) -> np.ndarray:
    """Map values through a window to display values from 0.0 to 1.0 (PS3.3 C.11.2.1.2 and C.11.2.1.3)."""
    center, width = window.center, window.width
    if window.function is VoiLutFunction.SIGMOID:
        # Beyond +-700 exp() overflows float64 while the output is already 0.0 or 1.0.
        exponent = np.clip(-4.0 * (values - center) / width, -700.0, 700.0)
        return 1.0 / (1.0 + np.exp(exponent))
    if window.function is VoiLutFunction.LINEAR_EXACT:
        return np.clip((values - center) / width + 0.5, 0.0, 1.0)
    if width <= 1.0:
        # A width of 1 is a threshold at the center (PS3.3 C.11.2.1.2.1, note 5).
        return (values > center - 0.5).astype(np.float64)
    return np.clip((values - (center - 0.5)) / (width - 1.0) + 0.5, 0.0, 1.0)


def _apply_voi_lut(values: np.ndarray, transform: GrayscaleTransform) -> np.ndarray:
    assert transform.voi_lut is not None
    output, bits = lookup(np.rint(values), transform.voi_lut, transform.signed, transform.little_endian)
    top = max(float(2**bits - 1), float(output.max(initial=0)))
    return output.astype(np.float64) / top


def _full_range(values: np.ndarray) -> np.ndarray:
    low, high = float(np.nanmin(values)), float(np.nanmax(values))
    if high <= low:
        return np.zeros(values.shape, dtype=np.float64)
    return (values - low) / (high - low)


def lookup(values: np.ndarray, item: Dataset, signed: bool, little_endian: bool) -> tuple[np.ndarray, int]:
    """Map values through the LUT of a Modality or VOI LUT Sequence item (PS3.3 C.11.1.1).

    Returns the mapped values and the bits per entry of (0028,3002) *LUT Descriptor*. Values
    below the first mapped value take the first entry, values past the last take the last.
    """
    descriptor = [int(value) for value in item.LUTDescriptor]
    entries = descriptor[0] or 65536
    first_mapped = descriptor[1]
    if signed and first_mapped > 32767:
        # The descriptor is read as US, but its second value is signed for signed pixel data.
        first_mapped -= 65536
    data = _lut_data(item.LUTData, entries, little_endian)
    indices = np.clip(values.astype(np.int64) - first_mapped, 0, len(data) - 1)
    return data[indices], descriptor[2]


def _lut_data(value: Any, entries: int, little_endian: bool) -> np.ndarray:
    """Read (0028,3006) *LUT Data*: a list of US values, or OW bytes of 8- or 16-bit entries."""
    if isinstance(value, bytes | bytearray):
        if len(value) in (entries, entries + 1) and len(value) != 2 * entries:
            return np.frombuffer(value, dtype=np.uint8)[:entries].astype(np.int64)
        dtype = "<u2" if little_endian else ">u2"
        return np.frombuffer(value, dtype=dtype, count=len(value) // 2)[:entries].astype(np.int64)
    if isinstance(value, int):
        return np.asarray([value], dtype=np.int64)
    return np.asarray(list(value), dtype=np.int64)


def _palette_to_rgb(indices: np.ndarray, header: Dataset) -> np.ndarray:
    try:
        rgb = apply_color_lut(indices, header)
    except Exception as error:  # noqa: BLE001 - a malformed stored palette is reported, not raised
        raise RenderingError(f"the Palette Color Lookup Table cannot be applied: {error}") from error
    if rgb.dtype == np.uint8:
        return rgb
    if int(rgb.max(initial=0)) <= 255:
        # Some files declare 16-bit palette entries but fill them with 8-bit values.
        return rgb.astype(np.uint8)
    return (rgb >> 8).astype(np.uint8)


def _scale_to_8_bits(rgb: np.ndarray, bits_stored: int) -> np.ndarray:
    if rgb.dtype == np.uint8:
        return rgb
    top = float(2 ** min(max(bits_stored, 1), 32) - 1)
    return np.rint(np.clip(rgb.astype(np.float64), 0.0, top) * (255.0 / top)).astype(np.uint8)


def _output_size(columns: int, rows: int, viewport: Viewport | None, enlarge: bool) -> tuple[int, int]:
    if viewport is None or (viewport.width is None and viewport.height is None):
        check_rendered_size(columns, rows)
        return columns, rows
    scales = []
    if viewport.width is not None:
        scales.append(viewport.width / columns)
    if viewport.height is not None:
        scales.append(viewport.height / rows)
    scale = min(scales)
    if not enlarge:
        scale = min(scale, 1.0)
    size = max(1, round(columns * scale)), max(1, round(rows * scale))
    check_rendered_size(*size)
    return size


def _encode(image: Image.Image, media_type: str, quality: int) -> bytes:
    buffer = BytesIO()
    if media_type == JPEG:
        image.save(buffer, format="JPEG", quality=quality)
    elif media_type == PNG:
        image.save(buffer, format="PNG")
    elif media_type == GIF:
        image.save(buffer, format="GIF")
    else:
        raise RenderingError(
            f"media type {media_type} is not a rendered image type; use {', '.join(RENDERED_IMAGE_TYPES)}"
        )
    return buffer.getvalue()
