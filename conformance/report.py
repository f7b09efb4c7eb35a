"""The results of a run as a readable table or as JSON for machines."""

from __future__ import annotations

import textwrap
from collections import Counter
from typing import Any

from conformance.registry import Check, Outcome, Result

RESULT_WIDTH = 6
LEVEL_WIDTH = 12
DETAIL_INDENT = " " * (RESULT_WIDTH + 1)
DETAIL_WIDTH = 110


def id_width(checks: list[Check]) -> int:
    return max((len(check.id) for check in checks), default=2)


def format_header(base_url: str, width: int) -> str:
    title = f"DICOMweb conformance of {base_url}"
    columns = f"{'RESULT':<{RESULT_WIDTH}} {'LEVEL':<{LEVEL_WIDTH}} {'ID':<{width}} NAME"
    return f"{title}\n\n{columns}"


def format_result(result: Result, width: int) -> str:
    """Write one result as a table row; a failure or a note follows on indented lines."""
    label = "FAIL" if result.outcome is Outcome.FAIL else str(result.outcome)
    check = result.check
    line = f"{label:<{RESULT_WIDTH}} {check.level:<{LEVEL_WIDTH}} {check.id:<{width}} {check.name}"
    if not result.detail:
        return line
    detail = textwrap.fill(
        result.detail, DETAIL_WIDTH, initial_indent=DETAIL_INDENT, subsequent_indent=DETAIL_INDENT
    )
    return f"{line}\n{detail}"


def summary(results: list[Result]) -> dict[str, int]:
    counts = Counter(result.outcome for result in results)
    return {
        "passed": counts[Outcome.PASS],
        "failed": counts[Outcome.FAIL],
        "not_applicable": counts[Outcome.NOT_APPLICABLE],
        "required_failed": sum(result.failed_required for result in results),
    }


def format_summary(results: list[Result]) -> str:
    counts = summary(results)
    return (
        f"\n{counts['passed']} passed, {counts['failed']} failed "
        f"({counts['required_failed']} of them required), {counts['not_applicable']} not applicable"
    )


def to_json(results: list[Result], base_url: str, run_id: str, version: str) -> dict[str, Any]:
    """Describe a run for machines: one object per check, and the counts."""
    return {
        "base_url": base_url,
        "run_id": run_id,
        "suite_version": version,
        "summary": summary(results),
        "checks": [
            {
                "id": result.check.id,
                "section": result.check.section,
                "name": result.check.name,
                "level": str(result.check.level),
                "result": str(result.outcome),
                "detail": result.detail,
            }
            for result in results
        ],
    }
