"""OAuth 2.0 client credentials against a token endpoint on loopback: fetched, cached, refreshed."""

from __future__ import annotations

import base64
import dataclasses
import datetime
import http.server
import json
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from dicomweb_server.federation import credentials
from dicomweb_server.federation.credentials import AccessTokens, PeerAccess
from dicomweb_server.federation.errors import PeerError, PeerTimeout
from dicomweb_server.federation.peers import Authentication, Peer

NOW = datetime.datetime(2026, 6, 15, 12, 0, tzinfo=datetime.UTC)


@dataclass
class TokenEndpoint:
    """A token endpoint that records each request and responds with a token, or an error status."""

    url: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200
    lifetime: int = 3600
    token_size: int = 0
    seconds_per_byte: float = 0.0


@pytest.fixture
def endpoint() -> Iterator[TokenEndpoint]:
    state = TokenEndpoint()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the name http.server calls
            length = int(self.headers["Content-Length"])
            form = urllib.parse.parse_qs(self.rfile.read(length).decode())
            scheme, _, encoded = self.headers.get("Authorization", "").partition(" ")
            state.requests.append(
                {"scheme": scheme, "credentials": base64.b64decode(encoded).decode(), "form": form}
            )
            body: dict[str, Any] = {
                "access_token": f"access-{len(state.requests)}" + "x" * state.token_size,
                "token_type": "Bearer",
                "expires_in": state.lifetime,
            }
            if state.status != 200:
                body = {"error": "invalid_client"}
            encoded_body = json.dumps(body).encode()
            self.send_response(state.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(encoded_body)))
            self.end_headers()
            if not state.seconds_per_byte:
                self.wfile.write(encoded_body)
                return
            try:
                for index in range(len(encoded_body)):
                    self.wfile.write(encoded_body[index : index + 1])
                    self.wfile.flush()
                    time.sleep(state.seconds_per_byte)
            except OSError:
                return

        def log_message(self, *arguments: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/token"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


def oauth_access(token_url: str) -> PeerAccess:
    peer = Peer(
        key=1,
        name="mercy",
        url="http://127.0.0.1:9/dicom-web",
        authentication=Authentication.CLIENT_CREDENTIALS,
        sealed_secret="aesgcm1:unused",
        token_url=token_url,
        client_id="archive-a",
        oauth_scopes=("dicomweb.read", "dicomweb.retrieve"),
        ca_bundle=None,
        client_certificate=None,
        client_key=None,
        timeout=5.0,
        organisation=None,
        organisation_key=None,
        created_at=NOW,
        created_by="test",
    )
    return PeerAccess(peer, "s3cret")


async def test_token_fetched_with_basic_auth(endpoint: TokenEndpoint) -> None:
    headers = await AccessTokens().headers(oauth_access(endpoint.url))

    assert headers == {"Authorization": "Bearer access-1"}
    assert endpoint.requests[0]["scheme"] == "Basic"
    assert endpoint.requests[0]["credentials"] == "archive-a:s3cret"
    assert endpoint.requests[0]["form"]["grant_type"] == ["client_credentials"]
    assert endpoint.requests[0]["form"]["scope"] == ["dicomweb.read dicomweb.retrieve"]


async def test_token_cached(endpoint: TokenEndpoint) -> None:
    tokens = AccessTokens()
    access = oauth_access(endpoint.url)

    first = await tokens.access_token(access)
    second = await tokens.access_token(access)

    assert first == second == "access-1"
    assert len(endpoint.requests) == 1


async def test_token_refreshed_before_expiry(
    endpoint: TokenEndpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    endpoint.lifetime = 300
    tokens = AccessTokens()
    access = oauth_access(endpoint.url)
    clock = [1000.0]
    monkeypatch.setattr(credentials.time, "monotonic", lambda: clock[0])

    first = await tokens.access_token(access)
    clock[0] += 239.0
    still = await tokens.access_token(access)
    clock[0] += 2.0
    renewed = await tokens.access_token(access)

    assert (first, still, renewed) == ("access-1", "access-1", "access-2")


async def test_token_refused_in_plain_words(endpoint: TokenEndpoint) -> None:
    endpoint.status = 401

    with pytest.raises(PeerError, match="refused the client credentials.*invalid_client") as raised:
        await AccessTokens().access_token(oauth_access(endpoint.url))

    assert "s3cret" not in str(raised.value)


async def test_token_endpoint_slow_body(endpoint: TokenEndpoint) -> None:
    # Each byte arrives well within the read timeout; the whole answer takes about 20 s.
    endpoint.seconds_per_byte = 0.25
    access = oauth_access(endpoint.url)
    hurried = PeerAccess(dataclasses.replace(access.peer, timeout=1.0), access.secret)

    with pytest.raises(PeerTimeout, match="token endpoint did not respond within 1 s"):
        await AccessTokens().access_token(hurried)


async def test_token_endpoint_oversized_body(endpoint: TokenEndpoint) -> None:
    endpoint.token_size = 100 * 1024

    with pytest.raises(PeerError, match="token endpoint responded with more than 64 KiB"):
        await AccessTokens().access_token(oauth_access(endpoint.url))


async def test_token_endpoint_down() -> None:
    with pytest.raises(PeerError, match="token endpoint refused the connection"):
        await AccessTokens().access_token(oauth_access("http://127.0.0.1:9/token"))


async def test_bearer_header_without_endpoint() -> None:
    access = oauth_access("http://127.0.0.1:9/token")
    bearer = PeerAccess(
        Peer(**{**access.peer.__dict__, "authentication": Authentication.BEARER}), "dwt_token"
    )

    assert await AccessTokens().headers(bearer) == {"Authorization": "Bearer dwt_token"}
