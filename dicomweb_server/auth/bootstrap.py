"""The first admin token: issued on the first start and written to a file only its owner can read.

A new archive has no token yet, and every request needs one, so ``serve`` issues an admin token
for the archive's own organisation when the token file in the data folder is missing. The file
contains the token alone on one line. Removing the file and restarting issues another token; the
old one stays valid until it is revoked (``dicomweb-server token revoke ID``) or expires.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncConnection

from dicomweb_server.auth.identity import Scope
from dicomweb_server.auth.organisations import add_organisation, find_organisation
from dicomweb_server.auth.tokens import issue_token, requester_for_token, revoke_token
from dicomweb_server.config import Settings
from dicomweb_server.errors import ArchiveError
from dicomweb_server.index.database import Index

logger = logging.getLogger(__name__)

ADMIN_TOKEN_FILE = "admin-token"  # noqa: S105 - a file name, not a secret
ARCHIVE_ORGANISATION = "archive"
"""The affiliated organisation the first admin token belongs to."""

BOOTSTRAP_SCOPES = frozenset({Scope.READ, Scope.STORE, Scope.ADMIN})
ISSUED_BY = "dicomweb-server serve (first start)"


class BootstrapError(Exception):
    """The first admin token could not be issued; the message gives the reason and the fix."""


@dataclass(frozen=True)
class AdminTokenFile:
    path: Path
    issued: bool
    """True when this start issued the token in the file."""


def admin_token_path(settings: Settings) -> Path:
    return settings.data_dir / ADMIN_TOKEN_FILE


async def ensure_admin_token(settings: Settings, index: Index) -> AdminTokenFile | None:
    """Issue an admin token and write it to the token file, unless the file exists.

    Returns None when the file is missing and ``bootstrap_admin_token`` is off.

    Raises
    ------
    BootstrapError
        When the organisation "archive" exists but is external, or the file cannot be written.
    """
    path = admin_token_path(settings)
    if path.exists():
        return AdminTokenFile(path, issued=False)
    if not settings.bootstrap_admin_token:
        return None

    now = datetime.datetime.now(datetime.UTC)
    temporary = path.with_name(f".{ADMIN_TOKEN_FILE}.{os.getpid()}")
    try:
        async with index.write() as connection:
            owner = await find_organisation(connection, ARCHIVE_ORGANISATION)
            if owner is None:
                owner = await add_organisation(
                    connection, ARCHIVE_ORGANISATION, affiliated=True, by=ISSUED_BY, now=now
                )
            if not owner.affiliated:
                raise BootstrapError(
                    f"the organisation {ARCHIVE_ORGANISATION!r} is external, so it cannot hold the first "
                    "admin token; create a token with `dicomweb-server token create --org NAME --scope "
                    "read,store,admin` for an affiliated organisation and write it to "
                    f"{path}, or start with --bootstrap-admin-token false"
                )
            issued = await issue_token(
                connection,
                owner,
                BOOTSTRAP_SCOPES,
                expires_at=now + datetime.timedelta(days=settings.token_lifetime_days),
                by=ISSUED_BY,
                now=now,
            )
            write_secret_file(temporary, issued.token)
        published = _publish(temporary, path)
    except (OSError, ArchiveError) as error:
        raise BootstrapError(f"cannot write the admin token file {path}: {error}") from error
    finally:
        temporary.unlink(missing_ok=True)

    if not published:
        # Another process sharing this data folder wrote its token first; this one is not needed.
        async with index.write() as connection:
            await revoke_token(connection, issued.info.token_id, by=ISSUED_BY, now=now)
        return AdminTokenFile(path, issued=False)
    logger.info("Identity: issued the first admin token %s", issued.info.token_id)
    return AdminTokenFile(path, issued=True)


async def admin_token_organisation(
    connection: AsyncConnection, settings: Settings, now: datetime.datetime
) -> str | None:
    """Return the organisation whose token the admin token file holds, or None.

    None also when the file is missing or unreadable, or its token no longer works.
    """
    try:
        token = admin_token_path(settings).read_text(encoding="utf-8").strip()
    except OSError:
        return None
    holder = await requester_for_token(connection, token, now) if token else None
    return holder.organisation if holder is not None else None


def write_secret_file(path: Path, secret: str) -> None:
    """Write ``secret`` to a new file that only its owner can read and write (mode 0600)."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        os.fchmod(file.fileno(), 0o600)
        file.write(secret + "\n")
        file.flush()
        os.fsync(file.fileno())


def _publish(temporary: Path, path: Path) -> bool:
    """Give the written file its final name unless a file has it already; return whether it did."""
    try:
        os.link(temporary, path)
    except FileExistsError:
        return False
    with contextlib.suppress(OSError):
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    return True
