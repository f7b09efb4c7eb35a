"""Media types of PS3.18 8.7 and a lenient parser for Content-Type values."""

from __future__ import annotations

from dataclasses import dataclass, field

DICOM = "application/dicom"
DICOM_JSON = "application/dicom+json"
DICOM_XML = "application/dicom+xml"
JSON = "application/json"
OCTET_STREAM = "application/octet-stream"
MULTIPART_RELATED = "multipart/related"
WADL = "application/vnd.sun.wadl+xml"

EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1"
IMPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2"
MPEG2_MAIN_PROFILE = "1.2.840.10008.1.2.4.100"
"""A transfer syntax no archive can produce from a CT image: there is no video to encode."""


@dataclass(frozen=True)
class MediaType:
    """A media type with its parameters; names are lower case, values unquoted."""

    type: str
    parameters: dict[str, str] = field(default_factory=dict)

    def param(self, name: str) -> str | None:
        return self.parameters.get(name)


def parse_media_type(text: str | None) -> MediaType:
    """Parse "type/subtype; name=value; name="quoted value"" leniently.

    A missing or empty value gives an empty type, so callers can report what came back
    instead of failing inside the parser.
    """
    if not text:
        return MediaType("")
    pieces = _split_outside_quotes(text, ";")
    parameters = {}
    for piece in pieces[1:]:
        name, _, value = piece.partition("=")
        if name.strip():
            parameters[name.strip().lower()] = _unquote(value.strip())
    return MediaType(pieces[0].strip().lower(), parameters)


def _split_outside_quotes(text: str, separator: str) -> list[str]:
    pieces: list[str] = []
    current: list[str] = []
    quoted = False
    for character in text:
        if character == '"':
            quoted = not quoted
        if character == separator and not quoted:
            pieces.append("".join(current))
            current = []
        else:
            current.append(character)
    pieces.append("".join(current))
    return pieces


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    return value
