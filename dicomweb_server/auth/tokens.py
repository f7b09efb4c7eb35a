"""API tokens the archive issues: random, shown once, stored only as a SHA-256 hash, revocable, expiring.

A token reads ``dwt_<token id>_<secret>``. The token id is public: listings show it and
``token revoke`` takes it. The secret is 256 random bits, so a plain SHA-256 of the whole token
is a safe verifier (no salt or slow hash is needed against guessing) and lets one indexed
look-up find the token.
"""

from __future__ import annotations

import datetime
import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from dicomweb_server.audit import EventType, RecordObject, TypeCode, record_change
from dicomweb_server.auth.identity import Requester, Scope, format_scopes
from dicomweb_server.auth.organisations import Organisation
from dicomweb_server.auth.tables import api_token, organisation
from dicomweb_server.errors import InvalidRequest, NotFound

TOKEN_PREFIX = "dwt_"  # noqa: S105 - the public prefix of every token
TOKEN_ID_BYTES = 6
SECRET_BYTES = 32


@dataclass(frozen=True)
class TokenInfo:
    """The record of an issued token; the token itself is never kept."""

    token_id: str
    organisation: str
    scopes: frozenset[str]
    created_at: datetime.datetime
    created_by: str
    expires_at: datetime.datetime
    revoked_at: datetime.datetime | None

    def state(self, now: datetime.datetime) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at <= now:
            return "expired"
        return "active"

    def to_json(self, now: datetime.datetime) -> dict[str, Any]:
        return {
            "id": self.token_id,
            "organisation": self.organisation,
            "scopes": sorted(self.scopes),
            "created_at": self.created_at.isoformat(),
            "created_by": self.created_by,
            "expires_at": self.expires_at.isoformat(),
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
            "state": self.state(now),
        }


@dataclass(frozen=True)
class IssuedToken:
    """A new token: ``token`` is shown once, to the administrator who requested it, and is not stored."""

    token: str
    info: TokenInfo


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def looks_like_api_token(token: str) -> bool:
    return token.startswith(TOKEN_PREFIX)


async def issue_token(
    connection: AsyncConnection,
    owner: Organisation,
    scopes: frozenset[Scope],
    *,
    expires_at: datetime.datetime,
    by: str,
    now: datetime.datetime,
) -> IssuedToken:
    """Create a token for ``owner`` and return it with its record.

    Raises
    ------
    InvalidRequest
        When the expiry is not in the future, no scope is given, or an external organisation
        is given the admin scope (admins manage organisations and authorizations, which only
        the archive's own organisation may do).
    """
    if not scopes:
        raise InvalidRequest(f"a token needs at least one scope; use one or more of {', '.join(Scope)}")
    if Scope.ADMIN in scopes and not owner.affiliated:
        raise InvalidRequest(
            f"the organisation {owner.name!r} is external, and external organisations cannot hold the "
            "admin scope; give it read, store or emergency"
        )
    if expires_at <= now:
        raise InvalidRequest(
            f"invalid token expiry {expires_at.isoformat()}: it is not in the future; give a later date"
        )

    token_id = secrets.token_hex(TOKEN_ID_BYTES)
    token = f"{TOKEN_PREFIX}{token_id}_{secrets.token_urlsafe(SECRET_BYTES)}"
    await connection.execute(
        insert(api_token).values(
            token_id=token_id,
            organisation_key=owner.key,
            token_hash=hash_token(token),
            scopes=format_scopes(scopes),
            created_at=now,
            created_by=by,
            expires_at=expires_at,
        )
    )
    info = TokenInfo(token_id, owner.name, frozenset(scopes), now, by, expires_at, None)
    await _record_change(connection, info, "token.issue")
    return IssuedToken(token, info)


def _token_info(row: Any) -> TokenInfo:
    return TokenInfo(
        token_id=row.token_id,
        organisation=row.name,
        scopes=frozenset(row.scopes.split()),
        created_at=row.created_at,
        created_by=row.created_by,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
    )


_TOKEN_COLUMNS = (
    api_token.c.token_id,
    api_token.c.scopes,
    api_token.c.created_at,
    api_token.c.created_by,
    api_token.c.expires_at,
    api_token.c.revoked_at,
    organisation.c.name,
)
_TOKEN_FROM = api_token.join(organisation, api_token.c.organisation_key == organisation.c.organisation_key)


async def list_tokens(connection: AsyncConnection, organisation_name: str | None = None) -> list[TokenInfo]:
    statement = select(*_TOKEN_COLUMNS).select_from(_TOKEN_FROM).order_by(api_token.c.created_at)
    if organisation_name is not None:
        statement = statement.where(
            organisation.c.name == organisation_name.strip(), organisation.c.deleted_at.is_(None)
        )
    return [_token_info(row) for row in await connection.execute(statement)]


async def revoke_token(
    connection: AsyncConnection, token_id: str, *, by: str, now: datetime.datetime
) -> TokenInfo:
    """Revoke a token by its id; revoking a revoked token changes nothing and succeeds.

    Raises
    ------
    NotFound
        When no token has that id.
    """
    await connection.execute(
        update(api_token)
        .where(api_token.c.token_id == token_id.strip(), api_token.c.revoked_at.is_(None))
        .values(revoked_at=now, revoked_by=by)
    )
    row = (
        await connection.execute(
            select(*_TOKEN_COLUMNS).select_from(_TOKEN_FROM).where(api_token.c.token_id == token_id.strip())
        )
    ).first()
    if row is None:
        raise NotFound(f"no token with id {token_id.strip()!r}; list them with `dicomweb-server token list`")
    revoked = _token_info(row)
    await _record_change(connection, revoked, "token.revoke")
    return revoked


async def _record_change(connection: AsyncConnection, token: TokenInfo, action: str) -> None:
    """Record the issue or revocation of a token in the audit trail, in its transaction; never the token."""
    await record_change(
        connection,
        EventType.SECURITY_ALERT,
        action,
        type_code=TypeCode.USER_SECURITY_ATTRIBUTES_CHANGED,
        objects=[
            RecordObject("token", token.token_id),
            RecordObject("organisation", token.organisation, token.organisation),
        ],
        detail={"scopes": sorted(token.scopes), "expires_at": token.expires_at.isoformat()},
    )


async def requester_for_token(
    connection: AsyncConnection, token: str, now: datetime.datetime
) -> Requester | None:
    """Return the requester an API token stands for, or None when it is unknown, expired or revoked.

    A token of a deleted organisation stands for nobody, even if it was somehow not revoked.
    """
    row = (
        await connection.execute(
            select(
                api_token.c.token_id,
                api_token.c.scopes,
                organisation.c.organisation_key,
                organisation.c.name,
                organisation.c.affiliated,
            )
            .select_from(_TOKEN_FROM)
            .where(
                api_token.c.token_hash == hash_token(token),
                api_token.c.revoked_at.is_(None),
                api_token.c.expires_at > now,
                organisation.c.deleted_at.is_(None),
            )
        )
    ).first()
    if row is None:
        return None
    scopes = frozenset(row.scopes.split())
    if not row.affiliated:
        scopes -= {Scope.ADMIN}
    return Requester(
        subject=f"token {row.token_id}",
        organisation=row.name,
        affiliated=bool(row.affiliated),
        scopes=scopes,
        organisation_key=row.organisation_key,
    )
