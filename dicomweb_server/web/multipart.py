"""multipart/related bodies (RFC 2387): a streaming reader for STOW-RS and a writer for WADO-RS.

The reader hands out a part's bytes as they arrive, so a request body is never held in memory
whole; python-multipart does the parsing. The writer produces parts from async byte streams.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass, field

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MAX_BOUNDARY_LENGTH, MultipartParser

from dicomweb_server.errors import InvalidRequest

CRLF = b"\r\n"
MAX_PREAMBLE = 64 * 1024
MAX_PART_HEADERS = 32
"""Header fields one part may have; a DICOM part needs one or two (Content-Type, Content-Length)."""
MAX_PART_HEADER_SIZE = 16 * 1024
"""Bytes of one header field of a part."""


@dataclass
class PartStart:
    """A part begins; its header fields have been read (names in lower case)."""

    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class PartData:
    data: bytes


@dataclass
class PartEnd:
    pass


PartEvent = PartStart | PartData | PartEnd


class TruncatedBody(InvalidRequest):
    """The body ended before the closing boundary; parts completed before it are valid."""


async def part_chunks(events: AsyncIterator[PartEvent]) -> AsyncIterator[bytes]:
    """Yield the body of the current part from ``read_parts`` events, stopping at its end."""
    async for event in events:
        if isinstance(event, PartData):
            yield event.data
        elif isinstance(event, PartEnd):
            return


async def read_parts(body: AsyncIterable[bytes], boundary: str) -> AsyncIterator[PartEvent]:
    """Yield the parts of a multipart body as start, data and end events, in order.

    Raises
    ------
    InvalidRequest
        When the body is not a multipart body with this boundary.
    TruncatedBody
        When the body ends inside a part or before the closing boundary.
    """
    _check_boundary(boundary)
    events: list[PartEvent] = []
    header_field: list[bytes] = []
    header_value: list[bytes] = []
    current = PartStart()
    finished = False

    def on_part_begin() -> None:
        nonlocal current
        current = PartStart()

    def on_header_field(data: bytes, start: int, end: int) -> None:
        header_field.append(bytes(data[start:end]))

    def on_header_value(data: bytes, start: int, end: int) -> None:
        header_value.append(bytes(data[start:end]))

    def on_header_end() -> None:
        name = b"".join(header_field).decode("latin-1").strip().lower()
        current.headers[name] = b"".join(header_value).decode("latin-1").strip()
        header_field.clear()
        header_value.clear()

    def on_headers_finished() -> None:
        events.append(current)

    def on_part_data(data: bytes, start: int, end: int) -> None:
        if events and isinstance(events[-1], PartData):
            events[-1].data += bytes(data[start:end])
        else:
            events.append(PartData(bytes(data[start:end])))

    def on_part_end() -> None:
        events.append(PartEnd())

    def on_end() -> None:
        nonlocal finished
        finished = True

    parser = MultipartParser(
        boundary.encode("latin-1"),
        {
            "on_part_begin": on_part_begin,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_headers_finished": on_headers_finished,
            "on_part_data": on_part_data,
            "on_part_end": on_part_end,
            "on_end": on_end,
        },
        max_header_count=MAX_PART_HEADERS,
        max_header_size=MAX_PART_HEADER_SIZE,
    )

    try:
        async for chunk in _skip_preamble(body, boundary.encode("latin-1")):
            parser.write(chunk)
            for event in events:
                yield event
            events.clear()
        parser.finalize()
    except MultipartParseError as error:
        raise InvalidRequest(_parse_error_message(error)) from error
    for event in events:
        yield event
    if not finished:
        raise TruncatedBody(
            f"the multipart body ends before its closing boundary --{boundary}--; "
            "send the whole body, ending with the closing boundary"
        )


def _check_boundary(boundary: str) -> None:
    if len(boundary) > MAX_BOUNDARY_LENGTH:
        raise InvalidRequest(
            f"the multipart boundary has {len(boundary)} characters, more than the {MAX_BOUNDARY_LENGTH} "
            "accepted; use a boundary of at most 70 characters, as RFC 2046 5.1.1 requires"
        )


def _parse_error_message(error: MultipartParseError) -> str:
    """Return the message of a parser error, naming the limit and the fix where a limit was hit."""
    text = str(error)
    if text.startswith("Maximum header count"):
        return (
            f"a part of the multipart body has more than {MAX_PART_HEADERS} header fields, the maximum; "
            "send each part with its Content-Type and few other header fields"
        )
    if text.startswith("Maximum header size"):
        return (
            f"a header field of a part of the multipart body is longer than {MAX_PART_HEADER_SIZE} bytes, "
            "the maximum; shorten that header field"
        )
    return f"the multipart body is malformed: {text}"


async def _skip_preamble(body: AsyncIterable[bytes], boundary: bytes) -> AsyncIterator[bytes]:
    """Drop any preamble before the first boundary (RFC 2046 5.1.1); python-multipart rejects one."""
    delimiter = b"--" + boundary
    buffer = b""
    iterator = aiter(body)
    async for chunk in iterator:
        buffer += chunk
        position = _first_delimiter(buffer, delimiter)
        if position >= 0:
            yield buffer[position:]
            break
        if len(buffer) > MAX_PREAMBLE + len(delimiter):
            raise InvalidRequest(
                f"the multipart body does not start with the boundary {boundary.decode('latin-1')!r} "
                "given in its Content-Type"
            )
    else:
        if buffer:
            raise InvalidRequest(
                f"the multipart body does not contain the boundary {boundary.decode('latin-1')!r} "
                "given in its Content-Type"
            )
        raise InvalidRequest("the request body is empty; send a multipart/related body with DICOM parts")
    async for chunk in iterator:
        yield chunk


def _first_delimiter(buffer: bytes, delimiter: bytes) -> int:
    if buffer.startswith(delimiter):
        return 0
    position = buffer.find(CRLF + delimiter)
    return position + 2 if position >= 0 else -1


def new_boundary() -> str:
    return secrets.token_hex(16)


@dataclass
class Part:
    """One part to write: its Content-Type and an async stream of its bytes."""

    content_type: str
    body: AsyncIterable[bytes]
    headers: dict[str, str] = field(default_factory=dict)


async def write_parts(parts: AsyncIterable[Part], boundary: str) -> AsyncIterator[bytes]:
    """Yield a multipart body made of ``parts``, ending with the closing boundary."""
    delimiter = f"--{boundary}".encode("latin-1")
    async for part in parts:
        header_lines = [f"Content-Type: {part.content_type}"]
        header_lines += [f"{name}: {value}" for name, value in part.headers.items()]
        yield delimiter + CRLF + "\r\n".join(header_lines).encode("latin-1") + CRLF + CRLF
        async for chunk in part.body:
            yield chunk
        yield CRLF
    yield delimiter + b"--" + CRLF
