"""The scenarios run one after the other against one DICOMweb base URL."""

from __future__ import annotations

import resource
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
from httpcore import AsyncHTTP11Connection

from benchmarks.dataset import DataSetPlan
from benchmarks.measure import Request, run_requests
from benchmarks.scenarios import (
    count_json_results,
    count_stored_instances,
    frame_requests,
    qido_requests,
    stow_requests,
    study_metadata_requests,
    study_retrieve_requests,
)

SCENARIOS = ("stow", "qido", "metadata", "wado", "frames")
WARM_UP_REQUESTS = 20
"""Requests sent before each read scenario is timed, so connections and caches are warm."""


@dataclass
class Target:
    """The base URL and headers of the requests, and readers of the server's memory and CPU time.

    The readers are set only for a server process on this machine, such as ours.
    """

    base_url: str
    headers: dict[str, str] = field(default_factory=dict)
    peak_memory: Callable[[], float] | None = None
    cpu_seconds: Callable[[], float] | None = None
    description: str = ""


@dataclass(frozen=True)
class Options:
    seed: int = 1
    stow_clients: int = 4
    instances_per_request: int = 5
    clients: int = 4
    max_seconds: float = 30.0
    max_qido_requests: int = 20_000


HTTP_READ_SIZE = 1024 * 1024
"""Bytes httpcore requests per socket read (httpcore 1.0 reads 64 KiB by default)."""


def http_client(target: Target, clients: int) -> httpx.AsyncClient:
    """Return a client with one connection per concurrent loop and no response compression.

    Reading 1 MiB per call instead of 64 KiB raises what one Python client downloads on loopback
    from about 570 to about 870 MB/s (2-core machine, uvloop, whole-study sized bodies), so large
    retrievals measure the server rather than the client.
    """
    AsyncHTTP11Connection.READ_NUM_BYTES = HTTP_READ_SIZE
    base = target.base_url.rstrip("/") + "/"
    return httpx.AsyncClient(
        base_url=base,
        headers={"Accept-Encoding": "identity", **target.headers},
        timeout=httpx.Timeout(300.0),
        limits=httpx.Limits(max_connections=clients, max_keepalive_connections=clients),
    )


async def run_scenarios(
    target: Target, plan: DataSetPlan, scenarios: list[str], options: Options
) -> dict[str, Any]:
    """Run the named scenarios in order; return each one's summary with CPU times and peak memory."""
    results: dict[str, Any] = {}
    for scenario in scenarios:
        client_before = _own_cpu_seconds()
        server_before = target.cpu_seconds() if target.cpu_seconds else None
        summary = await _run_scenario(target, plan, scenario, options)
        # The client shares the machine; its CPU time shows when it, not the server, is the limit.
        summary["client_cpu_seconds"] = round(_own_cpu_seconds() - client_before, 1)
        if target.cpu_seconds is not None and server_before is not None:
            summary["server_cpu_seconds"] = round(target.cpu_seconds() - server_before, 1)
        if target.peak_memory is not None:
            summary["server_peak_memory_mb"] = target.peak_memory()
        results[scenario] = summary
    return results


def _own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _run_scenario(target: Target, plan: DataSetPlan, scenario: str, options: Options) -> dict[str, Any]:
    if scenario == "stow":
        return await measure_stow(target, plan, options)
    readers: dict[str, tuple[Callable[[DataSetPlan, int], Iterator[Request]], int]] = {
        "qido": (qido_requests, options.max_qido_requests),
        "metadata": (study_metadata_requests, 100_000),
        "wado": (study_retrieve_requests, 100_000),
        "frames": (frame_requests, 1_000_000),
    }
    if scenario not in readers:
        raise ValueError(f"unknown scenario {scenario!r}; use {', '.join(SCENARIOS)}")
    make_requests, max_requests = readers[scenario]
    return await measure_reads(
        target,
        make_requests(plan, options.seed),
        options,
        max_requests,
        count_json_results if scenario == "qido" else None,
    )


async def measure_stow(target: Target, plan: DataSetPlan, options: Options) -> dict[str, Any]:
    """Store every instance of the plan with STOW-RS from ``stow_clients`` concurrent clients."""
    requests = stow_requests(plan, options.instances_per_request)
    async with http_client(target, options.stow_clients) as client:
        run = await run_requests(
            client,
            iter(requests),
            clients=options.stow_clients,
            max_requests=len(requests),
            max_seconds=3600,
            count_results=count_stored_instances,
        )
    summary = run.summary()
    # A 202 response stores some instances of the request and fails others.
    summary["instances_stored"] = sum(outcome.results or 0 for outcome in run.outcomes)
    summary["instances_failed"] = plan.instances - summary["instances_stored"]
    summary["instances_per_request"] = options.instances_per_request
    summary["instance_size_mb"] = round(len(requests[0].content or b"") / requests[0].instances / 1e6, 3)
    return summary


async def measure_reads(
    target: Target,
    requests: Iterator[Request],
    options: Options,
    max_requests: int,
    count_results: Callable[[Request, bytes], int | None] | None,
) -> dict[str, Any]:
    """Warm up, then send requests from ``clients`` loops for at most ``max_seconds``."""
    async with http_client(target, options.clients) as client:
        warm_up = await run_requests(
            client,
            requests,
            clients=1,
            max_requests=WARM_UP_REQUESTS,
            max_seconds=60,
            count_results=count_results,
        )
        run = await run_requests(
            client,
            requests,
            clients=options.clients,
            max_requests=max_requests,
            max_seconds=options.max_seconds,
            count_results=count_results,
        )
    summary = run.summary()
    if warm_up.failures:
        summary["warm_up_failures"] = warm_up.failures[:3]
    return summary
