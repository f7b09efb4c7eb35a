"""The multipart/related reader: limit errors name the limit and the fix."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from dicomweb_server.errors import InvalidRequest
from dicomweb_server.web.multipart import MAX_PART_HEADER_SIZE, MAX_PART_HEADERS, PartEvent, read_parts

BOUNDARY = "test-boundary"


async def _body(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def _read(data: bytes, boundary: str = BOUNDARY) -> list[PartEvent]:
    return [event async for event in read_parts(_body(data), boundary)]


def _part(headers: list[str]) -> bytes:
    head = "".join(f"{line}\r\n" for line in headers)
    return f"--{BOUNDARY}\r\n{head}\r\nDICM\r\n--{BOUNDARY}--\r\n".encode()


async def test_read_parts_too_many_headers() -> None:
    headers = ["Content-Type: application/dicom"] + [f"X-Extra-{n}: 1" for n in range(MAX_PART_HEADERS)]
    with pytest.raises(InvalidRequest) as raised:
        await _read(_part(headers))
    assert f"more than {MAX_PART_HEADERS} header fields" in raised.value.message
    assert "send each part with its Content-Type" in raised.value.message


async def test_read_parts_header_too_long() -> None:
    headers = ["Content-Type: application/dicom", "X-Long: " + "a" * MAX_PART_HEADER_SIZE]
    with pytest.raises(InvalidRequest) as raised:
        await _read(_part(headers))
    assert f"longer than {MAX_PART_HEADER_SIZE} bytes" in raised.value.message


async def test_read_parts_boundary_too_long() -> None:
    boundary = "b" * 300
    with pytest.raises(InvalidRequest) as raised:
        await _read(b"--" + boundary.encode() + b"--\r\n", boundary)
    assert "300 characters" in raised.value.message
    assert "at most 70 characters" in raised.value.message


async def test_read_parts_within_limits() -> None:
    events = await _read(_part(["Content-Type: application/dicom"]))
    assert len(events) == 3
