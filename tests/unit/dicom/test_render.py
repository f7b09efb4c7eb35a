"""Rendering of frames to JPEG, PNG and GIF, checked against pydicom's own pixel processing on real files."""

from __future__ import annotations

import copy
import io

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_windowing
from pydicom.sequence import Sequence

from dicomweb_server.dicom import render, render_parameters
from dicomweb_server.dicom.parse import read_instance
from dicomweb_server.dicom.render import FramePixels, GrayscaleTransform, RenderingError
from dicomweb_server.dicom.render_parameters import (
    GIF,
    JPEG,
    PNG,
    NormalizedRegion,
    PixelRegion,
    RenderingParameterError,
    RenderingParameters,
    Viewport,
    VoiLutFunction,
    Window,
)
from tests.testdata import TESTDATA, read

SIGNED_CT = "modalities/ct/SignedCT.dcm"
MODALITY_LUT_RF = "modalities/rf/KarstenHilbertRF.dcm"
PALETTE_US = "modalities/us/US-PAL-8-10x-echo.dcm"
YBR_JPEG = "transfer-syntaxes/jpeg-baseline/SC_rgb_jpeg_dcmtk.dcm"
YBR_422_JPEG = "modalities/us/examples_ybr_color.dcm"
ENHANCED_CT = "modalities/ct/eCT_Supplemental.dcm"


def _png(relative: str, frame_index: int = 0, **parameters: object) -> tuple[np.ndarray, pydicom.Dataset]:
    dataset = read(relative)
    pixels = render.decode_dataset_frame(dataset, frame_index)
    encoded = render.render_frame(
        dataset,
        pixels,
        frame_index,
        RenderingParameters(media_type=PNG, **parameters),  # type: ignore[arg-type]
    )
    return np.asarray(Image.open(io.BytesIO(encoded))), dataset


def _expected_windowed(stored: np.ndarray, dataset: Dataset, window: Window | None) -> np.ndarray:
    """Compute 8-bit display values with pydicom's Modality LUT and windowing, scaled to 0-255."""
    dataset = copy.deepcopy(dataset)
    if window is not None:
        dataset.WindowCenter = window.center
        dataset.WindowWidth = window.width
        dataset.VOILUTFunction = window.function.value
    modality = apply_modality_lut(stored, dataset)
    windowed = apply_windowing(modality, dataset)
    width = float(dataset.WindowWidth)
    low, high = apply_windowing(
        np.array([-100.0 * width, 100.0 * width]) + float(dataset.WindowCenter), dataset
    )
    return np.rint((windowed - low) / (high - low) * 255.0).astype(np.int64)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("40,400,linear", Window(40.0, 400.0, VoiLutFunction.LINEAR)),
        ("-600,1600,LINEAR-EXACT", Window(-600.0, 1600.0, VoiLutFunction.LINEAR_EXACT)),
        (" 0.5 , 0.25 , sigmoid ", Window(0.5, 0.25, VoiLutFunction.SIGMOID)),
        ("100,1,linear", Window(100.0, 1.0, VoiLutFunction.LINEAR)),
    ],
)
def test_parse_window_forms(text: str, expected: Window) -> None:
    assert render_parameters.parse_window(text) == expected


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("40,400", "center,width,function"),
        ("40,400,linear,1", "center,width,function"),
        ("a,400,linear", "window center"),
        ("40,nan,linear", "window width"),
        ("40,400,gamma", "window function"),
        ("40,0.5,linear", "at least 1"),
        ("40,0,sigmoid", "greater than 0"),
    ],
)
def test_parse_window_invalid(text: str, named: str) -> None:
    with pytest.raises(RenderingParameterError, match=named):
        render_parameters.parse_window(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("512,512", Viewport(512, 512)),
        ("512,", Viewport(512, None)),
        (",256", Viewport(None, 256)),
        ("256,256,10,20,30,40", Viewport(256, 256, PixelRegion(10, 20, 30, 40))),
        ("256,256,,,,", Viewport(256, 256, PixelRegion(0, 0, None, None))),
        ("256,256,50,50,-20,-30", Viewport(256, 256, PixelRegion(50, 50, -20, -30))),
    ],
)
def test_parse_viewport_forms(text: str, expected: Viewport) -> None:
    assert render_parameters.parse_viewport(text) == expected


@pytest.mark.parametrize("text", ["512", "0,512", "-5,5", "a,b", ",", "1,2,3,4", "10,10,x,0,5,5"])
def test_parse_viewport_invalid(text: str) -> None:
    with pytest.raises(RenderingParameterError, match="viewport|vw|vh|sx"):
        render_parameters.parse_viewport(text)


@pytest.mark.parametrize("text", ["8193,1", "1,8193", "60000,60000", "100,100000,0,0,10,10"])
def test_parse_viewport_beyond_maximum(text: str) -> None:
    with pytest.raises(RenderingParameterError, match="the maximum is 8192 pixels"):
        render_parameters.parse_viewport(text)


def test_parse_viewport_at_maximum() -> None:
    assert render_parameters.parse_viewport("8192,8192") == Viewport(8192, 8192)


@pytest.mark.parametrize(("width", "height"), [(8193, 1), (1, 8193), (8192, 4097)])
def test_check_rendered_size_too_large(width: int, height: int) -> None:
    with pytest.raises(RenderingParameterError, match=f"{width}x{height} pixels"):
        render_parameters.check_rendered_size(width, height)


def test_render_frame_one_side_scaled_too_large() -> None:
    with pytest.raises(RenderingParameterError, match="pixels a side"):
        _png(SIGNED_CT, viewport=Viewport(8192, None))


@pytest.mark.parametrize(("text", "expected"), [("1", 1), ("100", 100), (" 55 ", 55)])
def test_parse_quality_valid(text: str, expected: int) -> None:
    assert render_parameters.parse_quality(text) == expected


@pytest.mark.parametrize("text", ["0", "101", "high", "9.5"])
def test_parse_quality_invalid(text: str) -> None:
    with pytest.raises(RenderingParameterError, match="quality"):
        render_parameters.parse_quality(text)


def test_parse_region_valid() -> None:
    assert render_parameters.parse_region("0.25,0,1,0.5") == NormalizedRegion(0.25, 0.0, 1.0, 0.5)


@pytest.mark.parametrize("text", ["0,0,1", "0.5,0,0.5,1", "0,0,1.5,1", "-0.1,0,1,1", "a,0,1,1"])
def test_parse_region_invalid(text: str) -> None:
    with pytest.raises(RenderingParameterError, match="region"):
        render_parameters.parse_region(text)


def test_apply_window_linear_bounds() -> None:
    # Center 100 and width 11 select 94.5 < x <= 104.5 (PS3.3 C.11.2.1.2.1).
    values = np.array([94.0, 94.5, 99.5, 104.5, 105.0])
    result = render.apply_window(values, Window(100.0, 11.0))
    assert result[0] == 0.0
    assert result[1] == 0.0
    assert result[2] == pytest.approx(0.5)
    assert result[3] == pytest.approx(1.0)
    assert result[4] == 1.0


def test_apply_window_linear_exact_bounds() -> None:
    values = np.array([95.0, 100.0, 105.0, 200.0])
    result = render.apply_window(values, Window(100.0, 10.0, VoiLutFunction.LINEAR_EXACT))
    assert list(result) == pytest.approx([0.0, 0.5, 1.0, 1.0])


def test_apply_window_sigmoid_extremes() -> None:
    values = np.array([-1e12, 100.0, 1e12])
    result = render.apply_window(values, Window(100.0, 10.0, VoiLutFunction.SIGMOID))
    assert list(result) == pytest.approx([0.0, 0.5, 1.0])


def test_apply_window_threshold() -> None:
    result = render.apply_window(np.array([99.0, 99.5, 100.0]), Window(100.0, 1.0))
    assert list(result) == [0.0, 0.0, 1.0]


def test_grayscale_monochrome1_inverted() -> None:
    stored = np.array([[0, 25, 100]], dtype=np.uint16)
    transform = GrayscaleTransform(window=Window(50.0, 100.0, VoiLutFunction.LINEAR_EXACT))
    normal = render.grayscale_display_values(stored, transform, None, invert=False)
    inverted = render.grayscale_display_values(stored, transform, None, invert=True)
    assert list(normal[0]) == [0, 64, 255]
    assert list(inverted[0]) == [255, 191, 0]


def test_grayscale_full_range_without_window() -> None:
    stored = np.array([[-10, 0, 30]], dtype=np.int16)
    result = render.grayscale_display_values(stored, GrayscaleTransform(), None, invert=False)
    assert list(result[0]) == [0, 64, 255]


def test_grayscale_float_nan_black() -> None:
    stored = np.array([[0.0, np.nan, 2.0]], dtype=np.float32)
    result = render.grayscale_display_values(stored, GrayscaleTransform(), None, invert=False)
    assert list(result[0]) == [0, 0, 255]


def test_grayscale_constant_frame_black() -> None:
    stored = np.full((2, 2), 7, dtype=np.uint8)
    result = render.grayscale_display_values(stored, GrayscaleTransform(), None, invert=False)
    assert int(result.max()) == 0


def _lut_item(descriptor: list[int], data: object, vr: str = "US") -> Dataset:
    item = Dataset()
    item.add_new(0x00283002, "US", descriptor)
    item.add_new(0x00283006, vr, data)
    return item


def test_lookup_clamps_outside_range() -> None:
    item = _lut_item([3, 10, 16], [100, 200, 300])
    result, bits = render.lookup(np.array([0, 10, 11, 12, 50]), item, signed=False, little_endian=True)
    assert list(result) == [100, 100, 200, 300, 300]
    assert bits == 16


def test_lookup_signed_first_mapped() -> None:
    # The descriptor reads -2 as the US value 65534. Signed pixel data makes it -2 again.
    item = _lut_item([4, 65534, 16], [1, 2, 3, 4])
    result, _ = render.lookup(np.array([-5, -2, 1]), item, signed=True, little_endian=True)
    assert list(result) == [1, 1, 4]


def test_lookup_ow_data_8_and_16_bits() -> None:
    packed = _lut_item([4, 0, 8], bytes([5, 6, 7, 8]), vr="OW")
    words = _lut_item([2, 0, 16], (1000).to_bytes(2, "little") + (2000).to_bytes(2, "little"), vr="OW")
    assert list(render.lookup(np.array([0, 3]), packed, signed=False, little_endian=True)[0]) == [5, 8]
    assert list(render.lookup(np.array([0, 1]), words, signed=False, little_endian=True)[0]) == [1000, 2000]


def test_voi_lut_sequence_scaled_by_entry_bits() -> None:
    transform = GrayscaleTransform(voi_lut=_lut_item([3, 0, 8], [0, 51, 255]))
    result = render.grayscale_display_values(np.array([[0, 1, 2, 9]]), transform, None, invert=False)
    assert list(result[0]) == [0, 51, 255, 255]


def test_grayscale_transform_functional_groups() -> None:
    header = Dataset()
    header.RescaleSlope = "1"
    header.WindowCenter = "10"
    header.WindowWidth = "20"
    shared = Dataset()
    transformation = Dataset()
    transformation.RescaleSlope = "2"
    transformation.RescaleIntercept = "-10"
    shared.PixelValueTransformationSequence = Sequence([transformation])
    frame_voi = Dataset()
    frame_voi.WindowCenter = "300"
    frame_voi.WindowWidth = "500"
    frame_voi.VOILUTFunction = "SIGMOID"
    second_frame = Dataset()
    second_frame.FrameVOILUTSequence = Sequence([frame_voi])
    header.SharedFunctionalGroupsSequence = Sequence([shared])
    header.PerFrameFunctionalGroupsSequence = Sequence([Dataset(), second_frame])

    first = render.grayscale_transform(header, 0)
    second = render.grayscale_transform(header, 1)
    assert (first.rescale_slope, first.rescale_intercept) == (2.0, -10.0)
    assert first.window == Window(10.0, 20.0)
    assert second.window == Window(300.0, 500.0, VoiLutFunction.SIGMOID)


def test_grayscale_transform_enhanced_ct_file() -> None:
    dataset = read(ENHANCED_CT)
    transform = render.grayscale_transform(dataset, 1)
    frame = dataset.PerFrameFunctionalGroupsSequence[1]
    shared = dataset.SharedFunctionalGroupsSequence[0]
    groups = [group for group in (frame, shared) if "PixelValueTransformationSequence" in group]
    expected = groups[0].PixelValueTransformationSequence[0]
    assert transform.rescale_slope == float(expected.RescaleSlope)
    assert transform.rescale_intercept == float(expected.RescaleIntercept)


def test_pixel_region_crop_and_flip() -> None:
    array = np.arange(20).reshape(4, 5)
    assert PixelRegion(1, 1, 2, 2).crop(array).tolist() == [[6, 7], [11, 12]]
    assert PixelRegion(3, 0, None, 1).crop(array).tolist() == [[3, 4]]
    assert PixelRegion(2, 1, -2, 1).crop(array).tolist() == [[7, 6]]
    assert PixelRegion(0, 3, 1, -4).crop(array).tolist() == [[15], [10], [5], [0]]


@pytest.mark.parametrize("region", [PixelRegion(5, 0), PixelRegion(0, 0, 6, 1), PixelRegion(1, 0, -3, 1)])
def test_pixel_region_outside_image(region: PixelRegion) -> None:
    with pytest.raises(RenderingParameterError, match="viewport"):
        region.crop(np.zeros((4, 5)))


def test_normalized_region_crop() -> None:
    array = np.arange(100).reshape(10, 10)
    assert NormalizedRegion(0.5, 0.0, 1.0, 0.2).crop(array).shape == (2, 5)


@pytest.mark.parametrize(
    ("viewport", "size"),
    [
        (Viewport(256, 256), (256, 232)),
        (Viewport(128, None), (128, 116)),
        (Viewport(None, 116), (128, 116)),
        (Viewport(1024, 1024), (1024, 928)),
    ],
)
def test_render_viewport_keeps_aspect_ratio(viewport: Viewport, size: tuple[int, int]) -> None:
    image, dataset = _png(MODALITY_LUT_RF, viewport=viewport)
    assert (int(dataset.Columns), int(dataset.Rows)) == (512, 464)
    assert (image.shape[1], image.shape[0]) == size


def test_render_thumbnail_not_enlarged() -> None:
    image, _ = _png("modalities/mr/MR_small.dcm", viewport=Viewport(128, 128), enlarge=False)
    assert image.shape == (64, 64)


def test_render_region_then_viewport() -> None:
    image, _ = _png(SIGNED_CT, viewport=Viewport(50, 50, PixelRegion(100, 100, 200, 100)))
    assert image.shape == (25, 50)


@pytest.mark.parametrize(
    "window",
    [
        None,
        Window(40.0, 400.0),
        Window(-600.0, 1600.0, VoiLutFunction.LINEAR_EXACT),
        Window(0.0, 300.0, VoiLutFunction.SIGMOID),
    ],
)
def test_render_signed_ct_matches_pydicom(window: Window | None) -> None:
    image, dataset = _png(SIGNED_CT, window=window)
    expected = _expected_windowed(dataset.pixel_array, dataset, window)
    assert image.shape == expected.shape
    assert int(np.abs(image.astype(np.int64) - expected).max()) <= 1


def test_render_window_changes_pixels() -> None:
    narrow, _ = _png(SIGNED_CT, window=Window(40.0, 80.0))
    wide, _ = _png(SIGNED_CT, window=Window(40.0, 4000.0))
    # A narrow window saturates more pixels to black and white than a wide one.
    assert int(np.count_nonzero((narrow == 0) | (narrow == 255))) > int(
        np.count_nonzero((wide == 0) | (wide == 255))
    )


def test_render_modality_lut_matches_pydicom() -> None:
    image, dataset = _png(MODALITY_LUT_RF)
    assert "ModalityLUTSequence" in dataset
    expected = _expected_windowed(dataset.pixel_array, dataset, None)
    assert int(np.abs(image.astype(np.int64) - expected).max()) <= 1


def test_render_monochrome1_inverted() -> None:
    image, dataset = _png("modalities/dx/dx_image.dcm")
    assert dataset.PhotometricInterpretation == "MONOCHROME1"
    expected = 255 - _expected_windowed(dataset.pixel_array, dataset, None)
    assert int(np.abs(image.astype(np.int64) - expected).max()) <= 1


def test_render_palette_matches_pydicom() -> None:
    image, dataset = _png(PALETTE_US, frame_index=4)
    expected = apply_color_lut(dataset.pixel_array[4], dataset) >> 8
    assert image.shape == (430, 600, 3)
    assert np.array_equal(image, expected.astype(np.uint8))


@pytest.mark.parametrize(
    ("relative", "frame_index"), [(YBR_JPEG, 0), (YBR_422_JPEG, 7), ("modalities/sc/SC_rgb.dcm", 0)]
)
def test_render_colour_matches_pydicom(relative: str, frame_index: int) -> None:
    image, dataset = _png(relative, frame_index=frame_index)
    pixels = dataset.pixel_array
    expected = pixels[frame_index] if pixels.ndim == 4 else pixels
    assert np.array_equal(image, expected)


@pytest.mark.parametrize(
    "relative",
    [
        "modalities/ct/CT_small.dcm",
        "modalities/pt/Issue94.dcm",
        YBR_422_JPEG,
        PALETTE_US,
        "transfer-syntaxes/jpeg-ls-lossless/MR_small_jpeg_ls_lossless.dcm",
        "modalities/pm/parametric_map_float.dcm",
        "modalities/seg/liver.dcm",
    ],
)
def test_decode_stored_frame_matches_whole_file(relative: str) -> None:
    path = TESTDATA / "dicom" / relative
    parsed = read_instance(path)
    assert parsed.pixel_data is not None
    data = path.read_bytes()
    tag = next(tag for tag in render.PIXEL_DATA_KEYWORDS if f"{tag:08X}" in parsed.bulkdata)
    header = render.read_header(data[: parsed.bulkdata[f"{tag:08X}"].offset])
    last = len(parsed.pixel_data.frames) - 1
    frame = b"".join(data[offset : offset + length] for offset, length in parsed.pixel_data.frames[last])

    stored = render.decode_stored_frame(
        header,
        frame,
        parsed.transfer_syntax_uid,
        parsed.pixel_data.encapsulated,
        render.PIXEL_DATA_KEYWORDS[tag],
    )
    whole = render.decode_dataset_frame(pydicom.dcmread(path), last)
    assert stored.photometric_interpretation == whole.photometric_interpretation
    assert np.array_equal(stored.array, whole.array)


def test_read_header_stops_before_pixel_data() -> None:
    path = TESTDATA / "dicom" / SIGNED_CT
    parsed = read_instance(path)
    header = render.read_header(path.read_bytes()[: parsed.bulkdata["7FE00010"].offset])
    assert "PixelData" not in header
    assert header.WindowCenter == -600


@pytest.mark.parametrize("media_type", [JPEG, PNG, GIF])
def test_render_media_types(media_type: str) -> None:
    dataset = read(YBR_JPEG)
    encoded = render.render_frame(
        dataset, render.decode_dataset_frame(dataset, 0), 0, RenderingParameters(media_type=media_type)
    )
    image = Image.open(io.BytesIO(encoded))
    assert Image.MIME[image.format or ""] == media_type
    assert image.size == (100, 100)


def test_render_jpeg_quality_changes_size() -> None:
    dataset = read(SIGNED_CT)
    pixels = render.decode_dataset_frame(dataset, 0)
    low = render.render_frame(dataset, pixels, 0, RenderingParameters(quality=5))
    high = render.render_frame(dataset, pixels, 0, RenderingParameters(quality=95))
    assert len(low) < len(high)


def test_decode_without_decoder_names_syntax() -> None:
    dataset = read("transfer-syntaxes/jpeg-xl/will-jxl.dcm")
    with pytest.raises(RenderingError, match="JPEG XL"):
        render.decode_dataset_frame(dataset, 0)


def test_decode_without_pixel_data() -> None:
    with pytest.raises(RenderingError, match="no pixel data"):
        render.decode_dataset_frame(read("modalities/sr/sr_document.dcm"), 0)


def test_render_unsupported_photometric() -> None:
    pixels = FramePixels(np.zeros((2, 2, 4), dtype=np.uint8), "ARGB")
    with pytest.raises(RenderingError, match="ARGB"):
        render.render_frame(Dataset(), pixels, 0, RenderingParameters())


def test_read_encapsulated_document_pdf() -> None:
    path = TESTDATA / "dicom" / "modalities/doc/sample-pdf.dcm"
    document = render.read_encapsulated_document(path)
    assert document.startswith(b"%PDF")
    assert document == pydicom.dcmread(path).EncapsulatedDocument
