"""The peer registry: checks on what is registered, and no secret in any listing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select

from dicomweb_server.auth.organisations import add_organisation
from dicomweb_server.config import load_settings
from dicomweb_server.errors import Conflict, InvalidRequest, NotFound
from dicomweb_server.federation import tables  # noqa: F401 - registers the peer table
from dicomweb_server.federation.credentials import PeerAccess
from dicomweb_server.federation.peers import (
    Authentication,
    NewPeer,
    add_peer,
    get_peer,
    list_peers,
    remove_peer,
)
from dicomweb_server.federation.sealing import PeerKey, load_peer_key
from dicomweb_server.federation.tables import peer
from tests.unit.auth.database import NOW, memory_index

TOKEN = "dwt_feedfacecafe_do-not-show-this"
SECRET = "client-secret-do-not-show"


@pytest.fixture
def key(tmp_path: Path) -> PeerKey:
    return load_peer_key(load_settings(environ={"DICOMWEB_DATA_DIR": str(tmp_path)}), create=True)


def bearer_peer(**changes: object) -> NewPeer:
    values: dict[str, object] = {"name": "mercy", "url": "https://pacs.mercy.test/dicom-web/", "token": TOKEN}
    values.update(changes)
    return NewPeer(**values)  # type: ignore[arg-type]


async def test_add_bearer_peer(key: PeerKey) -> None:
    async with memory_index() as connection:
        added = await add_peer(connection, bearer_peer(), key, by="test", now=NOW)
        stored = (await connection.execute(select(peer.c.sealed_secret))).scalar_one()

    assert added.url == "https://pacs.mercy.test/dicom-web"
    assert added.authentication is Authentication.BEARER
    assert TOKEN not in stored
    assert PeerAccess.open(added, key).secret == TOKEN


async def test_add_client_credentials_peer(key: PeerKey) -> None:
    new = NewPeer(
        name="mercy",
        url="https://pacs.mercy.test/dicom-web",
        client_id="archive-a",
        client_secret=SECRET,
        token_url="https://auth.mercy.test/token",
        oauth_scopes=("dicomweb.read",),
    )
    async with memory_index() as connection:
        added = await add_peer(connection, new, key, by="test", now=NOW)

    assert added.authentication is Authentication.CLIENT_CREDENTIALS
    assert added.oauth_scopes == ("dicomweb.read",)
    assert PeerAccess.open(added, key).secret == SECRET


async def test_peer_json_has_no_secret(key: PeerKey) -> None:
    async with memory_index() as connection:
        await add_peer(connection, bearer_peer(), key, by="test", now=NOW)
        listed = await list_peers(connection)

    text = json.dumps([item.to_json() for item in listed])
    assert TOKEN not in text
    assert "aesgcm1" not in text
    assert TOKEN not in repr(listed)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"name": "local"}, "this archive's own results"),
        ({"name": "bad name"}, "invalid peer name"),
        ({"name": "x" * 65}, "invalid peer name"),
        ({"url": "ftp://pacs.test/dicom-web"}, "invalid peer URL"),
        ({"url": "https://user:pass@pacs.test/dicom-web"}, "user name or password"),
        ({"url": "https://pacs.test/dicom-web?x=1"}, "query string"),
        ({"url": "http://169.254.169.254/latest"}, "link-local address"),
        ({"url": "http://[fe80::1]/dicom-web"}, "link-local address"),
        ({"url": "http://[::ffff:169.254.169.254]/"}, "link-local address"),
        ({"url": "http://[fd00:ec2::254]/"}, "link-local address"),
        (
            {"token": None, "client_id": "a", "client_secret": "b", "token_url": "http://169.254.169.254/t"},
            "link-local address",
        ),
        ({"token": None}, "no credentials"),
        ({"client_id": "a"}, "not both"),
        ({"token": None, "client_id": "a", "client_secret": "b"}, "token URL missing"),
        ({"token": " "}, "bearer token: it is empty"),
        ({"timeout": 0.0}, "invalid timeout"),
        ({"timeout": 301.0}, "invalid timeout"),
        ({"ca_bundle": "/nonexistent/ca.pem"}, "no readable file"),
        ({"client_key": "/etc/hostname"}, "needs its client certificate"),
    ],
)
async def test_add_peer_rejects(key: PeerKey, changes: dict[str, object], message: str) -> None:
    async with memory_index() as connection:
        with pytest.raises(InvalidRequest, match=message):
            await add_peer(connection, bearer_peer(**changes), key, by="test", now=NOW)


async def test_add_peer_twice_conflicts(key: PeerKey) -> None:
    async with memory_index() as connection:
        await add_peer(connection, bearer_peer(), key, by="test", now=NOW)
        with pytest.raises(Conflict, match="already exists"):
            await add_peer(connection, bearer_peer(), key, by="test", now=NOW)


async def test_peer_acts_as_external_organisation(key: PeerKey) -> None:
    async with memory_index() as connection:
        await add_organisation(connection, "Mercy Hospital", affiliated=False, by="test", now=NOW)
        await add_organisation(connection, "Our Radiology", affiliated=True, by="test", now=NOW)
        added = await add_peer(
            connection, bearer_peer(as_organisation="Mercy Hospital"), key, by="test", now=NOW
        )
        with pytest.raises(InvalidRequest, match="is affiliated"):
            await add_peer(
                connection, bearer_peer(name="ours", as_organisation="Our Radiology"), key, by="test", now=NOW
            )

    assert added.organisation == "Mercy Hospital"


async def test_peer_unknown_organisation(key: PeerKey) -> None:
    async with memory_index() as connection:
        with pytest.raises(NotFound, match="no organisation"):
            await add_peer(connection, bearer_peer(as_organisation="Nobody"), key, by="test", now=NOW)


async def test_remove_peer(key: PeerKey) -> None:
    async with memory_index() as connection:
        await add_peer(connection, bearer_peer(), key, by="test", now=NOW)
        removed = await remove_peer(connection, "mercy")
        with pytest.raises(NotFound, match="no peer named"):
            await get_peer(connection, "mercy")

    assert removed.name == "mercy"
