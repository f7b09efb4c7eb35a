"""API tokens and organisations on an in-memory index: issue, look up, revoke, delete."""

from __future__ import annotations

import datetime

import pytest

from dicomweb_server.auth.identity import Scope, parse_scopes
from dicomweb_server.auth.organisations import add_organisation, delete_organisation, get_organisation
from dicomweb_server.auth.tokens import (
    TOKEN_PREFIX,
    hash_token,
    issue_token,
    list_tokens,
    requester_for_token,
    revoke_token,
)
from dicomweb_server.errors import Conflict, InvalidRequest, NotFound
from tests.unit.auth.database import NOW, memory_index

LATER = NOW + datetime.timedelta(days=30)
READ = frozenset({Scope.READ})


def test_parse_scopes_accepts_commas_and_spaces() -> None:
    assert parse_scopes("read,store admin") == {Scope.READ, Scope.STORE, Scope.ADMIN}


def test_parse_scopes_rejects_unknown_name() -> None:
    with pytest.raises(ValueError, match="unknown scope 'write'"):
        parse_scopes("read,write")


def test_parse_scopes_rejects_empty() -> None:
    with pytest.raises(ValueError, match="no scope given"):
        parse_scopes(" , ")


async def test_token_lookup_returns_requester() -> None:
    async with memory_index() as connection:
        owner = await add_organisation(connection, "Mercy", affiliated=False, by="test", now=NOW)
        issued = await issue_token(connection, owner, READ, expires_at=LATER, by="test", now=NOW)
        requester = await requester_for_token(connection, issued.token, NOW)

    assert issued.token.startswith(f"{TOKEN_PREFIX}{issued.info.token_id}_")
    assert requester is not None
    assert requester.organisation == "Mercy"
    assert requester.organisation_key == owner.key
    assert requester.affiliated is False
    assert requester.scopes == {"read"}
    assert requester.subject == f"token {issued.info.token_id}"


async def test_token_stored_only_as_hash() -> None:
    async with memory_index() as connection:
        owner = await add_organisation(connection, "Mercy", affiliated=False, by="test", now=NOW)
        issued = await issue_token(connection, owner, READ, expires_at=LATER, by="test", now=NOW)
        rows = (await connection.exec_driver_sql("SELECT token_hash, token_id, scopes FROM api_token")).all()

    assert rows == [(hash_token(issued.token), issued.info.token_id, "read")]
    assert all(issued.token not in str(value) for value in rows[0])


async def test_token_unknown_is_nobody() -> None:
    async with memory_index() as connection:
        assert await requester_for_token(connection, f"{TOKEN_PREFIX}000000000000_guess", NOW) is None


async def test_token_expired_is_nobody() -> None:
    async with memory_index() as connection:
        owner = await add_organisation(connection, "Mercy", affiliated=False, by="test", now=NOW)
        issued = await issue_token(connection, owner, READ, expires_at=LATER, by="test", now=NOW)

        assert await requester_for_token(connection, issued.token, LATER - datetime.timedelta(microseconds=1))
        assert await requester_for_token(connection, issued.token, LATER) is None


async def test_token_revoked_is_nobody() -> None:
    async with memory_index() as connection:
        owner = await add_organisation(connection, "Mercy", affiliated=False, by="test", now=NOW)
        issued = await issue_token(connection, owner, READ, expires_at=LATER, by="test", now=NOW)
        revoked = await revoke_token(connection, issued.info.token_id, by="test", now=NOW)

        assert revoked.state(NOW) == "revoked"
        assert await requester_for_token(connection, issued.token, NOW) is None


async def test_token_of_deleted_organisation_is_nobody() -> None:
    async with memory_index() as connection:
        owner = await add_organisation(connection, "Mercy", affiliated=False, by="test", now=NOW)
        issued = await issue_token(connection, owner, READ, expires_at=LATER, by="test", now=NOW)
        await delete_organisation(connection, "Mercy", by="test", now=NOW)

        assert await requester_for_token(connection, issued.token, NOW) is None
        listed = await list_tokens(connection)
        assert [item.state(NOW) for item in listed] == ["revoked"]


async def test_deleted_organisation_name_reusable() -> None:
    async with memory_index() as connection:
        first = await add_organisation(connection, "Mercy", affiliated=False, by="test", now=NOW)
        await delete_organisation(connection, "Mercy", by="test", now=NOW)
        second = await add_organisation(connection, "Mercy", affiliated=True, by="test", now=NOW)

        assert second.key != first.key
        assert (await get_organisation(connection, "Mercy")).affiliated is True


async def test_organisation_duplicate_name_conflicts() -> None:
    async with memory_index() as connection:
        await add_organisation(connection, "Mercy", affiliated=False, by="test", now=NOW)
        with pytest.raises(Conflict, match="already exists"):
            await add_organisation(connection, " Mercy ", affiliated=False, by="test", now=NOW)


async def test_organisation_unknown_not_found() -> None:
    async with memory_index() as connection:
        with pytest.raises(NotFound, match="no organisation named 'Nowhere'"):
            await get_organisation(connection, "Nowhere")


async def test_external_admin_token_rejected() -> None:
    async with memory_index() as connection:
        owner = await add_organisation(connection, "Mercy", affiliated=False, by="test", now=NOW)
        with pytest.raises(InvalidRequest, match="external organisations cannot hold the admin scope"):
            await issue_token(
                connection, owner, frozenset({Scope.ADMIN}), expires_at=LATER, by="test", now=NOW
            )


async def test_token_expiry_in_past_rejected() -> None:
    async with memory_index() as connection:
        owner = await add_organisation(connection, "Mercy", affiliated=True, by="test", now=NOW)
        with pytest.raises(InvalidRequest, match="not in the future"):
            await issue_token(connection, owner, READ, expires_at=NOW, by="test", now=NOW)


async def test_revoke_unknown_token_not_found() -> None:
    async with memory_index() as connection:
        with pytest.raises(NotFound, match="no token with id 'abc'"):
            await revoke_token(connection, "abc", by="test", now=NOW)
