"""TLS to a peer on loopback: its CA bundle verifies the peer, its client certificate is sent.

A test CA issues the peer's server certificate (for 127.0.0.1) and a client certificate. The
peer requires a client certificate of that CA, so each case exercises both HTTP clients:
dicomweb-client (searches) and httpx (retrievals).
"""

from __future__ import annotations

import datetime
import http.server
import ipaddress
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from dicomweb_server.dicom.attributes import QueryLevel
from dicomweb_server.federation.client import PeerSearch, search_peer
from dicomweb_server.federation.credentials import PeerAccess
from dicomweb_server.federation.errors import PeerError
from dicomweb_server.federation.peers import Authentication, Peer
from dicomweb_server.federation.retrieval import open_stream

NOW = datetime.datetime.now(datetime.UTC)
STUDIES = PeerSearch(QueryLevel.STUDY)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _issue(
    subject: str, key: ec.EllipticCurvePrivateKey, issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None
) -> x509.Certificate:
    issuer_name, issuer_key = issuer or (_name(subject), key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - datetime.timedelta(hours=1))
        .not_valid_after(NOW + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
    )
    if subject == "peer":
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
        )
    return builder.sign(issuer_key, hashes.SHA256())


def _write(folder: Path, name: str, certificate: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
    (folder / f"{name}.pem").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    (folder / f"{name}.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )


@dataclass
class TlsPeer:
    url: str
    folder: Path


@pytest.fixture(scope="module")
def tls_peer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsPeer]:
    folder = tmp_path_factory.mktemp("tls")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _issue("test CA", ca_key, None)
    _write(folder, "ca", ca, ca_key)
    for name in ("peer", "client"):
        key = ec.generate_private_key(ec.SECP256R1())
        _write(folder, name, _issue(name, key, (ca.subject, ca_key)), key)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
            self.send_response(200)
            self.send_header("Content-Type", "application/dicom+json")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"[]")

        def log_message(self, *arguments: object) -> None:
            pass

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(folder / "ca.pem"))
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_cert_chain(folder / "peer.pem", folder / "peer.key")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield TlsPeer(f"https://127.0.0.1:{server.server_address[1]}/dicom-web", folder)
    server.shutdown()
    server.server_close()


def access_to(peer: TlsPeer, *, ca_bundle: bool, client_certificate: bool) -> PeerAccess:
    folder = peer.folder
    record = Peer(
        key=1,
        name="secure",
        url=peer.url,
        authentication=Authentication.BEARER,
        sealed_secret="aesgcm1:unused",
        token_url=None,
        client_id=None,
        oauth_scopes=(),
        ca_bundle=str(folder / "ca.pem") if ca_bundle else None,
        client_certificate=str(folder / "client.pem") if client_certificate else None,
        client_key=str(folder / "client.key") if client_certificate else None,
        timeout=5.0,
        organisation=None,
        organisation_key=None,
        created_at=NOW,
        created_by="test",
    )
    return PeerAccess(record, "token")


async def test_tls_search_verified(tls_peer: TlsPeer) -> None:
    assert await search_peer(access_to(tls_peer, ca_bundle=True, client_certificate=True), STUDIES) == []


async def test_tls_retrieval_verified(tls_peer: TlsPeer) -> None:
    stream = await open_stream(
        access_to(tls_peer, ca_bundle=True, client_certificate=True), "studies/1.2", None
    )
    try:
        assert stream.status_code == 200
    finally:
        await stream.aclose()


async def test_tls_unknown_ca_rejected(tls_peer: TlsPeer) -> None:
    with pytest.raises(PeerError, match="failed the TLS handshake") as raised:
        await search_peer(access_to(tls_peer, ca_bundle=False, client_certificate=True), STUDIES)

    assert "?" not in raised.value.reason


async def test_tls_unknown_ca_rejected_on_retrieval(tls_peer: TlsPeer) -> None:
    with pytest.raises(PeerError, match="failed the TLS handshake"):
        await open_stream(access_to(tls_peer, ca_bundle=False, client_certificate=True), "studies/1.2", None)


async def test_tls_client_certificate_required(tls_peer: TlsPeer) -> None:
    with pytest.raises(PeerError):
        await search_peer(access_to(tls_peer, ca_bundle=True, client_certificate=False), STUDIES)
