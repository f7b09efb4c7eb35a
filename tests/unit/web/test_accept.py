"""The Accept parser and the choice of representation, with the header forms viewers send."""

from __future__ import annotations

import pytest
from starlette.requests import Request

from dicomweb_server.dicom.parse import PixelDataLayout
from dicomweb_server.errors import InvalidRequest, NotAcceptable
from dicomweb_server.index.retrieve import InstanceLocation
from dicomweb_server.web.accept import MediaRange, accepted_ranges, parse_accept, parse_media_type
from dicomweb_server.web.frames import negotiate_frames
from dicomweb_server.web.negotiation import require_json
from dicomweb_server.web.wado import negotiate_instances

EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1"
JPEG_2000_LOSSLESS = "1.2.840.10008.1.2.4.90"
JPEG_XL_RECOMPRESSION = "1.2.840.10008.1.2.4.111"

# Accept headers OHIF 3 sends for frames, bulk data, metadata and searches.
OHIF_FRAMES_QUOTED = 'multipart/related; type="application/octet-stream"; transfer-syntax=*'
OHIF_FRAMES_UNQUOTED = "multipart/related; type=application/octet-stream; transfer-syntax=*"
OHIF_METADATA = 'application/dicom+json, multipart/related; type="application/dicom+xml"'


def _request(headers: dict[str, str] | None = None, query: str = "") -> Request:
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/dicom-web/studies",
        "query_string": query.encode(),
        "headers": [(name.lower().encode(), value.encode()) for name, value in (headers or {}).items()],
    }
    return Request(scope)


def _location(transfer_syntax_uid: str, *, encapsulated: bool, frames: int = 1) -> InstanceLocation:
    layout = PixelDataLayout(encapsulated, tuple(((1000 + index * 10, 10),) for index in range(frames)))
    return InstanceLocation(
        instance_key=1,
        study_instance_uid="1.2.3",
        series_instance_uid="1.2.3.4",
        sop_instance_uid="1.2.3.4.5",
        sop_class_uid="1.2.840.10008.5.1.4.1.1.4",
        transfer_syntax_uid=transfer_syntax_uid,
        object_key="instances/00/00/x.dcm",
        object_size=2000,
        number_of_frames=frames,
        pixel_layout=layout,
        bulkdata={},
    )


def test_parse_quoted_type_and_transfer_syntax() -> None:
    (media_range,) = parse_accept(OHIF_FRAMES_QUOTED)
    assert media_range.media_type == "multipart/related"
    assert media_range.param("type") == "application/octet-stream"
    assert media_range.param("transfer-syntax") == "*"


def test_parse_unquoted_type_and_transfer_syntax() -> None:
    (media_range,) = parse_accept(OHIF_FRAMES_UNQUOTED)
    assert media_range.param("type") == "application/octet-stream"
    assert media_range.param("transfer-syntax") == "*"


def test_parse_quoted_transfer_syntax_star() -> None:
    (media_range,) = parse_accept('multipart/related; type="application/dicom"; transfer-syntax="*"')
    assert media_range.param("transfer-syntax") == "*"


def test_parse_list_keeps_header_order_at_equal_weight() -> None:
    ranges = parse_accept(OHIF_METADATA)
    assert [media_range.media_type for media_range in ranges] == [
        "application/dicom+json",
        "multipart/related",
    ]
    assert ranges[1].param("type") == "application/dicom+xml"


def test_parse_orders_by_q_value() -> None:
    header = (
        'multipart/related; type="application/dicom"; transfer-syntax=*; q=0.5, '
        'multipart/related; type="application/dicom"; q=0.9, */*; q=0.1'
    )
    ranges = parse_accept(header)
    assert [media_range.q for media_range in ranges] == [0.9, 0.5, 0.1]
    assert ranges[0].param("transfer-syntax") is None
    assert ranges[1].param("transfer-syntax") == "*"


def test_parse_drops_q_zero() -> None:
    ranges = parse_accept("application/dicom+json, application/json;q=0")
    assert [media_range.media_type for media_range in ranges] == ["application/dicom+json"]


def test_parse_star_star() -> None:
    (media_range,) = parse_accept("*/*")
    assert media_range.covers("application/dicom")
    assert media_range.covers("multipart/related")


def test_parse_bare_star_as_any() -> None:
    # Java's HttpURLConnection sends this header by default.
    ranges = parse_accept("text/html, image/gif, image/jpeg, *; q=.2, */*; q=.2")
    assert ranges[-1].media_type == "*/*"
    assert ranges[-2].media_type == "*/*"
    assert ranges[-2].q == pytest.approx(0.2)


def test_parse_is_case_insensitive() -> None:
    (media_range,) = parse_accept('Multipart/Related; Type="Application/DICOM"; Transfer-Syntax=*')
    assert media_range.media_type == "multipart/related"
    assert media_range.param("type") == "application/dicom"
    assert media_range.param("transfer-syntax") == "*"


def test_parse_spaces_and_separators_inside_quotes() -> None:
    (media_range,) = parse_accept('multipart/related ;type = "application/dicom;x,y" ; q = 1')
    assert media_range.param("type") == "application/dicom;x,y"
    assert media_range.q == 1.0


def test_parse_escaped_quote_inside_value() -> None:
    (media_range,) = parse_accept(r'application/dicom; profile="a\"b"')
    assert media_range.param("profile") == 'a"b'


def test_parse_range_covers_subtypes() -> None:
    image = parse_media_type("image/*")
    assert image.covers("image/jpeg")
    assert not image.covers("application/dicom")


@pytest.mark.parametrize(
    ("header", "named"),
    [("dicom", "'dicom'"), ("application/dicom; q=2", "q=2"), ("application/dicom; q=high", "q=high")],
)
def test_parse_invalid_range_names_it(header: str, named: str) -> None:
    with pytest.raises(InvalidRequest) as raised:
        parse_accept(header)
    assert named in raised.value.message


def test_parse_parameter_without_value_names_it() -> None:
    with pytest.raises(InvalidRequest) as raised:
        parse_media_type("application/dicom; transfer-syntax")
    assert "transfer-syntax" in raised.value.message


def test_accepted_ranges_without_header_is_406() -> None:
    with pytest.raises(NotAcceptable) as raised:
        accepted_ranges(_request())
    assert "Accept" in raised.value.message
    assert "*/*" in raised.value.message


def test_accepted_ranges_empty_header_is_any() -> None:
    assert accepted_ranges(_request({"Accept": ""})) == [MediaRange("*", "*")]


def test_accepted_ranges_star_star() -> None:
    assert accepted_ranges(_request({"Accept": "*/*"})) == [MediaRange("*", "*")]


def test_accepted_ranges_ignore_invalid_ranges() -> None:
    request = _request({"Accept": "application/dicom+json, not-a-media-type, image/jpeg; q=2"})
    assert [media_range.media_type for media_range in accepted_ranges(request)] == ["application/dicom+json"]


def test_accepted_ranges_all_invalid_is_406_naming_header() -> None:
    with pytest.raises(NotAcceptable) as raised:
        accepted_ranges(_request({"Accept": "not-a-media-type"}))
    assert "not-a-media-type" in raised.value.message


def test_accepted_ranges_query_parameter_first() -> None:
    request = _request({"Accept": "application/json"}, "accept=application%2Fdicom%2Bjson")
    ranges = accepted_ranges(request)
    assert [media_range.media_type for media_range in ranges] == [
        "application/dicom+json",
        "application/json",
    ]


def test_accepted_ranges_query_parameter_without_header() -> None:
    request = _request(query="accept=multipart%2Frelated%3B%20type%3D%22application%2Fdicom%22")
    (media_range,) = accepted_ranges(request)
    assert media_range.param("type") == "application/dicom"


def test_accepted_ranges_repeated_query_parameter() -> None:
    request = _request({"Accept": "*/*"}, "accept=image%2Fjpeg&accept=image%2Fpng%3Bq%3D0.5")
    assert [media_range.media_type for media_range in accepted_ranges(request)] == [
        "image/jpeg",
        "image/png",
        "*/*",
    ]


def test_require_json_for_ohif_metadata_header() -> None:
    assert require_json(parse_accept(OHIF_METADATA)) == "application/dicom+json"


def test_require_json_prefers_dicom_json_for_any() -> None:
    assert require_json(parse_accept("*/*")) == "application/dicom+json"


def test_require_json_plain_json() -> None:
    assert require_json(parse_accept("application/json")) == "application/json"


def test_require_json_refuses_xml_naming_it() -> None:
    with pytest.raises(NotAcceptable) as raised:
        require_json(parse_accept("application/dicom+xml"))
    assert "application/dicom+xml" in raised.value.message


def test_instances_default_is_explicit_little_endian() -> None:
    representation = negotiate_instances(parse_accept('multipart/related; type="application/dicom"'), False)
    assert representation.syntaxes == [EXPLICIT_VR_LITTLE_ENDIAN]
    assert not representation.single_part


def test_instances_any_syntax_keeps_stored() -> None:
    header = "multipart/related; type=application/dicom; transfer-syntax=*"
    representation = negotiate_instances(parse_accept(header), False)
    location = _location(JPEG_XL_RECOMPRESSION, encapsulated=True)
    assert representation.choose(location) == JPEG_XL_RECOMPRESSION


def test_instances_star_star_is_explicit_little_endian() -> None:
    representation = negotiate_instances(parse_accept("*/*"), False)
    location = _location(JPEG_2000_LOSSLESS, encapsulated=True)
    assert representation.choose(location) == EXPLICIT_VR_LITTLE_ENDIAN


def test_instances_undecodable_has_no_choice_without_star() -> None:
    representation = negotiate_instances(parse_accept('multipart/related; type="application/dicom"'), False)
    assert representation.choose(_location(JPEG_XL_RECOMPRESSION, encapsulated=True)) is None


def test_instances_fall_back_by_preference() -> None:
    header = (
        f'multipart/related; type="application/dicom"; transfer-syntax={JPEG_2000_LOSSLESS}, '
        'multipart/related; type="application/dicom"; transfer-syntax=*; q=0.5'
    )
    representation = negotiate_instances(parse_accept(header), False)
    stored = _location(JPEG_XL_RECOMPRESSION, encapsulated=True)
    assert representation.choose(stored) == JPEG_XL_RECOMPRESSION


def test_instances_single_part_only_for_one_instance() -> None:
    assert negotiate_instances(parse_accept("application/dicom"), True).single_part
    assert not negotiate_instances(parse_accept("application/dicom"), False).single_part


def test_instances_refuse_octet_stream_naming_it() -> None:
    with pytest.raises(NotAcceptable) as raised:
        negotiate_instances(parse_accept(OHIF_FRAMES_QUOTED), False)
    assert "application/octet-stream" in raised.value.message


def test_frames_any_media_type_decodes_compressed() -> None:
    location = _location(JPEG_2000_LOSSLESS, encapsulated=True)
    representation = negotiate_frames(parse_accept("*/*"), location, 2)
    assert representation.native
    expected = f"application/octet-stream; transfer-syntax={EXPLICIT_VR_LITTLE_ENDIAN}"
    assert representation.content_type(location) == expected


def test_frames_ohif_headers_take_compressed_as_stored() -> None:
    location = _location(JPEG_2000_LOSSLESS, encapsulated=True)
    for header in (OHIF_FRAMES_QUOTED, OHIF_FRAMES_UNQUOTED):
        representation = negotiate_frames(parse_accept(header), location, 2)
        assert not representation.native, header
        assert not representation.single_part, header
        assert representation.content_type(location) == f"image/jp2; transfer-syntax={JPEG_2000_LOSSLESS}"


def test_frames_octet_stream_decodes_compressed() -> None:
    location = _location(JPEG_2000_LOSSLESS, encapsulated=True)
    representation = negotiate_frames(
        parse_accept('multipart/related; type="application/octet-stream"'), location, 2
    )
    assert representation.native
    expected = f"application/octet-stream; transfer-syntax={EXPLICIT_VR_LITTLE_ENDIAN}"
    assert representation.content_type(location) == expected


def test_frames_image_type_of_stored_syntax() -> None:
    location = _location(JPEG_2000_LOSSLESS, encapsulated=True)
    representation = negotiate_frames(parse_accept('multipart/related; type="image/jp2"'), location, 1)
    assert not representation.native


def test_frames_single_part_for_one_frame_without_multipart() -> None:
    location = _location(EXPLICIT_VR_LITTLE_ENDIAN, encapsulated=False, frames=3)
    assert negotiate_frames(parse_accept("application/octet-stream"), location, 1).single_part
    assert not negotiate_frames(parse_accept("application/octet-stream"), location, 2).single_part


def test_frames_native_for_uncompressed_any_header() -> None:
    location = _location(EXPLICIT_VR_LITTLE_ENDIAN, encapsulated=False)
    for header in (
        OHIF_FRAMES_QUOTED,
        OHIF_FRAMES_UNQUOTED,
        "*/*",
        'multipart/related; type="application/octet-stream"',
    ):
        representation = negotiate_frames(parse_accept(header), location, 1)
        assert representation.native, header


def test_frames_undecodable_names_what_can_be_sent() -> None:
    location = _location(JPEG_XL_RECOMPRESSION, encapsulated=True)
    with pytest.raises(NotAcceptable) as raised:
        negotiate_frames(parse_accept('multipart/related; type="application/octet-stream"'), location, 1)
    assert "transfer-syntax=*" in raised.value.message
    assert "image/jxl" in raised.value.message
    assert JPEG_XL_RECOMPRESSION in raised.value.message
