"""The peer registry: other DICOMweb archives, how to reach them and how to authenticate to them.

A peer has a name and the DICOMweb root URL of its archive. It has one way to authenticate: a
bearer token, or OAuth 2.0 client credentials (token URL, client id, client secret and scopes).
It may have TLS files (a CA bundle, a client certificate and its key), it has a timeout for each
request, and it may name the external organisation it acts as when it queries this archive.
The token or client secret is stored sealed (``federation.sealing``), and no listing shows it,
because ``Peer.to_json`` has no secret field.
"""

from __future__ import annotations

import datetime
import enum
import ipaddress
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import delete, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from dicomweb_server.audit import EventType, RecordObject, TypeCode, record_change
from dicomweb_server.auth.organisations import get_organisation
from dicomweb_server.auth.tables import organisation
from dicomweb_server.errors import Conflict, InvalidRequest, NotFound
from dicomweb_server.federation.sealing import PeerKey
from dicomweb_server.federation.tables import peer

AWS_METADATA_IPV6 = ipaddress.ip_network("fd00:ec2::254/128")
"""The IPv6 address of the instance metadata service of Amazon EC2, which is not link-local."""

LOCAL_SOURCE = "local"
"""The source name of this archive's own results in a federated search; no peer may take it."""

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
DEFAULT_TIMEOUT = 10.0
MAX_TIMEOUT = 300.0
MAX_SECRET_LENGTH = 8192


class Authentication(enum.StrEnum):
    """The kinds of credentials this archive sends to a peer."""

    BEARER = "bearer"
    CLIENT_CREDENTIALS = "client_credentials"


@dataclass(frozen=True)
class NewPeer:
    """A peer to register, as given on the command line or to the admin API."""

    name: str
    url: str
    token: str | None = field(default=None, repr=False)
    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)
    token_url: str | None = None
    oauth_scopes: tuple[str, ...] = ()
    as_organisation: str | None = None
    ca_bundle: str | None = None
    client_certificate: str | None = None
    client_key: str | None = None
    timeout: float = DEFAULT_TIMEOUT


@dataclass(frozen=True)
class Peer:
    """A registered peer. ``sealed_secret`` is the encrypted token or client secret."""

    key: int
    name: str
    url: str
    authentication: Authentication
    sealed_secret: str = field(repr=False)
    token_url: str | None
    client_id: str | None
    oauth_scopes: tuple[str, ...]
    ca_bundle: str | None
    client_certificate: str | None
    client_key: str | None
    timeout: float
    organisation: str | None
    organisation_key: int | None
    created_at: datetime.datetime
    created_by: str

    def to_json(self) -> dict[str, Any]:
        """Describe the peer without its secret."""
        return {
            "name": self.name,
            "url": self.url,
            "authentication": str(self.authentication),
            "token_url": self.token_url,
            "client_id": self.client_id,
            "scopes": list(self.oauth_scopes),
            "as_organisation": self.organisation,
            "ca_bundle": self.ca_bundle,
            "client_certificate": self.client_certificate,
            "client_key": self.client_key,
            "timeout": self.timeout,
            "created_at": self.created_at.isoformat(),
            "created_by": self.created_by,
        }


def check_name(name: str) -> str:
    """Return a valid peer name, or raise InvalidRequest.

    The name appears in URL paths (``/federation/dicom-web/peers/NAME/...``) and in a LO
    attribute of search results, hence the short, URL-safe alphabet.
    """
    cleaned = name.strip()
    if not NAME_PATTERN.fullmatch(cleaned):
        raise InvalidRequest(
            f"invalid peer name {cleaned!r}: use 1 to 64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit, such as 'mercy-pacs'"
        )
    if cleaned.lower() == LOCAL_SOURCE:
        raise InvalidRequest(
            f"invalid peer name {cleaned!r}: it names this archive's own results in federated searches; "
            "choose another name"
        )
    return cleaned


def check_url(url: str, what: str) -> str:
    """Return an http or https URL without a trailing slash, or raise InvalidRequest naming ``what``."""
    cleaned = url.strip().rstrip("/")
    parts = urlsplit(cleaned)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidRequest(
            f"invalid {what} {cleaned!r}: give an http or https URL such as https://pacs.example.org/dicom-web"
        )
    if parts.username is not None or parts.password is not None:
        raise InvalidRequest(
            f"invalid {what}: it contains a user name or password, which would be stored unencrypted; "
            "give the credentials with --token or --client-id and --client-secret instead"
        )
    if parts.query or parts.fragment:
        raise InvalidRequest(f"invalid {what} {cleaned!r}: remove the query string or fragment")
    if _is_link_local(parts.hostname):
        raise InvalidRequest(
            f"invalid {what} {cleaned!r}: {parts.hostname} is a link-local address, where cloud hosts "
            "serve their instance metadata and credentials; give the peer's routable address or host name"
        )
    return cleaned


def _is_link_local(hostname: str) -> bool:
    """Return whether ``hostname`` is a literal link-local IP address (169.254.0.0/16, fe80::/10).

    Host names are not resolved here, so one that resolves to such an address is not caught.
    """
    try:
        address = ipaddress.ip_address(hostname)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_link_local or address in AWS_METADATA_IPV6


def check_timeout(timeout: float) -> float:
    if not (math.isfinite(timeout) and 0 < timeout <= MAX_TIMEOUT):
        raise InvalidRequest(
            f"invalid timeout {timeout}: give a number of seconds above 0 and at most {MAX_TIMEOUT:g}"
        )
    return float(timeout)


def _check_file(path: str | None, what: str) -> str | None:
    if path is None or not path.strip():
        return None
    resolved = Path(path.strip()).expanduser().resolve()
    if not resolved.is_file() or not os.access(resolved, os.R_OK):
        raise InvalidRequest(
            f"invalid {what} {str(resolved)!r}: no readable file there; give the path of a PEM file"
        )
    return str(resolved)


def _check_secret(value: str, what: str) -> str:
    cleaned = value.strip()
    if not cleaned:
        raise InvalidRequest(f"invalid {what}: it is empty")
    if len(cleaned) > MAX_SECRET_LENGTH or any(not character.isprintable() for character in cleaned):
        raise InvalidRequest(
            f"invalid {what}: it must be printable text of at most {MAX_SECRET_LENGTH} characters"
        )
    return cleaned


def authentication_of(new: NewPeer) -> tuple[Authentication, str]:
    """Return how to authenticate to the new peer and the secret to seal.

    Raises
    ------
    InvalidRequest
        Unless exactly one of a bearer token or the three client-credential values is given.
    """
    oauth = {"client id": new.client_id, "client secret": new.client_secret, "token URL": new.token_url}
    given = [name for name, value in oauth.items() if value]
    if new.token and given:
        raise InvalidRequest(
            "give either a bearer token or OAuth 2.0 client credentials (client id, client secret and "
            "token URL), not both"
        )
    if new.token:
        return Authentication.BEARER, _check_secret(new.token, "bearer token")
    if len(given) == len(oauth):
        assert new.client_secret is not None
        return Authentication.CLIENT_CREDENTIALS, _check_secret(new.client_secret, "client secret")
    if given:
        missing = ", ".join(name for name, value in oauth.items() if not value)
        raise InvalidRequest(f"incomplete OAuth 2.0 client credentials: {missing} missing")
    raise InvalidRequest(
        "no credentials for the peer: give a bearer token, or a client id, client secret and token URL"
    )


async def add_peer(
    connection: AsyncConnection, new: NewPeer, key: PeerKey, *, by: str, now: datetime.datetime
) -> Peer:
    """Register a peer, its secret sealed with ``key``.

    Raises
    ------
    InvalidRequest
        For an invalid name, URL, timeout, file or credential, or an affiliated organisation
        given as the organisation the peer acts as.
    NotFound
        When the organisation the peer acts as does not exist.
    Conflict
        When a peer of that name exists.
    """
    name = check_name(new.name)
    url = check_url(new.url, "peer URL")
    authentication, secret = authentication_of(new)
    token_url = check_url(new.token_url, "token URL") if new.token_url else None
    if new.client_key and not new.client_certificate:
        raise InvalidRequest("a client key needs its client certificate; give --client-cert too")
    organisation_key = None
    if new.as_organisation:
        acting_as = await get_organisation(connection, new.as_organisation)
        if acting_as.affiliated:
            raise InvalidRequest(
                f"the organisation {acting_as.name!r} is affiliated; a peer acts as an external "
                "organisation, so register one with `dicomweb-server org add NAME --external`"
            )
        organisation_key = acting_as.key

    if await find_peer(connection, name) is not None:
        raise Conflict(f"a peer named {name!r} already exists; remove it first or choose another name")
    values = {
        "name": name,
        "url": url,
        "authentication": str(authentication),
        "sealed_secret": key.seal(secret, name),
        "token_url": token_url,
        "client_id": new.client_id.strip() if new.client_id else None,
        "oauth_scopes": " ".join(new.oauth_scopes) or None,
        "ca_bundle": _check_file(new.ca_bundle, "CA bundle"),
        "client_certificate": _check_file(new.client_certificate, "client certificate"),
        "client_key": _check_file(new.client_key, "client key"),
        "timeout": check_timeout(new.timeout),
        "organisation_key": organisation_key,
        "created_at": now,
        "created_by": by,
    }
    try:
        await connection.execute(insert(peer).values(**values))
    except IntegrityError:
        # Another transaction added the same name after the check above; raising rolls back.
        raise Conflict(
            f"a peer named {name!r} already exists; remove it first or choose another name"
        ) from None
    added = await get_peer(connection, name)
    await _record_change(connection, added, "peer.add")
    return added


_PEER_FROM = peer.outerjoin(organisation, peer.c.organisation_key == organisation.c.organisation_key)


def _peer(row: Any) -> Peer:
    return Peer(
        key=row.peer_key,
        name=row.name,
        url=row.url,
        authentication=Authentication(row.authentication),
        sealed_secret=row.sealed_secret,
        token_url=row.token_url,
        client_id=row.client_id,
        oauth_scopes=tuple((row.oauth_scopes or "").split()),
        ca_bundle=row.ca_bundle,
        client_certificate=row.client_certificate,
        client_key=row.client_key,
        timeout=row.timeout,
        organisation=row.organisation_name,
        organisation_key=row.organisation_key,
        created_at=row.created_at,
        created_by=row.created_by,
    )


def _select_peers() -> Any:
    return select(peer, organisation.c.name.label("organisation_name")).select_from(_PEER_FROM)


async def list_peers(connection: AsyncConnection) -> list[Peer]:
    rows = await connection.execute(_select_peers().order_by(peer.c.name))
    return [_peer(row) for row in rows]


async def find_peer(connection: AsyncConnection, name: str) -> Peer | None:
    row = (await connection.execute(_select_peers().where(peer.c.name == name.strip()))).first()
    return _peer(row) if row else None


async def get_peer(connection: AsyncConnection, name: str) -> Peer:
    """Return the peer named ``name``, or raise NotFound."""
    found = await find_peer(connection, name)
    if found is None:
        raise NotFound(
            f"no peer named {name.strip()!r}; list them with `dicomweb-server peer list` "
            "or GET /admin/api/peers"
        )
    return found


async def remove_peer(connection: AsyncConnection, name: str) -> Peer:
    """Delete a peer and its sealed secret; records that name it keep the name."""
    found = await get_peer(connection, name)
    await connection.execute(delete(peer).where(peer.c.peer_key == found.key))
    await _record_change(connection, found, "peer.remove")
    return found


async def _record_change(connection: AsyncConnection, changed: Peer, action: str) -> None:
    """Record a change of the peers, a security configuration change, as the last step of its transaction."""
    await record_change(
        connection,
        EventType.SECURITY_ALERT,
        action,
        type_code=TypeCode.SECURITY_CONFIGURATION,
        peer=changed.name,
        objects=[RecordObject("peer", changed.name, changed.name)],
        detail={
            key: value for key, value in changed.to_json().items() if key not in ("created_at", "created_by")
        },
    )
