"""``dicomweb-server quarantine``: list, accept and reject what external organisations stored."""

from __future__ import annotations

import argparse
import datetime

from dicomweb_server.cli.common import STORE_SETTINGS
from dicomweb_server.cli.records import actor, add_command, print_table, run_on_index
from dicomweb_server.config import Settings
from dicomweb_server.consent import quarantine
from dicomweb_server.index.database import Index
from dicomweb_server.storage.store import open_store


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "quarantine",
        help="list, accept and reject instances stored by external organisations",
        description="Instances stored by external organisations are held until an administrator "
        "accepts them (they are then found like any stored instance) or rejects them (they are deleted).",
    )
    commands = parser.add_subparsers(dest="quarantine_command", metavar="COMMAND", required=True)

    listing = add_command(
        commands,
        "list",
        run_list,
        help="list quarantined instances",
        description="List quarantined instances.",
    )
    listing.add_argument(
        "--status", default=quarantine.HELD, choices=[*quarantine.STATUSES, "all"], help="default: held"
    )
    listing.add_argument("--org", metavar="NAME", help="only those stored by this organisation")
    listing.add_argument("--study", metavar="UID", help="only those of this StudyInstanceUID")

    for name, run, verb in (("accept", run_accept, "accept"), ("reject", run_reject, "reject")):
        command = add_command(
            commands,
            name,
            run,
            help=f"{verb} held instances",
            description=f"{verb.capitalize()} held instances.",
            settings=STORE_SETTINGS,
        )
        command.add_argument("quarantine_ids", nargs="+", metavar="ID", help="ids shown by `quarantine list`")
        command.add_argument("--note", metavar="TEXT", help="a note kept with the decision")


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def run_list(arguments: argparse.Namespace) -> int:
    async def work(settings: Settings, index: Index) -> int:
        async with index.read() as connection:
            found = await quarantine.list_quarantine(
                connection,
                status=None if arguments.status == "all" else arguments.status,
                organisation_name=arguments.org,
                study_instance_uid=arguments.study,
            )
        rows = [
            [
                item.quarantine_id,
                item.status,
                item.organisation,
                item.received_at.isoformat(timespec="seconds"),
                item.patient_id or "",
                item.study_instance_uid,
                item.sop_instance_uid,
            ]
            for item in found
        ]
        print_table(["ID", "STATUS", "ORGANISATION", "RECEIVED", "PATIENT ID", "STUDY", "SOP INSTANCE"], rows)
        return 0

    return run_on_index(arguments, work)


def _decide(arguments: argparse.Namespace, accept: bool) -> int:
    async def work(settings: Settings, index: Index) -> int:
        store = open_store(settings)
        decide = quarantine.accept if accept else quarantine.reject
        try:
            for quarantine_id in arguments.quarantine_ids:
                decided = await decide(
                    index, store, quarantine_id, by=actor(), note=arguments.note, now=_now()
                )
                print(f"{decided.status.capitalize()} {decided.quarantine_id}.")
        finally:
            store.close()
        return 0

    return run_on_index(arguments, work)


def run_accept(arguments: argparse.Namespace) -> int:
    return _decide(arguments, accept=True)


def run_reject(arguments: argparse.Namespace) -> int:
    return _decide(arguments, accept=False)
