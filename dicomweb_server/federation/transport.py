"""HTTP connections to a peer: TLS settings for both HTTP clients, and failures in plain words.

Searches go through dicomweb-client, which uses requests; retrievals and imports stream through
httpx. Both get the same TLS files from the peer's record.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable
from typing import Any

import httpx
import requests

from dicomweb_server.federation.errors import PeerError, PeerTimeout
from dicomweb_server.federation.peers import Peer

MAX_SEARCH_RESPONSE_BYTES = 32 * 1024 * 1024
"""Largest search response body read from a peer, decoded.

One study result of this archive takes under 1 KB (894 bytes for CT_small.dcm of the test
files), so a page of 1000 takes about 1 MB. Other archives that return more attributes may need
a few megabytes (an estimate), so a larger body comes from a broken or hostile peer. Read whole,
it would fill this archive's memory, and parsing it would stall every other request.
"""

READ_SIZE = 64 * 1024


def ssl_context(peer: Peer) -> ssl.SSLContext:
    """Build the TLS context of a peer: its CA bundle (or the system's) and its client certificate."""
    context = ssl.create_default_context(cafile=peer.ca_bundle)
    if peer.client_certificate:
        context.load_cert_chain(peer.client_certificate, peer.client_key)
    return context


def http_client(peer: Peer) -> httpx.AsyncClient:
    """Open an httpx client for one peer: its TLS settings, its timeout for connecting and for each read.

    Redirects are not followed, so a peer cannot send the archive's credentials elsewhere.
    """
    return httpx.AsyncClient(
        verify=ssl_context(peer),
        timeout=httpx.Timeout(peer.timeout),
        follow_redirects=False,
        trust_env=False,
    )


def requests_session(peer: Peer) -> requests.Session:
    """Open a requests session for one peer (dicomweb-client's transport), with its TLS settings."""
    session = requests.Session()
    session.trust_env = False
    session.verify = peer.ca_bundle or True
    if peer.client_certificate:
        session.cert = (
            (peer.client_certificate, peer.client_key) if peer.client_key else peer.client_certificate
        )
    session.max_redirects = 0
    return session


class _BoundedBody:
    """A peer's response body that fails once it passes ``MAX_SEARCH_RESPONSE_BYTES`` or the deadline.

    requests reads the body through ``read`` alone, because this class has no ``stream`` method.
    On failure the connection is closed at once: requests neither closes nor pools a response
    whose body raised, so the peer would otherwise go on sending into it.
    """

    def __init__(self, raw: Any, peer: Peer, deadline: float) -> None:
        self._raw = raw
        self._peer = peer
        self._deadline = deadline
        self._size = 0

    def read(self, amount: int | None = None, *_: Any, **__: Any) -> bytes:
        # The read timeout of requests bounds each read only, so a peer that keeps sending slowly
        # would hold the search thread past the search's deadline without this check.
        if time.monotonic() > self._deadline:
            self._raw.close()
            raise PeerTimeout(self._peer.name, f"did not respond within {self._peer.timeout:g} s")
        # read1 returns what has arrived, where read waits for the whole amount, so the deadline is
        # checked between the bytes of a peer that sends slowly. urllib3 1.x has no read1.
        read = getattr(self._raw, "read1", None) or self._raw.read
        chunk = read(amount or READ_SIZE, decode_content=True)
        self._size += len(chunk)
        if self._size > MAX_SEARCH_RESPONSE_BYTES:
            self._raw.close()
            raise PeerError(
                self._peer.name,
                f"responded with more than {MAX_SEARCH_RESPONSE_BYTES // (1024 * 1024)} MiB to a search; "
                "narrow the search or check the peer",
            )
        return chunk

    def close(self) -> None:
        self._raw.close()

    def release_conn(self) -> None:
        self._raw.release_conn()


def bounded_body_hook(peer: Peer, deadline: float) -> Callable[..., requests.Response]:
    """Return a requests response hook that bounds the body's size and the time to read it.

    requests calls response hooks before it reads the body of a request made without ``stream``,
    so the body is read through ``_BoundedBody``.
    """

    def bound(response: requests.Response, *_: Any, **__: Any) -> requests.Response:
        response.raw = _BoundedBody(response.raw, peer, deadline)
        return response

    return bound


def describe_status(status: int) -> str:
    if status in (401, 403):
        return (
            f"rejected this archive's credentials (HTTP {status}); "
            "check the peer's token or client credentials"
        )
    if status == 404:
        return "responded with 404: the URL is not a DICOMweb root the peer serves; check the peer URL"
    if 300 <= status < 400:
        return f"responded with a redirect (HTTP {status}), which is not followed; register the final URL"
    return f"responded with HTTP {status}"


def peer_failure(peer: Peer, error: BaseException) -> PeerError:
    """Describe a failed request to ``peer`` in plain words, whichever HTTP client raised ``error``."""
    if isinstance(error, PeerError):
        return error
    if isinstance(error, TimeoutError | httpx.TimeoutException | requests.Timeout):
        return PeerTimeout(peer.name, f"did not respond within {peer.timeout:g} s")
    if isinstance(error, requests.TooManyRedirects):
        # The session allows no redirect, so requests raises on the first one.
        status = error.response.status_code if error.response is not None else 302
        return PeerError(peer.name, describe_status(status))
    if isinstance(error, requests.HTTPError) and error.response is not None:
        return PeerError(peer.name, describe_status(error.response.status_code))
    if isinstance(error, httpx.HTTPStatusError):
        return PeerError(peer.name, describe_status(error.response.status_code))
    if _cause(error, ssl.SSLError) is not None or _cause(error, requests.exceptions.SSLError) is not None:
        detail = _tls_detail(error)
        return PeerError(
            peer.name, f"failed the TLS handshake ({detail}); check the CA bundle and the certificate"
        )
    if _cause(error, ConnectionRefusedError) is not None or "Connection refused" in str(error):
        return PeerError(peer.name, f"refused the connection: nothing listens at {peer.url}")
    # requests' JSONDecodeError is a ValueError and an OSError; it means a body that is not JSON.
    if isinstance(error, ValueError):
        return PeerError(peer.name, "responded with a body that is not a DICOM JSON array")
    if isinstance(error, httpx.TransportError | requests.ConnectionError | OSError):
        return PeerError(peer.name, f"could not be reached ({type(error).__name__})")
    return PeerError(peer.name, f"failed ({type(error).__name__})")


def _cause(error: BaseException, kind: type[BaseException]) -> BaseException | None:
    """Return ``error`` or the first exception of ``kind`` in its chain of causes."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, kind):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _tls_detail(error: BaseException) -> str:
    """Name what failed in a TLS handshake, from the ssl module's own codes only.

    The messages of requests and urllib3 quote the request URL with its query string, which contains
    patient attributes, so they are never shown or logged.
    """
    tls_error = _cause(error, ssl.SSLError)
    detail = getattr(tls_error, "verify_message", None) or getattr(tls_error, "reason", None)
    return str(detail) if detail else "TLS error"
