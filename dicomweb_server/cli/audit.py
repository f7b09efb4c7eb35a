"""``dicomweb-server audit``: verify the hash chain, account for a patient's disclosures, export entries.

``audit verify`` exits 0 when every entry fits the chain, 1 when one does not (it names the first
such entry) or when its own use cannot be recorded, 2 when the index cannot be used. It prints
the last entry's sequence and hash; kept somewhere else, they let a later ``audit verify
--anchor SEQUENCE:HASH`` detect a chain that was rewritten or cut since. Every command here is
itself recorded as an ``audit-log-used`` entry.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import sys
from typing import Any

import orjson

from dicomweb_server.audit import EventType, record_change, verify_chain
from dicomweb_server.audit.availability import Period, parse_period
from dicomweb_server.audit.chain import AuditUnavailable, parse_anchor
from dicomweb_server.audit.disclosures import Accounting, account_disclosures
from dicomweb_server.audit.entries import MAX_LIMIT, EntryFilter, StoredEntry, find_entries, get_entry
from dicomweb_server.audit.exports import dicom_audit_message, fhir_audit_event, fhir_bundle
from dicomweb_server.cli.records import add_command, print_table, run_on_index
from dicomweb_server.config import Settings
from dicomweb_server.consent import periods
from dicomweb_server.errors import InvalidRequest
from dicomweb_server.index.database import Index

EXIT_BROKEN = 1


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "audit",
        help="verify the audit trail, account for disclosures, export entries",
        description="The audit trail records every request and change; each entry is chained to the "
        "one before by its hash.",
    )
    commands = parser.add_subparsers(dest="audit_command", metavar="COMMAND", required=True)

    verify = add_command(
        commands,
        "verify",
        run_verify,
        help="check that no entry was changed, removed or moved",
        description="Check every entry against its hash and the entry before; exit 1 and name the first "
        "entry that does not fit.",
    )
    verify.add_argument(
        "--anchor", metavar="SEQUENCE:HASH", help="an entry's sequence and hash noted earlier, to check too"
    )

    disclosures = add_command(
        commands,
        "disclosures",
        run_disclosures,
        help="account for the disclosures of one patient's data",
        description="List who outside the archive received the patient's data in the period, what, when "
        "and why. Days are in the configured time zone, both included.",
    )
    disclosures.add_argument(
        "--patient-id", required=True, type=_patient_id, metavar="ID", help="PatientID (0010,0020)"
    )
    disclosures.add_argument("--issuer", metavar="ISSUER", help="IssuerOfPatientID (0010,0021); default: any")
    add_period_options(disclosures)
    disclosures.add_argument("--format", choices=("table", "json", "csv"), default="table")

    export = add_command(
        commands,
        "export",
        run_export,
        help="print entries as JSON, FHIR AuditEvents or DICOM audit messages",
        description="Print the entries of a period: JSON (one entry per line), a FHIR R4 Bundle of "
        "AuditEvents, or DICOM audit messages (PS3.15 A.5.1), one XML document per line.",
    )
    export.add_argument("--from", dest="first", metavar="DATE", help="first day (default: no limit)")
    export.add_argument("--to", dest="last", metavar="DATE", help="last day (default: no limit)")
    export.add_argument(
        "--event-type",
        metavar="TYPE",
        choices=[item.value for item in EventType],
        help="only entries of this type, such as data-export; one of %(choices)s",
    )
    export.add_argument("--patient-id", metavar="ID", help="only entries naming this PatientID")
    export.add_argument("--format", choices=("json", "fhir", "dicom"), default="json")

    show = add_command(
        commands, "show", run_show, help="show one entry", description="Show one entry by its event id."
    )
    show.add_argument("event_id", metavar="EVENT_ID")
    show.add_argument("--format", choices=("json", "fhir", "dicom"), default="json")


def add_period_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--from", dest="first", required=True, metavar="DATE", help="first day, YYYY-MM-DD")
    parser.add_argument("--to", dest="last", required=True, metavar="DATE", help="last day, YYYY-MM-DD")


def period_from(arguments: argparse.Namespace, settings: Settings) -> Period:
    try:
        return parse_period(arguments.first, arguments.last, periods.zone(settings.time_zone))
    except ValueError as error:
        raise InvalidRequest(str(error)) from None


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _patient_id(value: str) -> str:
    if not value.strip():
        raise argparse.ArgumentTypeError("it is empty; give the PatientID whose disclosures to list")
    return value.strip()


async def record_use(index: Index, action: str, **detail: Any) -> None:
    """Record that the trail was read by this command, as an ``audit-log-used`` entry."""
    async with index.write() as connection:
        await record_change(connection, EventType.AUDIT_LOG_USED, action, detail=detail)


def run_verify(arguments: argparse.Namespace) -> int:
    async def work(settings: Settings, index: Index) -> int:
        anchor = parse_anchor(arguments.anchor)
        async with index.read() as connection:
            result = await verify_chain(connection, anchor)

        # The verdict comes first: a trail that cannot be written is what verify must diagnose.
        if result.valid:
            print(f"The audit trail is intact: {result.checked} entries fit the chain.")
            print(f"Last entry: {result.head_sequence}:{result.head_hash}")
            print("Keep that line elsewhere; `audit verify --anchor` with it detects a later rewrite.")
        else:
            entry = f" (event {result.event_id})" if result.event_id else ""
            print(f"The audit trail is broken at entry {result.sequence}{entry}: {result.problem}.")
            print(f"{result.checked} entries before it fit the chain.")
        sys.stdout.flush()

        try:
            await record_use(index, "audit.verify", valid=result.valid, checked=result.checked)
        except AuditUnavailable as error:
            print(f"error: this check could not be recorded in the audit trail: {error}", file=sys.stderr)
            return EXIT_BROKEN
        return 0 if result.valid else EXIT_BROKEN

    return run_on_index(arguments, work)


def run_disclosures(arguments: argparse.Namespace) -> int:
    async def work(settings: Settings, index: Index) -> int:
        period = period_from(arguments, settings)
        async with index.read() as connection:
            accounting = await account_disclosures(
                connection, arguments.patient_id, arguments.issuer, period, now()
            )
        await record_use(
            index, "report.disclosures", patient_id=arguments.patient_id, issuer=arguments.issuer
        )
        if arguments.format == "json":
            print(orjson.dumps(accounting.to_json(), option=orjson.OPT_INDENT_2).decode())
        elif arguments.format == "csv":
            print(accounting.to_csv(), end="")
        else:
            print_accounting(accounting)
        return 0

    return run_on_index(arguments, work)


def print_accounting(accounting: Accounting) -> None:
    data = accounting.to_json()
    print(
        f"Disclosures of patient {accounting.patient_id!r} from {data['period']['from']} to "
        f"{data['period']['to']}: {len(accounting.disclosures)}."
    )
    rows = [
        [
            item["local_date"],
            item["organisation"] or "",
            item["requester"],
            item["disclosed"],
            str(len(item["studies"])),
            item["purpose"] or "",
            item["legal_basis"],
        ]
        for item in data["disclosures"]
    ]
    if rows:
        print_table(["DATE", "ORGANISATION", "REQUESTER", "DISCLOSED", "STUDIES", "PURPOSE", "BASIS"], rows)


def run_export(arguments: argparse.Namespace) -> int:
    async def work(settings: Settings, index: Index) -> int:
        zone = periods.zone(settings.time_zone)
        try:
            since = (
                periods.parse_instant(arguments.first, zone, end_of_day=False) if arguments.first else None
            )
            until = periods.parse_instant(arguments.last, zone, end_of_day=True) if arguments.last else None
        except ValueError as error:
            raise InvalidRequest(str(error)) from None
        where = EntryFilter(
            since=since, until=until, event_type=arguments.event_type, patient_id=arguments.patient_id
        )
        entries = await _all_entries(index, where)
        await record_use(index, "audit.export", format=arguments.format, entries=len(entries))
        _print_entries(entries, arguments.format)
        return 0

    return run_on_index(arguments, work)


async def _all_entries(index: Index, where: EntryFilter) -> list[StoredEntry]:
    found: list[StoredEntry] = []
    after = 0
    while True:
        page_filter = dataclasses.replace(where, after=after, limit=MAX_LIMIT)
        async with index.read() as connection:
            page = await find_entries(connection, page_filter)
        found += page
        if len(page) < MAX_LIMIT:
            return found
        after = page[-1].sequence


def _print_entries(entries: list[StoredEntry], chosen: str) -> None:
    if chosen == "fhir":
        print(
            orjson.dumps(fhir_bundle([item.content for item in entries]), option=orjson.OPT_INDENT_2).decode()
        )
        return
    for item in entries:
        print(
            dicom_audit_message(item.content) if chosen == "dicom" else orjson.dumps(item.to_json()).decode()
        )


def run_show(arguments: argparse.Namespace) -> int:
    async def work(settings: Settings, index: Index) -> int:
        async with index.read() as connection:
            found = await get_entry(connection, arguments.event_id)
        await record_use(index, "audit.show", event_id=found.content["event_id"])
        if arguments.format == "dicom":
            print(dicom_audit_message(found.content))
        elif arguments.format == "fhir":
            print(orjson.dumps(fhir_audit_event(found.content), option=orjson.OPT_INDENT_2).decode())
        else:
            print(orjson.dumps(found.to_json(), option=orjson.OPT_INDENT_2).decode())
        return 0

    return run_on_index(arguments, work)
