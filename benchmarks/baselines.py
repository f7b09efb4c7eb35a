"""Baselines of the machine itself: durable file writes, and downloads from a trivial HTTP server.

These bound what the archive can reach on the same machine. Ingest that keeps every acknowledged
instance durable cannot beat the fsync'd write rate, and retrieval cannot beat what the same HTTP
client reads from a server that only sends bytes from memory.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.measure import Request, run_requests
from benchmarks.suite import Options, Target, http_client
from tests.services import free_port, wait_for

FILE_SIZE = 512 * 1024 + 4 * 1024
"""About the size of one synthetic CT instance of the STOW-RS data set."""

LOOPBACK_BODY_SIZE = 24 * 1024 * 1024
"""About the size of one 45-instance study of the STOW-RS data set."""

LOOPBACK_CHUNK_SIZE = 1024 * 1024


def measure_file_writes(folder: Path, files: int = 400) -> dict[str, Any]:
    """Write ``files`` files of one instance's size, each fsync'd, then all fsync'd after the last write."""
    folder.mkdir(parents=True, exist_ok=True)
    data = os.urandom(FILE_SIZE)
    try:
        fsync_each = _write_files(folder / "each", data, files, sync_each=True)
        sync_once = _write_files(folder / "once", data, files, sync_each=False)
    finally:
        for path in folder.glob("*/*"):
            path.unlink()
    megabytes = files * FILE_SIZE / 1e6
    return {
        "files": files,
        "file_size_mb": round(FILE_SIZE / 1e6, 3),
        "fsync_each_mb_per_second": round(megabytes / fsync_each, 1),
        "fsync_each_files_per_second": round(files / fsync_each, 1),
        "write_then_sync_mb_per_second": round(megabytes / sync_once, 1),
    }


def _write_files(folder: Path, data: bytes, files: int, *, sync_each: bool) -> float:
    folder.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    for number in range(files):
        with (folder / f"{number}.dcm").open("wb") as file:
            file.write(data)
            if sync_each:
                file.flush()
                os.fsync(file.fileno())
    if not sync_each:
        # Each file is synced on its own, because os.sync() would also wait for other programs' writes.
        for number in range(files):
            _fsync_path(folder / f"{number}.dcm", os.O_WRONLY)
    _fsync_path(folder, os.O_RDONLY)
    return time.perf_counter() - started


def _fsync_path(path: Path, flags: int) -> None:
    descriptor = os.open(path, flags)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


async def loopback_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Send LOOPBACK_BODY_SIZE bytes from memory in 1 MiB chunks, whatever the request."""
    if scope["type"] != "http":
        return
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/octet-stream"),
                (b"content-length", str(LOOPBACK_BODY_SIZE).encode()),
            ],
        }
    )
    for _ in range(LOOPBACK_BODY_SIZE // LOOPBACK_CHUNK_SIZE - 1):
        await send({"type": "http.response.body", "body": _CHUNK, "more_body": True})
    await send({"type": "http.response.body", "body": _CHUNK, "more_body": False})


_CHUNK = bytes(LOOPBACK_CHUNK_SIZE)


def measure_loopback_http(options: Options) -> dict[str, Any]:
    """Download from :func:`loopback_app` under uvicorn on 127.0.0.1 with the harness's HTTP client."""
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "benchmarks.baselines:loopback_app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-access-log",
            "--log-level",
            "warning",
        ],
    )
    try:
        wait_for(f"http://127.0.0.1:{port}/", 30, process)
        target = Target(f"http://127.0.0.1:{port}/")
        summary = asyncio.run(_download(target, options))
        if shutil.which("curl"):
            summary["curl_one_client_mb_per_second"] = _download_with_curl(f"http://127.0.0.1:{port}/blob")
        return summary
    finally:
        process.terminate()
        process.wait(30)


def _download_with_curl(url: str, downloads: int = 20) -> float:
    """Download ``url`` with curl one request after another; curl's client costs less CPU than httpx's."""
    received = 0
    seconds = 0.0
    for _ in range(downloads):
        output = subprocess.run(
            [
                "curl",
                "--silent",
                "--output",
                "/dev/null",
                "--write-out",
                "%{size_download} %{time_total}",
                url,
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout
        size, elapsed = output.split()
        received += int(size)
        seconds += float(elapsed)
    return round(received / 1e6 / seconds, 1)


async def _download(target: Target, options: Options) -> dict[str, Any]:
    requests = itertools.repeat(Request(kind="download", method="GET", path="blob"))
    async with http_client(target, options.clients) as client:
        run = await run_requests(
            client,
            requests,
            clients=options.clients,
            max_requests=100_000,
            max_seconds=min(options.max_seconds, 15),
        )
    return run.summary()
