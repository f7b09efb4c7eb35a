"""``dicomweb-server org``: register, list and delete the organisations that may call the archive."""

from __future__ import annotations

import argparse
import datetime

from dicomweb_server.auth.bootstrap import admin_token_organisation, admin_token_path
from dicomweb_server.auth.organisations import add_organisation, delete_organisation, list_organisations
from dicomweb_server.cli.common import fail
from dicomweb_server.cli.records import actor, add_command, print_table, run_on_index
from dicomweb_server.config import Settings
from dicomweb_server.index.database import Index


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "org",
        help="register, list and delete organisations",
        description="Organisations are affiliated (part of the archive's own organisation: their users "
        "see every study their scopes allow) or external (they see only what a patient authorized).",
    )
    commands = parser.add_subparsers(dest="org_command", metavar="COMMAND", required=True)

    add = add_command(
        commands, "add", run_add, help="register an organisation", description="Register an organisation."
    )
    add.add_argument("name", metavar="NAME", help="the organisation's name, unique among organisations")
    kind = add.add_mutually_exclusive_group(required=True)
    kind.add_argument("--affiliated", action="store_true", help="part of the archive's own organisation")
    kind.add_argument("--external", action="store_true", help="an outside facility")

    listing = add_command(
        commands,
        "list",
        run_list,
        help="list organisations",
        description="List the registered organisations.",
    )
    listing.add_argument("--all", action="store_true", help="include deleted organisations")

    delete = add_command(
        commands,
        "delete",
        run_delete,
        help="delete an organisation and revoke its tokens",
        description="Delete an organisation: its tokens stop working from the next request on. "
        "Records that name it keep its name. Deleting the organisation that holds the admin token "
        "of the data folder's admin-token file needs --force.",
    )
    delete.add_argument("name", metavar="NAME")
    delete.add_argument(
        "--force",
        action="store_true",
        help="delete it even if the admin-token file contains one of its tokens, which then stops working",
    )


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def run_add(arguments: argparse.Namespace) -> int:
    async def work(settings: Settings, index: Index) -> int:
        async with index.write() as connection:
            added = await add_organisation(
                connection, arguments.name, affiliated=arguments.affiliated, by=actor(), now=_now()
            )
        kind = "affiliated" if added.affiliated else "external"
        print(f"Added the {kind} organisation {added.name!r}.")
        return 0

    return run_on_index(arguments, work)


def run_list(arguments: argparse.Namespace) -> int:
    async def work(settings: Settings, index: Index) -> int:
        async with index.read() as connection:
            found = await list_organisations(connection, include_deleted=arguments.all)
        rows = [
            [
                item.name,
                "affiliated" if item.affiliated else "external",
                item.created_at.isoformat(timespec="seconds"),
                item.deleted_at.isoformat(timespec="seconds") if item.deleted_at else "",
            ]
            for item in found
        ]
        print_table(["NAME", "KIND", "CREATED", "DELETED"], rows)
        return 0

    return run_on_index(arguments, work)


def run_delete(arguments: argparse.Namespace) -> int:
    async def work(settings: Settings, index: Index) -> int:
        name = arguments.name.strip()
        token_file = admin_token_path(settings)
        async with index.read() as connection:
            holds_admin_token = await admin_token_organisation(connection, settings, _now()) == name
        if holds_admin_token and not arguments.force:
            return fail(
                f"the organisation {name!r} holds the admin token in {token_file}; deleting it stops that "
                "token and every other token of the organisation at once, so the admin API answers 401 "
                "to them. Create an admin token for another affiliated organisation first "
                "(`dicomweb-server token create --org NAME --scope read,store,admin`), then run this "
                "command again with --force",
                1,
            )
        async with index.write() as connection:
            deleted = await delete_organisation(connection, name, by=actor(), now=_now())
        print(f"Deleted the organisation {deleted.name!r}; its tokens no longer work.")
        if holds_admin_token:
            print(
                f"The admin token in {token_file} no longer works; delete that file so that the next start "
                "of `serve` issues a new one, or use a token of another affiliated organisation."
            )
        return 0

    return run_on_index(arguments, work)
