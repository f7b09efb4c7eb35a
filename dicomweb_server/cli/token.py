"""``dicomweb-server token``: create, list and revoke API tokens.

``token create`` prints the token once, alone on the last line of its output, so a script can
take it with ``tail -n 1``. Only its hash is kept.
"""

from __future__ import annotations

import argparse
import datetime

from dicomweb_server.auth.identity import parse_scopes
from dicomweb_server.auth.organisations import get_organisation
from dicomweb_server.auth.tokens import issue_token, list_tokens, revoke_token
from dicomweb_server.cli.common import RECORD_SETTINGS
from dicomweb_server.cli.records import actor, add_command, print_table, run_on_index
from dicomweb_server.config import Settings
from dicomweb_server.consent import periods
from dicomweb_server.errors import InvalidRequest
from dicomweb_server.index.database import Index


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "token",
        help="create, list and revoke API tokens",
        description="API tokens are bearer tokens the archive issues to an organisation, with scopes: "
        "read (QIDO-RS and WADO), store (STOW-RS), admin (the admin API; affiliated organisations "
        "only) and emergency (open emergency access).",
    )
    commands = parser.add_subparsers(dest="token_command", metavar="COMMAND", required=True)

    create = add_command(
        commands,
        "create",
        run_create,
        help="issue a token and print it once",
        description="Issue a token. It is printed once, alone on the last line; keep it safe.",
        settings=(*RECORD_SETTINGS, "token_lifetime_days"),
    )
    create.add_argument("--org", required=True, metavar="NAME", help="the organisation the token belongs to")
    create.add_argument(
        "--scope",
        required=True,
        metavar="SCOPES",
        help="comma-separated scopes: read, store, admin, emergency",
    )
    create.add_argument(
        "--expires",
        metavar="DATE",
        help="expiry: a date (the token works through that day in the configured time zone) or a date "
        "and time with its UTC offset; default: the configured token lifetime",
    )

    listing = add_command(
        commands,
        "list",
        run_list,
        help="list tokens",
        description="List tokens (never the tokens themselves).",
    )
    listing.add_argument("--org", metavar="NAME", help="only the tokens of this organisation")

    revoke = add_command(
        commands,
        "revoke",
        run_revoke,
        help="revoke a token",
        description="Revoke a token: it stops working from the next request on.",
    )
    revoke.add_argument("token_id", metavar="ID", help="the token id shown by `token list`")


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def run_create(arguments: argparse.Namespace) -> int:
    async def work(settings: Settings, index: Index) -> int:
        now = _now()
        try:
            scopes = parse_scopes(arguments.scope)
            zone = periods.zone(settings.time_zone)
            expires_at = (
                periods.parse_instant(arguments.expires, zone, end_of_day=True)
                if arguments.expires
                else now + datetime.timedelta(days=settings.token_lifetime_days)
            )
        except ValueError as error:
            raise InvalidRequest(str(error)) from None
        async with index.write() as connection:
            owner = await get_organisation(connection, arguments.org)
            issued = await issue_token(connection, owner, scopes, expires_at=expires_at, by=actor(), now=now)
        info = issued.info
        scopes_text = ", ".join(sorted(info.scopes))
        print(f"Issued the token {info.token_id} to {info.organisation!r} with the scopes {scopes_text}.")
        print(f"It expires at {periods.format_local(info.expires_at, zone)}.")
        print("The token is shown only this once; keep it safe:")
        print(issued.token)
        return 0

    return run_on_index(arguments, work)


def run_list(arguments: argparse.Namespace) -> int:
    async def work(settings: Settings, index: Index) -> int:
        now = _now()
        async with index.read() as connection:
            found = await list_tokens(connection, arguments.org)
        rows = [
            [
                item.token_id,
                item.organisation,
                ",".join(sorted(item.scopes)),
                item.expires_at.isoformat(timespec="seconds"),
                item.state(now),
            ]
            for item in found
        ]
        print_table(["ID", "ORGANISATION", "SCOPES", "EXPIRES", "STATE"], rows)
        return 0

    return run_on_index(arguments, work)


def run_revoke(arguments: argparse.Namespace) -> int:
    async def work(settings: Settings, index: Index) -> int:
        async with index.write() as connection:
            revoked = await revoke_token(connection, arguments.token_id, by=actor(), now=_now())
        print(f"Revoked the token {revoked.token_id} of {revoked.organisation!r}.")
        return 0

    return run_on_index(arguments, work)
