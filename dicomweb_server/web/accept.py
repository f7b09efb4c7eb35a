"""Accept header parsing (RFC 9110 12.5.1) as PS3.18 8.7 uses it.

Viewers send every legal form and some that are not: quoted and unquoted parameter values
(``type="application/dicom"`` and ``type=application/dicom``, though "/" is not a token
character), lists of media ranges with q-values, ``*/*``, and ``transfer-syntax=*``. The parser
accepts them all; parameter values end at the next unquoted ";" or ",".
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from starlette.requests import Request

from dicomweb_server.errors import InvalidRequest, NotAcceptable


@dataclass(frozen=True)
class MediaRange:
    """One media range of an Accept header, with its parameters and weight."""

    type: str
    subtype: str
    parameters: dict[str, str] = field(default_factory=dict)
    q: float = 1.0

    @property
    def media_type(self) -> str:
        return f"{self.type}/{self.subtype}"

    def param(self, name: str) -> str | None:
        return self.parameters.get(name)

    def covers(self, media_type: str) -> bool:
        """Return whether this range accepts ``media_type`` ("image/*" covers "image/jpeg")."""
        type_, _, subtype = media_type.partition("/")
        if self.type == "*":
            return True
        return self.type == type_ and self.subtype in ("*", subtype)

    def __str__(self) -> str:
        parameters = "".join(f'; {name}="{value}"' for name, value in self.parameters.items())
        return f"{self.media_type}{parameters}"


ANY = MediaRange("*", "*")


def _split_unquoted(text: str, separator: str) -> Iterator[str]:
    """Split at ``separator`` characters outside double quotes; backslash escapes inside quotes."""
    current: list[str] = []
    quoted = False
    escaped = False
    for character in text:
        if escaped:
            current.append(character)
            escaped = False
        elif quoted and character == "\\":
            current.append(character)
            escaped = True
        elif character == '"':
            current.append(character)
            quoted = not quoted
        elif character == separator and not quoted:
            yield "".join(current)
            current = []
        else:
            current.append(character)
    yield "".join(current)


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        inner = value[1:-1]
        result = []
        escaped = False
        for character in inner:
            if escaped:
                result.append(character)
                escaped = False
            elif character == "\\":
                escaped = True
            else:
                result.append(character)
        return "".join(result)
    return value


def parse_media_type(text: str) -> MediaRange:
    """Parse one media type or media range with its parameters.

    Raises
    ------
    InvalidRequest
        When the text has no "type/subtype".
    """
    pieces = list(_split_unquoted(text, ";"))
    full = pieces[0].strip().lower()
    if full == "*":
        # Java's HttpURLConnection sends "*; q=.2" in its default Accept header, meaning "*/*".
        full = "*/*"
    type_, slash, subtype = full.partition("/")
    if not slash or not type_ or not subtype:
        raise InvalidRequest(
            f"invalid media type {text.strip()!r}; write it as type/subtype, such as application/dicom+json"
        )
    parameters: dict[str, str] = {}
    q = 1.0
    for piece in pieces[1:]:
        name, equals, value = piece.partition("=")
        name = name.strip().lower()
        if not name:
            continue
        if not equals:
            raise InvalidRequest(
                f"invalid parameter {piece.strip()!r} in media type {text.strip()!r}; write name=value"
            )
        if name == "q":
            q = _parse_q(value, text)
        elif name == "type":
            # The value is a media type, which is case-insensitive like the range itself.
            parameters[name] = _unquote(value).lower()
        else:
            parameters[name] = _unquote(value)
    return MediaRange(type_, subtype, parameters, q)


def _parse_q(value: str, text: str) -> float:
    try:
        q = float(value.strip())
    except ValueError:
        q = -1.0
    if not 0.0 <= q <= 1.0:
        raise InvalidRequest(
            f"invalid weight q={value.strip()} in {text.strip()!r}; use a number from 0 to 1"
        )
    return q


def parse_accept(header: str) -> list[MediaRange]:
    """Parse an Accept header into media ranges, the most preferred first.

    Ranges are ordered by weight; among equal weights the order of the header is kept. Ranges
    with q=0 are dropped, because q=0 marks a media type the client rejects.

    Raises
    ------
    InvalidRequest
        When a range is not a valid media range; :func:`accepted_ranges` ignores such ranges.
    """
    ranges = [parse_media_type(item) for item in _split_unquoted(header, ",") if item.strip()]
    return _by_preference(ranges)


def _valid_ranges(text: str) -> list[MediaRange]:
    """Parse a list of media ranges, leaving out those that are not valid."""
    ranges = []
    for item in _split_unquoted(text, ","):
        if not item.strip():
            continue
        try:
            ranges.append(parse_media_type(item))
        except InvalidRequest:
            continue
    return _by_preference(ranges)


def _by_preference(ranges: list[MediaRange]) -> list[MediaRange]:
    accepted = [media_range for media_range in ranges if media_range.q > 0]
    return sorted(accepted, key=lambda media_range: -media_range.q)


def accepted_ranges(request: Request) -> list[MediaRange]:
    """Return the media ranges a request accepts, in the order a response type is chosen.

    The ranges of the ``accept`` query parameter (PS3.18 8.3.3.1), used by links and ``<img>``
    elements that cannot set headers, come first, then those of the Accept header, each list
    ordered by weight (PS3.18 8.7.8.1). Ranges that are not valid are ignored (PS3.18 8.7.7).

    Raises
    ------
    NotAcceptable
        When the request has neither an Accept header nor the query parameter, for which PS3.18
        8.7.7 requires a 406, or when none of its ranges is valid.
    """
    query = ",".join(request.query_params.getlist("accept"))
    header = request.headers.get("accept")
    if header is None and not query:
        raise NotAcceptable(
            "the request has no Accept header, which DICOMweb requires for a response with a "
            "payload; send Accept: */* for the default media type, or name the media type wanted"
        )

    if header is not None and not header.strip() and not query:
        # An empty list is allowed by the header's syntax in RFC 9110, and a server may then
        # send its default representation, as for */*.
        return [ANY]

    ranges = _valid_ranges(query) + _valid_ranges(header or "")
    if not ranges:
        given = ", ".join(text for text in (query, header) if text)
        raise NotAcceptable(
            f"no valid media range in {given!r}; write each as type/subtype with optional "
            'parameters, such as multipart/related; type="application/dicom"'
        )
    return ranges
