"""``dicomweb-server report``: the availability report of CT studies, and the sharing status of a study.

``report availability --from DATE --to DATE`` lists every CT study of the period with its code
(G9340 met, G9329 not met) and reason in the strict counting mode, then the capability mode,
with totals, performance rates and the evidence of reciprocity. ``report sharing UID`` states
whether a study is available to external facilities now, and prints the sentence for its final
report when it is. Both are recorded as ``audit-log-used`` entries.
"""

from __future__ import annotations

import argparse

import orjson

from dicomweb_server.audit.availability import AvailabilityReport, availability_report
from dicomweb_server.audit.sharing import SharingStatus, sharing_status
from dicomweb_server.cli.audit import add_period_options, now, period_from, record_use
from dicomweb_server.cli.records import add_command, counted, print_table, run_on_index
from dicomweb_server.config import Settings
from dicomweb_server.consent import periods
from dicomweb_server.federation.peers import list_peers
from dicomweb_server.index.database import Index

MODES = (
    ("strict", "Strict (an authorization reaching twelve months after the study)"),
    ("capability", "Capability (shareable once the patient authorizes)"),
)


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "report",
        help="report CT study availability (G9340/G9329) and the sharing status of a study",
        description="Reports on what the archive makes available to external facilities.",
    )
    commands = parser.add_subparsers(dest="report_command", metavar="COMMAND", required=True)

    availability = add_command(
        commands,
        "availability",
        run_availability,
        help="which CT studies of a period were available for twelve months",
        description="List every CT study of the period (by StudyDate, days in the configured time zone, "
        "both included) as G9340 or G9329 with the reason, in the strict and the capability counting "
        "modes, with totals and the evidence of reciprocity.",
    )
    add_period_options(availability)
    availability.add_argument("--format", choices=("table", "json", "csv"), default="table")

    sharing = add_command(
        commands,
        "sharing",
        run_sharing,
        help="whether a study is available to external facilities now",
        description="Show under which authorization a study is available, until when, and the statement "
        "for its final report when that reaches twelve months after the study.",
    )
    sharing.add_argument("study_instance_uid", metavar="STUDY_UID", help="StudyInstanceUID (0020,000D)")
    sharing.add_argument("--format", choices=("text", "json"), default="text")


def run_availability(arguments: argparse.Namespace) -> int:
    async def work(settings: Settings, index: Index) -> int:
        period = period_from(arguments, settings)
        async with index.read() as connection:
            peers = {peer.name: peer.organisation for peer in await list_peers(connection)}
            report = await availability_report(connection, period, now(), peers)
        await record_use(index, "report.availability", **period.to_json())
        if arguments.format == "json":
            print(orjson.dumps(report.to_json(), option=orjson.OPT_INDENT_2).decode())
        elif arguments.format == "csv":
            print(report.to_csv(), end="")
        else:
            print_availability(report)
        return 0

    return run_on_index(arguments, work)


def print_availability(report: AvailabilityReport) -> None:
    data = report.to_json()
    period = data["period"]
    print(f"CT studies dated {period['from']} to {period['to']} ({period['time_zone']}).")
    for mode, title in MODES:
        totals = data["modes"][mode]
        rate = "none" if totals["performance_rate"] is None else f"{totals['performance_rate'] * 100:.1f} %"
        reasons = ", ".join(f"{reason} {count}" for reason, count in totals["not_met_by_reason"].items())
        print(
            f"{title}: {counted(totals['studies'], 'study', 'studies')}, {totals['met']} met, "
            f"{totals['not_met']} not met ({reasons}); performance rate {rate}."
        )
    reciprocity = data["reciprocity"]
    print(
        f"Reciprocity: {_searches(reciprocity['searches_by_external_organisations'])} and "
        f"{counted(reciprocity['retrievals_by_external_organisations'], 'retrieval')} by external "
        f"organisations; {_searches(reciprocity['searches_of_peers'])} of peer archives "
        f"({reciprocity['searches_of_peers_answered']} answered)."
    )
    for peer in reciprocity["peers"]:
        acts_as = f" (acts as {peer['acts_as']})" if peer["acts_as"] else ""
        print(
            f"  Peer {peer['peer']}{acts_as}: {_searches(peer['searches_by_peer'])} and "
            f"{counted(peer['retrievals_by_peer'], 'retrieval')} of this archive; "
            f"{_searches(peer['searches_of_peer'])} of it ({peer['searches_of_peer_answered']} answered) "
            f"and {counted(peer['retrievals_from_peer'], 'retrieval')} from it."
        )
    rows = [
        [
            item["study_date"] or item["study_day"],
            item["study_instance_uid"],
            item["patient_id"] or "",
            item["strict"]["code"],
            item["strict"]["reason"] or "",
            item["capability"]["code"],
            item["capability"]["reason"] or "",
        ]
        for item in data["studies"]
    ]
    if rows:
        print_table(["DATE", "STUDY", "PATIENT", "STRICT", "REASON", "CAPABILITY", "REASON"], rows)


def _searches(count: int) -> str:
    return counted(count, "search", "searches")


def run_sharing(arguments: argparse.Namespace) -> int:
    async def work(settings: Settings, index: Index) -> int:
        async with index.read() as connection:
            status = await sharing_status(
                connection, arguments.study_instance_uid, periods.zone(settings.time_zone), now()
            )
        await record_use(index, "report.sharing", study_instance_uid=status.study_instance_uid)
        if arguments.format == "json":
            print(orjson.dumps(status.to_json(), option=orjson.OPT_INDENT_2).decode())
        else:
            print_sharing(status)
        return 0

    return run_on_index(arguments, work)


def print_sharing(status: SharingStatus) -> None:
    data = status.to_json()
    under = data["authorization"]
    if under is None:
        print(f"Study {status.study_instance_uid} is not available to external facilities now.")
    else:
        print(
            f"Study {status.study_instance_uid} is available to external facilities through "
            f"{data['available_through_day']}, under authorization {under['id']}."
        )
    print(f"The twelve months after the study run through {data['twelve_months_through_day']}.")
    print(data["statement"] or f"No statement for the final report: {data['statement_withheld_because']}")
