"""The organisations that may call the archive: affiliated with it, or external facilities.

Deleting an organisation keeps its row, marked deleted, so records that name it stay
readable. Its tokens are revoked in the same transaction, and its name may be used again.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from dicomweb_server.audit import EventType, RecordObject, TypeCode, record_change
from dicomweb_server.auth.tables import api_token, organisation
from dicomweb_server.errors import Conflict, InvalidRequest, NotFound

MAX_NAME_LENGTH = 200


@dataclass(frozen=True)
class Organisation:
    key: int
    name: str
    affiliated: bool
    created_at: datetime.datetime
    created_by: str
    deleted_at: datetime.datetime | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "affiliated": self.affiliated,
            "created_at": self.created_at.isoformat(),
            "created_by": self.created_by,
            "deleted_at": self.deleted_at.isoformat() if self.deleted_at else None,
        }


def check_name(name: str) -> str:
    """Return the organisation name without surrounding spaces, or raise InvalidRequest."""
    cleaned = name.strip()
    if not cleaned:
        raise InvalidRequest(
            "invalid organisation name: it is empty; give a name such as 'St Mary Radiology'"
        )
    if len(cleaned) > MAX_NAME_LENGTH:
        raise InvalidRequest(
            f"invalid organisation name: {len(cleaned)} characters, the maximum is {MAX_NAME_LENGTH}"
        )
    if any(not character.isprintable() for character in cleaned):
        raise InvalidRequest(f"invalid organisation name {cleaned!r}: it contains control characters")
    return cleaned


def _organisation(row: Any) -> Organisation:
    return Organisation(
        key=row.organisation_key,
        name=row.name,
        affiliated=bool(row.affiliated),
        created_at=row.created_at,
        created_by=row.created_by,
        deleted_at=row.deleted_at,
    )


async def add_organisation(
    connection: AsyncConnection, name: str, *, affiliated: bool, by: str, now: datetime.datetime
) -> Organisation:
    """Register an organisation.

    Raises
    ------
    Conflict
        When an organisation of that name exists and is not deleted.
    """
    name = check_name(name)
    if await find_organisation(connection, name) is not None:
        raise Conflict(f"an organisation named {name!r} already exists; choose another name")
    try:
        await connection.execute(
            insert(organisation).values(name=name, affiliated=affiliated, created_at=now, created_by=by)
        )
    except IntegrityError:
        # Another transaction added the same name after the check above; raising rolls back.
        raise Conflict(f"an organisation named {name!r} already exists; choose another name") from None
    added = await get_organisation(connection, name)
    await _record_change(connection, added, "organisation.add")
    return added


async def find_organisation(connection: AsyncConnection, name: str) -> Organisation | None:
    row = (
        await connection.execute(
            select(organisation).where(
                organisation.c.name == name.strip(), organisation.c.deleted_at.is_(None)
            )
        )
    ).first()
    return _organisation(row) if row else None


async def get_organisation(connection: AsyncConnection, name: str) -> Organisation:
    """Return the organisation named ``name``, or raise NotFound (deleted ones are not found)."""
    found = await find_organisation(connection, name)
    if found is None:
        raise NotFound(
            f"no organisation named {name.strip()!r}; list them with `dicomweb-server org list` "
            "or GET /admin/api/organisations"
        )
    return found


async def list_organisations(
    connection: AsyncConnection, *, include_deleted: bool = False
) -> list[Organisation]:
    statement = select(organisation).order_by(organisation.c.name, organisation.c.organisation_key)
    if not include_deleted:
        statement = statement.where(organisation.c.deleted_at.is_(None))
    return [_organisation(row) for row in await connection.execute(statement)]


async def delete_organisation(
    connection: AsyncConnection, name: str, *, by: str, now: datetime.datetime
) -> Organisation:
    """Mark an organisation deleted and revoke its tokens, in the caller's transaction."""
    found = await get_organisation(connection, name)
    await connection.execute(
        update(organisation)
        .where(organisation.c.organisation_key == found.key)
        .values(deleted_at=now, deleted_by=by)
    )
    await connection.execute(
        update(api_token)
        .where(api_token.c.organisation_key == found.key, api_token.c.revoked_at.is_(None))
        .values(revoked_at=now, revoked_by=by)
    )
    deleted = Organisation(found.key, found.name, found.affiliated, found.created_at, found.created_by, now)
    await _record_change(connection, deleted, "organisation.delete")
    return deleted


async def _record_change(connection: AsyncConnection, changed: Organisation, action: str) -> None:
    """Record a change of the organisations, a security configuration change, in its transaction."""
    await record_change(
        connection,
        EventType.SECURITY_ALERT,
        action,
        type_code=TypeCode.SECURITY_CONFIGURATION,
        objects=[RecordObject("organisation", changed.name, changed.name)],
        detail={"affiliated": changed.affiliated},
    )
