"""The rendering parameters of the rendered and thumbnail resources (PS3.18 8.3.5.1) and of WADO-URI.

Each parser takes the text of one query parameter and returns a value object, or raises
RenderingParameterError with a message that names the parameter, the value and the rule.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

import numpy as np

JPEG = "image/jpeg"
PNG = "image/png"
GIF = "image/gif"
RENDERED_IMAGE_TYPES = (JPEG, PNG, GIF)
"""Rendered media types for images, the default first (PS3.18 8.7.4)."""

DEFAULT_QUALITY = 90
"""JPEG quality (1 to 100) when the request gives none."""

MAX_RENDERED_SIDE = 8192
"""Maximum width and height of a rendered image, in pixels: an 8K display, or the largest mammograms."""

MAX_RENDERED_PIXELS = 8192 * 4096
"""Maximum pixel count of a rendered image, which bounds the memory one rendering takes (about 100 MB
for RGB)."""


class RenderingParameterError(ValueError):
    """A rendering parameter that is malformed or does not fit the image. The message names the parameter."""


class VoiLutFunction(Enum):
    """Values of (0028,1056) *VOI LUT Function* (PS3.3 C.11.2.1.3)."""

    LINEAR = "LINEAR"
    LINEAR_EXACT = "LINEAR_EXACT"
    SIGMOID = "SIGMOID"


@dataclass(frozen=True)
class Window:
    """A window applied to the output of the Modality LUT: center, width and VOI LUT Function."""

    center: float
    width: float
    function: VoiLutFunction = VoiLutFunction.LINEAR


@dataclass(frozen=True)
class PixelRegion:
    """The source image region of the viewport parameter, in pixels (PS3.18 8.3.5.1.3).

    ``left`` and ``top`` are the offsets of the region from the top left corner of the image.
    A missing width or height extends the region to the edge of the image. A negative width or
    height selects the region on the other side of ``left`` or ``top`` and flips it.
    """

    left: int
    top: int
    width: int | None = None
    height: int | None = None

    def crop(self, array: np.ndarray) -> np.ndarray:
        rows, columns = array.shape[:2]
        row_slice = _span(self.top, self.height, rows, "sy", "sh")
        column_slice = _span(self.left, self.width, columns, "sx", "sw")
        return array[row_slice, column_slice]


@dataclass(frozen=True)
class NormalizedRegion:
    """The region parameter of WADO-URI: corners as fractions of the image, from 0.0 to 1.0."""

    left: float
    top: float
    right: float
    bottom: float

    def crop(self, array: np.ndarray) -> np.ndarray:
        rows, columns = array.shape[:2]
        top, bottom = math.floor(self.top * rows), max(math.ceil(self.bottom * rows), 1)
        left, right = math.floor(self.left * columns), max(math.ceil(self.right * columns), 1)
        return array[min(top, bottom - 1) : bottom, min(left, right - 1) : right]


@dataclass(frozen=True)
class Viewport:
    """The size of the rendered image. The image is scaled to fit inside it, keeping its aspect ratio.

    A missing width or height leaves that side free.
    """

    width: int | None
    height: int | None
    region: PixelRegion | NormalizedRegion | None = None


@dataclass(frozen=True)
class RenderingParameters:
    """Parameters of a rendered or thumbnail request (PS3.18 8.3.5.1).

    ``enlarge`` is false for thumbnails, which are never scaled above the size of the image.
    """

    media_type: str = JPEG
    window: Window | None = None
    viewport: Viewport | None = None
    quality: int = DEFAULT_QUALITY
    enlarge: bool = True


def _span(start: int, length: int | None, size: int, start_name: str, length_name: str) -> slice:
    """Return the slice of one axis selected by an offset and a length. A negative length flips the axis."""
    if not 0 <= start < size:
        raise RenderingParameterError(
            f"viewport {start_name}={start} is outside the image, which is {size} pixels long on that axis"
        )
    if length is None:
        return slice(start, size)
    end = start + length
    if length == 0 or end < -1 or end > size:
        raise RenderingParameterError(
            f"viewport {length_name}={length} from {start_name}={start} does not fit in the image, "
            f"which is {size} pixels long on that axis"
        )
    if length > 0:
        return slice(start, end)
    # NOTE: a negative sw or sh selects |sw| or |sh| pixels that end at sx or sy, mirrored. This
    # reading of a negative size in PS3.18 8.3.5.1.3 is the archive's own, so other servers may
    # anchor the region differently.
    return slice(start, end if end >= 0 else None, -1)


def parse_window(text: str) -> Window:
    """Parse the window parameter, "center,width,function" (PS3.18 8.3.5.1.4).

    The function is linear, linear-exact or sigmoid, in any case. A linear window needs a width
    of at least 1 (PS3.3 C.11.2.1.2.1). The other functions need a positive width.
    """
    pieces = [piece.strip() for piece in text.split(",")]
    if len(pieces) != 3:
        raise RenderingParameterError(
            f"invalid window {text!r}; write center,width,function such as window=40,400,linear"
        )
    center = _parse_number(pieces[0], "window center", text)
    width = _parse_number(pieces[1], "window width", text)
    try:
        function = VoiLutFunction(pieces[2].upper().replace("-", "_"))
    except ValueError:
        raise RenderingParameterError(
            f"invalid window function {pieces[2]!r} in {text!r}; use linear, linear-exact or sigmoid"
        ) from None
    if not valid_window_width(width, function):
        rule = "of at least 1" if function is VoiLutFunction.LINEAR else "greater than 0"
        raise RenderingParameterError(
            f"invalid window width {pieces[1]!r} in {text!r}; a {function.value} window needs a width {rule}"
        )
    return Window(center, width, function)


def valid_window_width(width: float, function: VoiLutFunction) -> bool:
    """Return whether a window width is valid: at least 1 for LINEAR (PS3.3 C.11.2.1.2.1), else positive."""
    if function is VoiLutFunction.LINEAR:
        return width >= 1.0
    return width > 0.0


def parse_viewport(text: str) -> Viewport:
    """Parse the viewport parameter, "vw,vh" or "vw,vh,sx,sy,sw,sh" (PS3.18 8.3.5.1.3).

    Either of vw and vh may be empty ("512,"), which leaves that side to the aspect ratio. In
    the long form sx and sy default to 0, and an empty sw or sh extends the region to the edge.
    """
    pieces = [piece.strip() for piece in text.split(",")]
    if len(pieces) not in (2, 6):
        raise RenderingParameterError(
            f"invalid viewport {text!r}; write vw,vh or vw,vh,sx,sy,sw,sh in pixels, such as viewport=512,512"
        )
    width = _parse_size(pieces[0], "vw", text)
    height = _parse_size(pieces[1], "vh", text)
    if width is None and height is None and len(pieces) == 2:
        raise RenderingParameterError(f"invalid viewport {text!r}; give vw, vh or both")
    if len(pieces) == 2:
        return Viewport(width, height)

    left = _parse_integer(pieces[2], "sx", text, allow_empty=True) or 0
    top = _parse_integer(pieces[3], "sy", text, allow_empty=True) or 0
    region_width = _parse_integer(pieces[4], "sw", text, allow_empty=True)
    region_height = _parse_integer(pieces[5], "sh", text, allow_empty=True)
    return Viewport(width, height, PixelRegion(left, top, region_width, region_height))


def parse_quality(text: str) -> int:
    """Parse the quality parameter, an integer from 1 (lowest) to 100 (PS3.18 8.3.5.1.2)."""
    quality = _parse_integer(text.strip(), "quality", text)
    if quality is None or not 1 <= quality <= 100:
        raise RenderingParameterError(f"invalid quality {text!r}; use an integer from 1 to 100")
    return quality


def parse_region(text: str) -> NormalizedRegion:
    """Parse the WADO-URI region parameter, "x1,y1,x2,y2" as fractions from 0.0 to 1.0 (PS3.18 chapter 9)."""
    pieces = [piece.strip() for piece in text.split(",")]
    if len(pieces) != 4:
        raise RenderingParameterError(
            f"invalid region {text!r}; write x1,y1,x2,y2 as fractions of the image, "
            "such as 0.25,0.25,0.75,0.75"
        )
    left, top, right, bottom = (_parse_number(piece, "region corner", text) for piece in pieces)
    if not (0.0 <= left < right <= 1.0 and 0.0 <= top < bottom <= 1.0):
        raise RenderingParameterError(
            f"invalid region {text!r}; the corners must satisfy 0 <= x1 < x2 <= 1 and 0 <= y1 < y2 <= 1"
        )
    return NormalizedRegion(left, top, right, bottom)


def _parse_number(text: str, name: str, whole: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise RenderingParameterError(f"invalid {name} {text!r} in {whole!r}; give a decimal number")
    return value


def _parse_integer(text: str, name: str, whole: str, *, allow_empty: bool = False) -> int | None:
    if text == "" and allow_empty:
        return None
    try:
        return int(text)
    except ValueError:
        raise RenderingParameterError(f"invalid {name} {text!r} in {whole!r}; give an integer") from None


def _parse_size(text: str, name: str, whole: str) -> int | None:
    size = _parse_integer(text, name, whole, allow_empty=True)
    if size is not None and size < 1:
        raise RenderingParameterError(
            f"invalid {name} {text!r} in {whole!r}; give a positive number of pixels"
        )
    if size is not None and size > MAX_RENDERED_SIDE:
        raise RenderingParameterError(
            f"invalid {name} {text!r} in {whole!r}; the maximum is {MAX_RENDERED_SIDE} pixels"
        )
    return size


def check_rendered_size(width: int, height: int) -> None:
    """Raise RenderingParameterError when an image of ``width`` by ``height`` pixels is too large to render.

    A viewport that gives one side only scales the other with the aspect ratio, so the size is
    checked once it is known, in addition to the limit on vw and vh.
    """
    if width <= MAX_RENDERED_SIDE and height <= MAX_RENDERED_SIDE and width * height <= MAX_RENDERED_PIXELS:
        return
    raise RenderingParameterError(
        f"the requested size would render an image of {width}x{height} pixels; the maximum is "
        f"{MAX_RENDERED_SIDE} pixels a side and {MAX_RENDERED_PIXELS} pixels in all; request a smaller "
        "viewport (or rows and columns)"
    )
