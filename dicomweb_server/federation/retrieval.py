"""WADO-RS retrievals from a peer, streamed through this archive.

A retrieval opens one streamed GET to the peer and hands its body on chunk by chunk, so a
study of any size passes through in constant memory. The peer's DICOMweb root in JSON bodies
(the BulkDataURIs of metadata) is replaced by the address of the same resource through this
archive, also when it spans two chunks.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

import anyio
import httpx

from dicomweb_server.federation.credentials import ACCESS_TOKENS, PeerAccess
from dicomweb_server.federation.transport import http_client, peer_failure

_UID = r"[0-9]+(?:\.[0-9]+)*"
_TAIL = r"(?:/(?:metadata|rendered|thumbnail|pixeldata))?"
_FRAMES = r"/frames/[0-9]+(?:,[0-9]+)*(?:/(?:rendered|thumbnail))?"
# Bulk data paths are the peer's own: ours end in tags and item numbers, Orthanc's use "bulk".
_BULKDATA = r"/bulk(?:data)?(?:/[0-9A-Za-z_-]+)+"
WADO_PATH = re.compile(
    rf"studies/{_UID}(?:/series/{_UID}(?:/instances/{_UID}(?:{_FRAMES}|{_BULKDATA}|{_TAIL})|{_TAIL})|{_TAIL})"
)
"""The retrieval paths relayed to a peer: the study, series and instance resources of PS3.18 10.4."""

JSON_MEDIA_TYPES = ("application/dicom+json", "application/json")
WEB_PAGE_MEDIA_TYPES = ("text/html", "application/xhtml+xml")
RELAYED_HEADERS = {"Content-Security-Policy": "sandbox", "X-Content-Type-Options": "nosniff"}
"""Headers of every relayed body: a browser that opens one runs no script of the peer's under this
archive's origin, and does not guess another media type than the one declared."""


def unexpected_media_type(path: str, media_type: str) -> str | None:
    """Return why a peer's 200 answer of ``media_type`` to ``path`` cannot be DICOMweb data, or None.

    Metadata is DICOM JSON. A web page is a DICOMweb media type only for rendered resources (a
    rendered structured report); elsewhere it is a login page or an error page of the peer or of
    a proxy in front of it.
    """
    if path.endswith("/metadata") and media_type not in JSON_MEDIA_TYPES:
        return f"responded to a metadata request with {media_type!r}, not application/dicom+json"
    rendered = path.endswith(("/rendered", "/thumbnail"))
    if media_type in WEB_PAGE_MEDIA_TYPES and not rendered:
        return f"responded with a web page ({media_type}) instead of DICOM data; check the peer URL"
    return None


def is_retrieval_path(path: str) -> bool:
    """Return whether ``path`` (relative to the peer's root) is a WADO-RS resource we relay."""
    return WADO_PATH.fullmatch(path) is not None and len(path) <= 1024


@dataclass
class PeerStream:
    """An open response of a peer: its status, its headers and its body, read once."""

    access: PeerAccess
    client: httpx.AsyncClient
    response: httpx.Response

    @property
    def status_code(self) -> int:
        return self.response.status_code

    @property
    def content_type(self) -> str:
        return self.response.headers.get("content-type", "application/octet-stream")

    @property
    def media_type(self) -> str:
        """The Content-Type without parameters, in lower case."""
        return self.content_type.split(";")[0].strip().lower()

    def is_json(self) -> bool:
        return self.media_type in JSON_MEDIA_TYPES

    async def chunks(self) -> AsyncIterator[bytes]:
        """Yield the body as it arrives (decoded, should the peer compress it anyway)."""
        try:
            async for chunk in self.response.aiter_bytes():
                yield chunk
        except httpx.HTTPError as error:
            raise peer_failure(self.access.peer, error) from None

    async def text_excerpt(self, limit: int = 300) -> str:
        """Return the start of a short error body, for messages; never for a data body."""
        collected = b""
        async for chunk in self.chunks():
            collected += chunk
            if len(collected) >= limit:
                break
        return collected[:limit].decode("utf-8", "replace").strip()

    async def aclose(self) -> None:
        # Shielded, so that a cancelled request (a client that went away) still closes the
        # connection to the peer instead of leaving it open.
        with anyio.CancelScope(shield=True):
            await self.response.aclose()
            await self.client.aclose()


async def open_stream(access: PeerAccess, path: str, accept: str | None, query: str = "") -> PeerStream:
    """Send a GET for ``path`` under the peer's root and return the response once its headers arrive.

    Raises
    ------
    PeerError
        When the peer cannot be reached, times out before it responds, or the token endpoint fails.
    """
    peer = access.peer
    headers = await ACCESS_TOKENS.headers(access)
    # The body is relayed as it comes, so the peer is asked not to compress it.
    headers["Accept-Encoding"] = "identity"
    if accept:
        headers["Accept"] = accept
    url = f"{peer.url}/{path}" + (f"?{query}" if query else "")
    client = http_client(peer)
    try:
        response = await client.send(client.build_request("GET", url, headers=headers), stream=True)
    except BaseException as error:
        with anyio.CancelScope(shield=True):
            await client.aclose()
        if isinstance(error, httpx.HTTPError):
            raise peer_failure(peer, error) from None
        raise
    if response.status_code in (401, 403):
        ACCESS_TOKENS.forget(access)
    return PeerStream(access, client, response)


async def replace_prefix(chunks: AsyncIterator[bytes], old: bytes, new: bytes) -> AsyncIterator[bytes]:
    """Yield ``chunks`` with every ``old`` replaced by ``new``, also where ``old`` spans two chunks.

    Only a tail that could be the start of ``old`` is held back, at most ``len(old) - 1`` bytes.
    """
    pending = b""
    async for chunk in chunks:
        pending = (pending + chunk).replace(old, new)
        split = _start_of_partial_match(pending, old)
        if split:
            yield pending[:split]
        pending = pending[split:]
    if pending:
        yield pending


def _start_of_partial_match(data: bytes, old: bytes) -> int:
    """Return where the longest tail of ``data`` that begins ``old`` starts, or ``len(data)`` for none."""
    for start in range(max(len(data) - len(old) + 1, 0), len(data)):
        if old.startswith(data[start:]):
            return start
    return len(data)
