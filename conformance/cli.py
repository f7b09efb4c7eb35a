"""``python -m conformance``: run the checks against a base URL and report the results.

The exit status is 0 when no required check failed, 1 when one did (or, with ``--strict``,
when any check failed), and 2 for a usage error.
"""

from __future__ import annotations

import argparse
import fnmatch
import importlib
import json
import os
import sys
from pathlib import Path

import pydicom.config

from conformance import __version__
from conformance.archive import Archive
from conformance.context import Context
from conformance.registry import CHECKS, Check, Outcome, Result, run_check
from conformance.report import format_header, format_result, format_summary, id_width, to_json
from conformance.testdata import DEFAULT_FOLDER, DataFolder

CHECK_MODULES = ("stow", "qido", "wado", "negotiation", "cors", "capabilities")
"""The modules that register checks, in the order the report lists them."""


def load_checks() -> list[Check]:
    for name in CHECK_MODULES:
        importlib.import_module(f"conformance.{name}")
    return list(CHECKS)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m conformance",
        description=(
            "Check a DICOMweb archive against DICOM PS3.18. The suite stores real DICOM files "
            "with fresh UIDs under its own PatientIDs and never deletes anything."
        ),
    )
    parser.add_argument("--base-url", help="DICOMweb base URL, such as http://127.0.0.1:8080/dicom-web")
    parser.add_argument(
        "--testdata",
        type=Path,
        default=Path(os.environ.get("DICOM_TESTDATA", DEFAULT_FOLDER)),
        help="folder of DICOM test files (default: $DICOM_TESTDATA or ../shared/testdata beside the project)",
    )
    parser.add_argument(
        "--header",
        action="append",
        default=[],
        metavar='"NAME: VALUE"',
        help="header sent with every request, such as an Authorization header; repeat for several",
    )
    parser.add_argument(
        "--origin",
        help="browser origin the archive allows (https://viewer.example.org); enables the CORS checks",
    )
    parser.add_argument(
        "--select",
        action="append",
        default=[],
        metavar="PATTERN",
        help="run only checks whose id matches this shell pattern (10.5*, 8.3.4.4/*); repeat for several",
    )
    parser.add_argument(
        "--timeout", type=float, default=60.0, help="seconds to wait for each response (default 60)"
    )
    parser.add_argument("--json", action="store_true", help="write the results as JSON to standard output")
    parser.add_argument(
        "--strict", action="store_true", help="fail the run when a recommended check fails too"
    )
    parser.add_argument("--list", action="store_true", help="list the checks without running them")
    return parser


def parse_headers(values: list[str], parser: argparse.ArgumentParser) -> dict[str, str]:
    headers = {}
    for value in values:
        name, colon, content = value.partition(":")
        if not colon or not name.strip():
            parser.error(f'invalid --header {value!r}; write it as "Name: value"')
        headers[name.strip()] = content.strip()
    return headers


def select(checks: list[Check], patterns: list[str]) -> list[Check]:
    if not patterns:
        return checks
    return [check for check in checks if any(fnmatch.fnmatchcase(check.id, pattern) for pattern in patterns)]


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    checks = select(load_checks(), args.select)
    if args.list:
        width = id_width(checks)
        for check in checks:
            print(f"{check.level:<12} {check.id:<{width}} {check.name}")
        return 0
    if not args.base_url:
        parser.error("--base-url is required, such as --base-url http://127.0.0.1:8080/dicom-web")
    if not args.testdata.is_dir():
        parser.error(f"the test data folder {args.testdata} does not exist; give one with --testdata DIR")
    if not checks:
        parser.error(f"no check id matches {', '.join(args.select)}; --list shows the ids")

    # The suite writes deliberately invalid UIDs and reads real files with odd values; pydicom's
    # validation warnings about them would only clutter the report.
    pydicom.config.settings.reading_validation_mode = pydicom.config.IGNORE
    pydicom.config.settings.writing_validation_mode = pydicom.config.IGNORE

    archive = Archive(args.base_url, parse_headers(args.header, parser), args.timeout)
    context = Context(archive, DataFolder(args.testdata), origin=args.origin)
    try:
        results = run(checks, context, show_progress=not args.json)
    finally:
        archive.close()

    if args.json:
        print(json.dumps(to_json(results, archive.base_url, context.run_id, __version__), indent=2))
    else:
        print(format_summary(results))
    failed = any(result.outcome is Outcome.FAIL for result in results) if args.strict else None
    return 1 if failed or any(result.failed_required for result in results) else 0


def run(checks: list[Check], context: Context, *, show_progress: bool) -> list[Result]:
    """Run the checks in order; the table is printed row by row as results come in."""
    width = id_width(checks)
    if show_progress:
        print(format_header(context.archive.base_url, width), flush=True)
    results = []
    for check in checks:
        result = run_check(check, context)
        results.append(result)
        if show_progress:
            print(format_result(result, width), flush=True)
    return results


if __name__ == "__main__":
    sys.exit(main())
