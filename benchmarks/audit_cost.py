"""What recording reads in the audit trail costs: QIDO-RS and WADO-RS with and without it.

The same server code runs twice on the same stored data. It runs once as ``dicomweb-server
serve``, where every request is recorded and its entry committed before the response starts.
It runs once through ``python -m benchmarks.audit_cost serve-unrecorded``, which replaces the
audit middleware with one that passes requests through, so reads write no entry. The server has
no setting that turns recording off; only this measurement does. The variants alternate for
``--rounds`` rounds, each scenario at 1 and at 4 concurrent clients, and the figures are the
median of the rounds.

    python -m benchmarks.audit_cost --server embedded
    python -m benchmarks.audit_cost --server scale --record

``--record`` appends the table, with the machine, the load average and the command, to
benchmarks/AUDIT-COST.md.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import shlex
import shutil
import statistics
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from benchmarks.dataset import DataSetPlan, stow_plan
from benchmarks.machine import describe_machine, load_average
from benchmarks.measure import Request
from benchmarks.scenarios import qido_requests, study_metadata_requests, study_retrieve_requests
from benchmarks.servers import backend_services, cpu_seconds
from benchmarks.suite import Options, Target, measure_reads, measure_stow
from tests.services import Backend, ServerProcess, start_server

RESULTS_PAGE = Path(__file__).resolve().parent / "AUDIT-COST.md"
SCENARIOS: dict[str, Callable[[DataSetPlan, int], Iterator[Request]]] = {
    "qido": qido_requests,
    "metadata": study_metadata_requests,
    "wado": study_retrieve_requests,
}
CLIENTS = (1, 4)
VARIANTS = ("recorded", "unrecorded")


def serve_unrecorded() -> int:
    """Run ``dicomweb-server serve`` with an audit middleware that records nothing."""
    from dicomweb_server import app
    from dicomweb_server.cli import main

    class PassThrough:
        def __init__(self, inner: Any) -> None:
            self.app = inner

        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            await self.app(scope, receive, send)

    app.AuditMiddleware = PassThrough  # type: ignore[misc,assignment]
    return main(["serve"])


def start_unrecorded(backend: Backend, data_dir: Path) -> ServerProcess:
    """Start the server without recording, as ``tests.services.start_server`` starts it with."""
    return start_server(backend, data_dir, command=("-m", "benchmarks.audit_cost", "serve-unrecorded"))


@contextmanager
def running(variant: str, backend: Backend, data_dir: Path) -> Iterator[ServerProcess]:
    server = start_server(backend, data_dir) if variant == "recorded" else start_unrecorded(backend, data_dir)
    try:
        yield server
    finally:
        server.stop()


def target_of(server: ServerProcess) -> Target:
    return Target(base_url=server.dicomweb, headers=dict(server.headers))


def measure(backend_name: str, arguments: argparse.Namespace) -> dict[str, Any]:
    """Load the data set once, then measure each variant, scenario and client count per round."""
    plan = stow_plan(arguments.seed, arguments.studies)
    folder = Path(tempfile.mkdtemp(prefix="audit-cost-"))
    figures: dict[str, list[dict[str, Any]]] = {}
    with ExitStack() as stack:
        stack.callback(shutil.rmtree, folder, ignore_errors=True)
        backend, _ = stack.enter_context(backend_services(backend_name, folder))
        data_dir = folder / "server"
        with running("recorded", backend, data_dir) as server:
            stored = asyncio.run(measure_stow(target_of(server), plan, Options(seed=arguments.seed)))
        if stored["instances_stored"] != plan.instances:
            raise RuntimeError(f"loading the data set failed: {stored}")
        for _ in range(arguments.rounds):
            for variant in VARIANTS:
                with running(variant, backend, data_dir) as server:
                    for scenario, make_requests in SCENARIOS.items():
                        for clients in CLIENTS:
                            options = Options(
                                seed=arguments.seed, clients=clients, max_seconds=arguments.seconds
                            )
                            cpu_before = cpu_seconds(server.process.pid)
                            summary = asyncio.run(
                                measure_reads(
                                    target_of(server),
                                    make_requests(plan, arguments.seed),
                                    options,
                                    1_000_000,
                                    None,
                                )
                            )
                            summary["server_cpu_ms"] = (
                                (cpu_seconds(server.process.pid) - cpu_before) * 1000 / summary["requests"]
                            )
                            if summary["failures"]:
                                raise RuntimeError(f"{variant} {scenario}: {summary['failure_examples']}")
                            figures.setdefault(f"{scenario}/{clients}/{variant}", []).append(summary)
    return {"backend": backend_name, "plan": plan, "figures": figures}


def _median(runs: list[dict[str, Any]], key: str) -> float:
    return float(statistics.median(run[key] for run in runs))


def table(result: dict[str, Any]) -> str:
    """Return the figures as a Markdown table: requests per second and latencies per variant."""
    lines = [
        "| scenario | clients | req/s recorded | req/s unrecorded | change | median ms recorded | "
        "median ms unrecorded | p99 ms recorded | p99 ms unrecorded | server CPU ms per request, "
        "recorded | unrecorded |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    figures = result["figures"]
    for scenario in SCENARIOS:
        for clients in CLIENTS:
            recorded = figures[f"{scenario}/{clients}/recorded"]
            unrecorded = figures[f"{scenario}/{clients}/unrecorded"]
            rate_on = _median(recorded, "requests_per_second")
            rate_off = _median(unrecorded, "requests_per_second")
            change = (rate_on - rate_off) / rate_off * 100
            lines.append(
                f"| {scenario} | {clients} | {rate_on:.1f} | {rate_off:.1f} | {change:+.1f} % | "
                f"{_median(recorded, 'median_ms'):.2f} | {_median(unrecorded, 'median_ms'):.2f} | "
                f"{_median(recorded, 'p99_ms'):.2f} | {_median(unrecorded, 'p99_ms'):.2f} | "
                f"{_median(recorded, 'server_cpu_ms'):.2f} | {_median(unrecorded, 'server_cpu_ms'):.2f} |"
            )
    return "\n".join(lines)


def record(
    result: dict[str, Any], arguments: argparse.Namespace, loads: tuple[list[float], list[float]]
) -> None:
    machine = describe_machine(Path(tempfile.gettempdir()))
    plan: DataSetPlan = result["plan"]
    command = "python -m benchmarks.audit_cost " + " ".join(shlex.quote(item) for item in sys.argv[1:])
    section = [
        "",
        f"## {result['backend']}, {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"Command: `{command}`. Code: {_describe_code(machine['code'])}.",
        f"Machine: {machine['cores']} cores ({machine['cpu']}), {machine['memory_gb']} GB, "
        f"Python {machine['python']}. Load average before and after: {loads[0]} and {loads[1]}.",
        f"Data: {plan.studies} studies, {plan.instances} instances. Each figure is the median of "
        f"{arguments.rounds} rounds of {arguments.seconds:g} s per scenario and client count.",
        "",
        table(result),
        "",
    ]
    with RESULTS_PAGE.open("a", encoding="utf-8") as page:
        page.write("\n".join(section))


def _describe_code(code: dict[str, Any]) -> str:
    changes = " with uncommitted changes" if code.get("uncommitted_changes") else ""
    return f"commit {code.get('commit', 'unknown')}{changes}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.audit_cost", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("command", nargs="?", choices=("measure", "serve-unrecorded"), default="measure")
    parser.add_argument("--server", choices=("embedded", "scale"), default="embedded")
    parser.add_argument(
        "--studies", type=int, default=16, help="studies of 45 instances to store (default 16)"
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds per scenario and client count")
    parser.add_argument("--rounds", type=int, default=2, help="times each variant is measured (default 2)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--record", action="store_true", help="append the figures to benchmarks/AUDIT-COST.md"
    )
    arguments = parser.parse_args(argv)
    if arguments.command == "serve-unrecorded":
        return serve_unrecorded()

    before = load_average()
    result = measure(arguments.server, arguments)
    after = load_average()
    print(table(result))
    if arguments.record:
        record(result, arguments, (before, after))
    return 0


if __name__ == "__main__":
    sys.exit(main())
