"""``dicomweb-server consent``: record, revoke, list and show patient authorizations.

``consent grant`` prints the new authorization's id alone on the last line of its output.
Dates without a time are days in the configured time zone: ``--from`` starts at the beginning
of its day, ``--until`` ends at the end of its day.
"""

from __future__ import annotations

import argparse
import datetime
import re

import orjson

from dicomweb_server.cli.records import actor, add_command, print_table, run_on_index
from dicomweb_server.config import Settings
from dicomweb_server.consent import periods
from dicomweb_server.consent.authorizations import (
    Authorization,
    NewAuthorization,
    get_authorization,
    list_authorizations,
    record_authorization,
    revoke_authorization,
)
from dicomweb_server.consent.refusals import record_refusal
from dicomweb_server.errors import InvalidRequest
from dicomweb_server.index.database import Index


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "consent",
        help="record, revoke and list patient authorizations",
        description="A patient authorization lets external organisations find and retrieve the "
        "patient's studies it covers, from its start to its end, until it is revoked.",
    )
    commands = parser.add_subparsers(dest="consent_command", metavar="COMMAND", required=True)
    _add_grant(commands)

    revoke = add_command(
        commands,
        "revoke",
        run_revoke,
        help="revoke an authorization",
        description="Revoke an authorization; its studies are hidden from the next request on.",
    )
    revoke.add_argument("authorization_id", metavar="ID")
    revoke.add_argument("--reason", required=True, metavar="TEXT", help="why it is revoked")

    listing = add_command(
        commands,
        "list",
        run_list,
        help="list a patient's authorizations",
        description="List the authorizations of a patient, oldest first.",
    )
    listing.add_argument("--patient-id", required=True, metavar="ID", help="PatientID (0010,0020)")
    listing.add_argument("--issuer", metavar="ISSUER", help="IssuerOfPatientID (0010,0021); default: any")

    show = add_command(
        commands, "show", run_show, help="show an authorization as JSON", description="Show an authorization."
    )
    show.add_argument("authorization_id", metavar="ID")
    _add_decline(commands)


def _add_decline(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    decline = add_command(
        commands,
        "decline",
        run_decline,
        help="record that a patient declined to authorize sharing",
        description="Record that the patient declined to authorize sharing with external facilities; the "
        "availability report then gives 'patient declined' as the reason. Rejected while an "
        "authorization of the patient has not ended: revoke it first.",
    )
    decline.add_argument("--patient-id", required=True, metavar="ID", help="PatientID (0010,0020)")
    decline.add_argument("--issuer", default="", metavar="ISSUER", help="IssuerOfPatientID (0010,0021)")
    decline.add_argument(
        "--reference", required=True, metavar="TEXT", help="where the signed refusal or a note of it is kept"
    )
    decline.add_argument("--note", metavar="TEXT", help="a remark, such as how the patient declined")
    decline.add_argument(
        "--at", dest="declined_at", metavar="DATE", help="when the patient declined (default: now)"
    )


def _add_grant(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    grant = add_command(
        commands,
        "grant",
        run_grant,
        help="record a patient's authorization",
        description="Record a signed authorization. Without --study or a date range it covers all the "
        "patient's studies, also those stored later. Without --until it ends twelve months after the "
        "latest covered study or after its start, whichever is later. It prints the new id alone on "
        "the last line.",
    )
    grant.add_argument("--patient-id", required=True, metavar="ID", help="PatientID (0010,0020)")
    grant.add_argument("--issuer", default="", metavar="ISSUER", help="IssuerOfPatientID (0010,0021)")
    recipient = grant.add_mutually_exclusive_group(required=True)
    recipient.add_argument(
        "--org",
        action="append",
        default=[],
        metavar="NAME",
        help="a receiving external organisation (repeatable)",
    )
    recipient.add_argument(
        "--any-external", action="store_true", help="any external organisation may receive"
    )
    grant.add_argument(
        "--study",
        action="extend",
        nargs="+",
        default=[],
        metavar="UID",
        help="cover only these StudyInstanceUIDs",
    )
    grant.add_argument("--study-date-from", metavar="DATE", help="cover studies from this StudyDate")
    grant.add_argument("--study-date-to", metavar="DATE", help="cover studies up to this StudyDate")
    grant.add_argument("--from", dest="starts", metavar="DATE", help="start (default: now)")
    grant.add_argument("--until", dest="ends", metavar="DATE", help="an end the patient chose")
    grant.add_argument("--purpose", required=True, metavar="TEXT", help="the purpose written on the form")
    grant.add_argument(
        "--reference", required=True, metavar="TEXT", help="where the signed authorization is kept"
    )


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _instant(text: str | None, settings: Settings, *, end_of_day: bool) -> datetime.datetime | None:
    if text is None:
        return None
    try:
        return periods.parse_instant(text, periods.zone(settings.time_zone), end_of_day=end_of_day)
    except ValueError as error:
        raise InvalidRequest(str(error)) from None


def run_grant(arguments: argparse.Namespace) -> int:
    async def work(settings: Settings, index: Index) -> int:
        new = NewAuthorization(
            patient_id=arguments.patient_id,
            issuer_of_patient_id=arguments.issuer,
            organisations=tuple(arguments.org),
            any_external=arguments.any_external,
            study_instance_uids=tuple(arguments.study),
            study_date_from=arguments.study_date_from,
            study_date_to=arguments.study_date_to,
            starts_at=_instant(arguments.starts, settings, end_of_day=False),
            ends_at=_instant(arguments.ends, settings, end_of_day=True),
            purpose=arguments.purpose,
            reference=arguments.reference,
        )
        now = _now()
        async with index.write() as connection:
            recorded = await record_authorization(
                connection, new, time_zone=periods.zone(settings.time_zone), by=actor(), now=now
            )
        _describe(recorded, now)
        print(recorded.authorization_id)
        return 0

    return run_on_index(arguments, work)


def _describe(authorization: Authorization, now: datetime.datetime) -> None:
    zone = periods.zone(authorization.time_zone)
    print(f"Recorded the authorization of patient {authorization.patient_id!r} ({_coverage(authorization)}),")
    print(f"for {_recipients(authorization)}.")
    print(f"It starts at {periods.format_local(authorization.starts_at, zone)}")
    print(f"and ends at {periods.format_local(authorization.ends_at, zone)} ({_end_kind(authorization)}).")


def _coverage(authorization: Authorization) -> str:
    if authorization.coverage == "studies":
        return f"{len(authorization.study_instance_uids)} listed studies"
    if authorization.coverage == "date_range":
        return f"studies dated {authorization.study_date_from} to {authorization.study_date_to}"
    return "all studies"


def _recipients(authorization: Authorization) -> str:
    if authorization.any_external:
        return "any external organisation"
    return ", ".join(_recipient(authorization, name) for name in authorization.organisations)


def _recipient(authorization: Authorization, name: str) -> str:
    deleted_at = authorization.deleted_organisations.get(name)
    if deleted_at is None:
        return repr(name)
    zone = periods.zone(authorization.time_zone)
    return f"{name!r} (deleted {deleted_at.astimezone(zone).isoformat(timespec='seconds')}; receives nothing)"


def _end_kind(authorization: Authorization) -> str:
    if not authorization.end_chosen_by_patient:
        return "twelve months after the latest covered study or the start"
    if authorization.meets_twelve_months:
        return "chosen by the patient"
    return "chosen by the patient; it does not meet twelve months of availability"


def run_revoke(arguments: argparse.Namespace) -> int:
    async def work(settings: Settings, index: Index) -> int:
        async with index.write() as connection:
            revoked = await revoke_authorization(
                connection, arguments.authorization_id, reason=arguments.reason, by=actor(), now=_now()
            )
        print(f"Revoked the authorization {revoked.authorization_id}.")
        return 0

    return run_on_index(arguments, work)


def run_list(arguments: argparse.Namespace) -> int:
    async def work(settings: Settings, index: Index) -> int:
        now = _now()
        async with index.read() as connection:
            found = await list_authorizations(connection, arguments.patient_id, arguments.issuer)
        rows = [
            [
                item.authorization_id,
                item.state(now),
                _coverage(item),
                _recipients(item),
                periods.format_local(item.starts_at, periods.zone(item.time_zone)),
                periods.format_local(item.ends_at, periods.zone(item.time_zone)),
            ]
            for item in found
        ]
        print_table(["ID", "STATE", "COVERS", "RECIPIENTS", "STARTS", "ENDS"], rows)
        return 0

    return run_on_index(arguments, work)


DECLINE_OPTIONS = {
    "patient_id": "--patient-id",
    "declined_at": "--at",
    "reference": "--reference",
    "note": "--note",
}
"""The fields a refusal's errors name, and the options of ``consent decline`` that give them."""


def _with_option_names(message: str, options: dict[str, str]) -> str:
    """Name the command-line options in an error written for the admin API's field names."""
    return re.sub(
        r"\b(" + "|".join(re.escape(field) for field in options) + r")\b",
        lambda match: options[match.group(1)],
        message,
        count=1,
    )


def run_decline(arguments: argparse.Namespace) -> int:
    async def work(settings: Settings, index: Index) -> int:
        now = _now()
        try:
            async with index.write() as connection:
                recorded = await record_refusal(
                    connection,
                    patient_id=arguments.patient_id,
                    issuer_of_patient_id=arguments.issuer,
                    reference=arguments.reference,
                    note=arguments.note,
                    declined_at=_instant(arguments.declined_at, settings, end_of_day=False),
                    by=actor(),
                    now=now,
                )
        except InvalidRequest as error:
            raise InvalidRequest(_with_option_names(str(error), DECLINE_OPTIONS)) from None
        print(f"Recorded that patient {recorded.patient_id!r} declined to authorize sharing.")
        print(recorded.refusal_id)
        return 0

    return run_on_index(arguments, work)


def run_show(arguments: argparse.Namespace) -> int:
    async def work(settings: Settings, index: Index) -> int:
        async with index.read() as connection:
            found = await get_authorization(connection, arguments.authorization_id)
        print(orjson.dumps(found.to_json(_now()), option=orjson.OPT_INDENT_2).decode())
        return 0

    return run_on_index(arguments, work)
