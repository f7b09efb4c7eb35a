"""Timed HTTP requests from concurrent clients, and the figures computed from them."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

import httpx

READ_CHUNK_SIZE = 1024 * 1024


@dataclass(frozen=True)
class Request:
    """One request of a scenario; ``kind`` groups requests whose latencies are reported together."""

    kind: str
    method: str
    path: str
    params: dict[str, str] | None = None
    headers: dict[str, str] | None = None
    content: bytes | None = None
    instances: int = 0
    """Instances the request stores or retrieves, for instances-per-second figures."""


@dataclass
class Outcome:
    kind: str
    seconds: float
    status: int
    received: int
    sent: int
    instances: int
    results: int | None = None


@dataclass
class Run:
    """Every outcome of one scenario, and the wall-clock time it took."""

    outcomes: list[Outcome] = field(default_factory=list)
    seconds: float = 0.0
    clients: int = 0
    failures: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """Return counts, rates and latency percentiles, overall and per kind of request."""
        summary = _summarize(self.outcomes, self.seconds)
        summary["clients"] = self.clients
        summary["failures"] = len(self.failures)
        summary["failure_examples"] = self.failures[:5]
        kinds = sorted({outcome.kind for outcome in self.outcomes})
        if len(kinds) > 1:
            summary["by_kind"] = {
                kind: _summarize([o for o in self.outcomes if o.kind == kind], self.seconds) for kind in kinds
            }
        return summary


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Return the nearest-rank percentile of values sorted in increasing order."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


def _summarize(outcomes: list[Outcome], seconds: float) -> dict[str, Any]:
    latencies = sorted(outcome.seconds for outcome in outcomes)
    received = sum(outcome.received for outcome in outcomes)
    sent = sum(outcome.sent for outcome in outcomes)
    instances = sum(outcome.instances for outcome in outcomes)
    results = [outcome.results for outcome in outcomes if outcome.results is not None]
    summary: dict[str, Any] = {
        "requests": len(outcomes),
        "seconds": round(seconds, 3),
        "requests_per_second": round(len(outcomes) / seconds, 2) if seconds else None,
        "median_ms": round(percentile(latencies, 0.5) * 1000, 2),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 2),
        "max_ms": round(latencies[-1] * 1000, 2) if latencies else None,
        "received_mb": round(received / 1e6, 2),
        "sent_mb": round(sent / 1e6, 2),
        "mb_per_second": round((received + sent) / 1e6 / seconds, 1) if seconds else None,
    }
    if instances:
        summary["instances"] = instances
        summary["instances_per_second"] = round(instances / seconds, 1) if seconds else None
    if results:
        summary["mean_results"] = round(sum(results) / len(results), 1)
    return summary


async def run_requests(
    client: httpx.AsyncClient,
    requests: Iterator[Request],
    *,
    clients: int,
    max_requests: int,
    max_seconds: float,
    count_results: Callable[[Request, bytes], int | None] | None = None,
) -> Run:
    """Send requests from ``clients`` concurrent loops until ``max_requests`` or ``max_seconds``.

    Each loop sends its next request as soon as the previous response is read to the end, so
    latency includes the whole body. A response other than 2xx is kept as a failure and its
    latency is not counted.
    """
    run = Run(clients=clients)
    sent = 0
    deadline = time.perf_counter() + max_seconds

    async def loop() -> None:
        nonlocal sent
        while sent < max_requests and time.perf_counter() < deadline:
            try:
                request = next(requests)
            except StopIteration:
                return
            sent += 1
            outcome, body = await _send(client, request, keep_body=count_results is not None)
            if outcome.status >= 300:
                run.failures.append(f"{request.kind}: HTTP {outcome.status}: {body[:300]!r}")
                continue
            if count_results is not None:
                outcome.results = count_results(request, body)
            run.outcomes.append(outcome)

    started = time.perf_counter()
    await asyncio.gather(*(loop() for _ in range(clients)))
    run.seconds = time.perf_counter() - started
    return run


def _url(request: Request) -> str:
    """Return the path with its query string, leaving ``*`` unescaped as viewers send it.

    httpx would send ``*`` as ``%2A``. Orthanc 1.10 then matches it as a literal character,
    not as a wildcard.
    """
    if not request.params:
        return request.path
    return f"{request.path}?{urlencode(request.params, safe='*', quote_via=quote)}"


async def _send(client: httpx.AsyncClient, request: Request, *, keep_body: bool) -> tuple[Outcome, bytes]:
    started = time.perf_counter()
    received = 0
    chunks: list[bytes] = []
    async with client.stream(
        request.method, _url(request), headers=request.headers, content=request.content
    ) as response:
        async for chunk in response.aiter_raw(READ_CHUNK_SIZE):
            received += len(chunk)
            if keep_body or response.status_code >= 300:
                chunks.append(chunk)
    seconds = time.perf_counter() - started
    outcome = Outcome(
        kind=request.kind,
        seconds=seconds,
        status=response.status_code,
        received=received,
        sent=len(request.content or b""),
        instances=request.instances,
    )
    return outcome, b"".join(chunks)
