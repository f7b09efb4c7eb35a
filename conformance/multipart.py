"""multipart/related bodies (RFC 2387): building STOW-RS requests and reading WADO-RS responses."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from conformance.media import MediaType, parse_media_type

CRLF = b"\r\n"


@dataclass(frozen=True)
class Part:
    """One body part: its header fields (names in lower case) and its content."""

    headers: dict[str, str]
    content: bytes

    @property
    def media_type(self) -> MediaType:
        return parse_media_type(self.headers.get("content-type"))


class MultipartError(ValueError):
    """A body that is not the multipart/related body its Content-Type announces."""


def new_boundary() -> str:
    return f"conformance-{secrets.token_hex(12)}"


def build_multipart(parts: list[tuple[str, bytes]], boundary: str) -> bytes:
    """Write parts, each given as (Content-Type, content), between ``boundary`` delimiters."""
    body = bytearray()
    for content_type, content in parts:
        body += b"--" + boundary.encode("ascii") + CRLF
        body += f"Content-Type: {content_type}".encode("ascii") + CRLF + CRLF
        body += content + CRLF
    body += b"--" + boundary.encode("ascii") + b"--" + CRLF
    return bytes(body)


def parse_multipart(content_type: str | None, body: bytes) -> list[Part]:
    """Split a multipart body into its parts.

    Raises
    ------
    MultipartError
        When the Content-Type has no boundary, or the body has no closing delimiter.
    """
    boundary = parse_media_type(content_type).param("boundary")
    if not boundary:
        raise MultipartError(f"the Content-Type {content_type!r} has no boundary parameter")
    delimiter = CRLF + b"--" + boundary.encode("latin-1")

    # A CRLF in front lets the first delimiter, which may open the body, match like the others.
    pieces = (CRLF + body).split(delimiter)
    parts = []
    for piece in pieces[1:]:
        if piece.startswith(b"--"):
            return parts
        parts.append(_read_part(piece))
    raise MultipartError(f"the body has no closing delimiter --{boundary}--")


def _read_part(piece: bytes) -> Part:
    # The delimiter line may end with transport padding before its CRLF (RFC 2046 5.1.1).
    line_end = piece.find(CRLF)
    if line_end < 0:
        raise MultipartError("a body part has no header section")
    rest = piece[line_end + 2 :]
    if rest.startswith(CRLF):
        return Part({}, rest[2:])
    head, separator, content = rest.partition(CRLF + CRLF)
    if not separator:
        raise MultipartError("a body part has no blank line after its header fields")

    headers = {}
    for line in head.decode("latin-1").split("\r\n"):
        name, colon, value = line.partition(":")
        if colon:
            headers[name.strip().lower()] = value.strip()
    return Part(headers, content)
