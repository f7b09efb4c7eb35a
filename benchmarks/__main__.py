"""``python -m benchmarks``: measure a DICOMweb server and record the figures.

Subcommands:

- ``run``: store the STOW-RS data set and measure every scenario, against any base URL or
  against our server started on the embedded or scale backend;
- ``index``: build (once) a synthetic index of a million instances for a backend, start our
  server on it and measure the QIDO-RS mix;
- ``baselines``: measure fsync'd file writes and downloads from a trivial loopback HTTP server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pydicom.config
import uvloop

from benchmarks import baselines, report
from benchmarks.dataset import DataSetPlan, index_plan, stow_plan
from benchmarks.machine import describe_machine, load_average
from benchmarks.results import append_markdown, command_line, now_utc, write_json
from benchmarks.servers import (
    BACKENDS,
    Deployment,
    cpu_seconds,
    deployment,
    drop_postgres_database,
    peak_memory_mb,
)
from benchmarks.suite import SCENARIOS, Options, Target, run_scenarios
from tests.services import Backend

DEFAULT_WORK_DIR = Path(tempfile.gettempdir()) / "dicomweb-benchmarks"


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    arguments = parser.parse_args(argv)
    # The synthetic instances are read back with pydicom; their values are valid, but pydicom
    # would warn about the template's private attributes.
    pydicom.config.settings.reading_validation_mode = pydicom.config.IGNORE
    # uvloop, which uvicorn also runs on, spends less CPU time per request in the client.
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return int(arguments.command(arguments))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="measure every scenario on the STOW-RS data set")
    where = run.add_mutually_exclusive_group(required=True)
    where.add_argument("--server", choices=BACKENDS, help="start our server on this backend")
    where.add_argument(
        "--base-url", help="DICOMweb root of a running server (http://127.0.0.1:8042/dicom-web)"
    )
    run.add_argument(
        "--scenarios",
        default=",".join(SCENARIOS),
        help=f"comma-separated scenarios in the order to run them (default: {','.join(SCENARIOS)})",
    )
    run.add_argument("--studies", type=int, default=32, help="studies of 45 instances to store (default: 32)")
    run.add_argument("--stow-clients", type=int, default=4, help="concurrent STOW-RS clients (default: 4)")
    run.add_argument(
        "--instances-per-request", type=int, default=5, help="instances in each STOW-RS request (default: 5)"
    )
    run.add_argument("--keep", action="store_true", help="keep the server's data folder after the run")
    run.add_argument(
        "--describe",
        metavar="TEXT",
        help="with --base-url: the server's name and version, as RESULTS.md shows it",
    )
    run.add_argument(
        "--memory-pid",
        type=int,
        metavar="PID",
        help="with --base-url: process on this machine whose peak memory (VmHWM) to report",
    )
    _add_common(run)
    run.set_defaults(command=command_run)

    index = commands.add_parser("index", help="measure the QIDO-RS mix on a large synthetic index")
    index.add_argument(
        "--server", choices=BACKENDS, required=True, help="backend to load and start our server on"
    )
    index.add_argument(
        "--instances", type=int, default=1_000_000, help="instances in the index (default: 1000000)"
    )
    index.add_argument(
        "--fresh", action="store_true", help="delete an existing index of the same shape first"
    )
    _add_common(index)
    index.set_defaults(command=command_index)

    machine = commands.add_parser("baselines", help="measure fsync'd writes and loopback HTTP downloads")
    _add_common(machine)
    machine.set_defaults(command=command_baselines)
    return parser


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", type=int, default=1, help="seed of the synthetic data set (default: 1)")
    parser.add_argument(
        "--clients", type=int, default=4, help="concurrent clients of read scenarios (default: 4)"
    )
    parser.add_argument(
        "--duration", type=float, default=30.0, help="seconds each read scenario runs (default: 30)"
    )
    parser.add_argument(
        "--header",
        action="append",
        default=[],
        metavar="'NAME: VALUE'",
        help="header sent with every request, such as an Authorization header (repeatable)",
    )
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=DEFAULT_WORK_DIR,
        help=f"folder for data (default: {DEFAULT_WORK_DIR})",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="FOLDER",
        help="record a py-spy profile of our server per scenario into this folder",
    )
    parser.add_argument(
        "--output", type=Path, help="JSON file for the results (default: benchmarks/results/…)"
    )
    parser.add_argument("--record", action="store_true", help="append a section to benchmarks/RESULTS.md")


def _options(arguments: argparse.Namespace) -> Options:
    return Options(
        seed=arguments.seed,
        stow_clients=getattr(arguments, "stow_clients", 4),
        instances_per_request=getattr(arguments, "instances_per_request", 5),
        clients=arguments.clients,
        max_seconds=arguments.duration,
    )


def _headers(arguments: argparse.Namespace) -> dict[str, str]:
    headers = {}
    for header in arguments.header:
        name, separator, value = header.partition(":")
        if not separator or not name.strip():
            raise SystemExit(f"invalid --header {header!r}; use 'Name: value'")
        headers[name.strip()] = value.strip()
    return headers


def command_run(arguments: argparse.Namespace) -> int:
    scenarios = [name.strip() for name in arguments.scenarios.split(",") if name.strip()]
    unknown = sorted(set(scenarios) - set(SCENARIOS))
    if unknown:
        raise SystemExit(f"unknown scenarios {', '.join(unknown)}; use {', '.join(SCENARIOS)}")
    plan = stow_plan(arguments.seed, arguments.studies)
    options = _options(arguments)
    result = _new_result(f"run-{arguments.server or 'url'}", arguments)

    if arguments.base_url:
        description = (
            f"{arguments.describe} at {arguments.base_url}" if arguments.describe else arguments.base_url
        )
        target = Target(arguments.base_url, _headers(arguments), description=description)
        if arguments.memory_pid:
            pid = arguments.memory_pid
            target.peak_memory = lambda: peak_memory_mb(pid)
            target.cpu_seconds = lambda: cpu_seconds(pid)
        result["results"] = asyncio.run(run_scenarios(target, plan, scenarios, options))
    else:
        folder = arguments.work_dir / f"run-{arguments.server}-{int(time.time())}"
        with deployment(arguments.server, folder, keep=arguments.keep) as running:
            target = _our_target(running, arguments)
            result["results"] = _run_profiled(target, plan, scenarios, options, running, arguments.profile)
    result["target"] = target.description
    result["plan"] = _plan_summary(plan)
    return _finish(result, arguments, report.run_figures(result, plan))


def command_index(arguments: argparse.Namespace) -> int:
    from benchmarks.index_loader import load_index, local_object_writer, s3_object_writer
    from dicomweb_server.config import load_settings
    from dicomweb_server.index.database import head_revision
    from tests.services import server_environment

    plan = index_plan(arguments.seed, arguments.instances)
    options = _options(arguments)
    name = f"index-{arguments.server}-{arguments.instances}-seed{arguments.seed}"
    folder = arguments.work_dir / name
    database = (
        f"dicomweb_bench_{arguments.instances}_seed{arguments.seed}" if arguments.server == "scale" else None
    )
    if arguments.fresh:
        shutil.rmtree(folder, ignore_errors=True)
        if database:
            drop_postgres_database(database)
    result = _new_result(name, arguments)
    marker = folder / "loaded.json"
    _check_schema_revision(marker)

    def load_once(backend: Backend, data_dir: Path) -> None:
        if marker.exists():
            return
        environment = server_environment(backend, data_dir, 0, {})
        environment.pop("DICOMWEB_PORT")
        settings = load_settings(environ=environment)
        if settings.store_url:
            writer = s3_object_writer(settings)
        else:
            writer = local_object_writer(settings.data_dir / "objects")
        load = asyncio.run(load_index(settings, plan, writer))
        marker.write_text(
            json.dumps(
                {
                    "plan": _plan_summary(plan),
                    "load": vars(load),
                    "date": now_utc(),
                    "schema_revision": head_revision(),
                }
            )
        )

    with deployment(arguments.server, folder, database=database, keep=True, prepare=load_once) as running:
        result["load"] = json.loads(marker.read_text())
        target = _our_target(running, arguments)
        result["results"] = _run_profiled(target, plan, ["qido"], options, running, arguments.profile)
    result["target"] = target.description
    result["plan"] = _plan_summary(plan)
    return _finish(result, arguments, report.index_figures(result, plan))


def _check_schema_revision(marker: Path) -> None:
    """Stop when a kept index was built for another schema than the server's.

    Its rows would lack what a newer ingest writes, so the figures would describe another index.
    """
    from dicomweb_server.index.database import head_revision

    if not marker.exists():
        return
    built_for = json.loads(marker.read_text()).get("schema_revision")
    if built_for != head_revision():
        raise SystemExit(
            f"the index in {marker.parent} was built for schema revision {built_for}, and this server "
            f"needs {head_revision()}; run the same command with --fresh to rebuild it"
        )


def command_baselines(arguments: argparse.Namespace) -> int:
    options = _options(arguments)
    result = _new_result("baselines", arguments)
    result["results"] = {
        "file_writes": baselines.measure_file_writes(arguments.work_dir / "file-writes"),
        "loopback_http": baselines.measure_loopback_http(options),
    }
    result["target"] = "this machine (no archive)"
    return _finish(result, arguments, report.baseline_figures(result))


def _new_result(name: str, arguments: argparse.Namespace) -> dict[str, Any]:
    return {
        "name": name,
        "started": now_utc(),
        "started_monotonic": time.monotonic(),
        "command": command_line(),
        "machine": describe_machine(arguments.work_dir),
        "load_before": load_average(),
        "options": {key: str(value) for key, value in vars(arguments).items() if key != "command"},
    }


def _finish(result: dict[str, Any], arguments: argparse.Namespace, figures: list[tuple[str, str]]) -> int:
    result["seconds"] = round(time.monotonic() - result.pop("started_monotonic"), 1)
    result["load_after"] = load_average()
    result["figures"] = figures
    result.setdefault("title", report.title(result))
    path = write_json(result, arguments.output)
    if arguments.record:
        append_markdown(result, path)
    for label, value in figures:
        print(f"{label}: {value}")
    print(f"results: {path}", file=sys.stderr)
    failures = report.failures(result)
    if failures:
        print(f"{failures} requests failed; see the JSON file for examples", file=sys.stderr)
    return 1 if failures else 0


def _plan_summary(plan: DataSetPlan) -> dict[str, Any]:
    return {**vars(plan), "instances": plan.instances, "patients": plan.patients}


def _our_target(running: Deployment, arguments: argparse.Namespace) -> Target:
    pid = running.server.process.pid
    return Target(
        running.server.dicomweb,
        {**running.server.headers, **_headers(arguments)},
        peak_memory=lambda: peak_memory_mb(pid),
        cpu_seconds=lambda: cpu_seconds(pid),
        description=f"our server, {running.backend.name} backend, started by the harness",
    )


def _run_profiled(
    target: Target,
    plan: DataSetPlan,
    scenarios: list[str],
    options: Options,
    running: Deployment,
    profile: Path | None,
) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for scenario in scenarios:
        with _py_spy(running.server.process.pid, profile, scenario):
            results.update(asyncio.run(run_scenarios(target, plan, [scenario], options)))
    for name, pid in running.service_pids.items():
        results.setdefault("services_peak_memory_mb", {})[name] = peak_memory_mb(pid)
    return results


@contextmanager
def _py_spy(pid: int, folder: Path | None, scenario: str) -> Iterator[None]:
    """Sample the server with py-spy while the block runs, writing collapsed stacks to ``folder``."""
    if folder is None:
        yield
        return
    folder.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        [
            "py-spy",
            "record",
            "--pid",
            str(pid),
            "--format",
            "raw",
            "--rate",
            "100",
            "--output",
            str(folder / f"{scenario}.txt"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(60)


if __name__ == "__main__":
    sys.exit(main())
