"""Results as JSON files, and readable sections appended to RESULTS.md."""

from __future__ import annotations

import datetime
import json
import re
import shlex
import sys
from pathlib import Path
from typing import Any

BENCHMARKS = Path(__file__).resolve().parent
RESULTS_MD = BENCHMARKS / "RESULTS.md"
RESULTS_DIR = BENCHMARKS / "results"


def command_line() -> str:
    """Return the command that started this process, as it could be typed again."""
    return "python -m benchmarks " + shlex.join(sys.argv[1:])


def write_json(result: dict[str, Any], output: Path | None) -> Path:
    """Write a result to ``output``, or to a new file in benchmarks/results named after the run."""
    if output is None:
        RESULTS_DIR.mkdir(exist_ok=True)
        name = re.sub(r"[^a-z0-9]+", "-", f"{result['started']}-{result['name']}".lower()).strip("-")
        output = RESULTS_DIR / f"{name}.json"
    output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return output


def append_markdown(result: dict[str, Any], json_path: Path) -> None:
    """Append a section describing the run to RESULTS.md."""
    with RESULTS_MD.open("a", encoding="utf-8") as file:
        file.write("\n" + render_markdown(result, json_path))


def now_utc() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")


def render_markdown(result: dict[str, Any], json_path: Path) -> str:
    """Describe a run: machine, code, command, then one table row per figure."""
    machine = result["machine"]
    disk = machine["disk"]
    code = machine["code"]
    changed = " with uncommitted changes" if code.get("uncommitted_changes") else ""
    lines = [
        f"## {result['title']}",
        "",
        f"- Date: {result['started']} (took {result['seconds']:.0f} s)",
        f"- Target: {result['target']}",
        f"- Machine: {machine['cores']} cores ({machine['cpu']}), {machine['memory_gb']} GB memory, "
        f"disk {disk['device']} ({disk['file_system']}, {disk['size_gb']} GB, {disk['free_gb']} GB free), "
        f"Linux {machine['kernel']}, Python {machine['python']}",
        f"- Load average (1 min) before and after: {result['load_before'][0]:.2f} "
        f"and {result['load_after'][0]:.2f}",
        f"- Command: `{result['command']}`",
        f"- Raw figures: `{_shown_path(json_path)}`",
    ]
    if result["name"].startswith(("run-embedded", "run-scale", "index-")):
        lines.insert(4, f"- Server code: commit {code['commit']}{changed}")
    for note in result.get("notes", []):
        lines.append(f"- {note}")
    lines += ["", "| figure | value |", "| --- | --- |"]
    lines += [f"| {label} | {value} |" for label, value in result["figures"]]
    return "\n".join(lines) + "\n"


def _shown_path(path: Path) -> str:
    root = BENCHMARKS.parent
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)
