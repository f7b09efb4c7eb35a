"""Fixtures shared by the tests: the test data, the backends, and live servers on loopback.

Tests that use the ``server`` fixture run once per backend: "embedded" (SQLite and a local
folder) and "scale" (PostgreSQL and SeaweedFS S3). Set DICOMWEB_TEST_BACKENDS=embedded to run
only the first; otherwise a missing PostgreSQL or SeaweedFS fails the run instead of skipping.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pydicom.config
import pytest
from dicomweb_client.api import DICOMwebClient

from tests.services import (
    Backend,
    ServerProcess,
    postgres_database,
    run_command,
    s3_environment,
    seaweedfs,
    start_server,
)
from tests.testdata import TESTDATA

# The shared test files include real, slightly non-conformant data; the tests read them the way the
# server does, without pydicom's validation warnings (which the test run treats as errors).
pydicom.config.settings.reading_validation_mode = pydicom.config.IGNORE

BACKENDS = [name.strip() for name in os.environ.get("DICOMWEB_TEST_BACKENDS", "embedded,scale").split(",")]


def pytest_report_header(config: pytest.Config) -> str:
    return f"backends: {', '.join(BACKENDS)}; test data: {TESTDATA}"


@pytest.fixture(scope="session")
def seaweedfs_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    with seaweedfs(tmp_path_factory.mktemp("seaweedfs")) as service:
        yield service


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    """The settings of one index and object store pair, with an empty index and store."""
    if request.param == "embedded":
        yield Backend("embedded")
        return
    if request.param != "scale":
        raise ValueError(f"unknown test backend {request.param!r}; use embedded or scale")

    service = request.getfixturevalue("seaweedfs_service")
    with postgres_database() as database_url:
        environment = {
            "DICOMWEB_INDEX_URL": database_url,
            **s3_environment(service, f"run-{uuid.uuid4().hex[:8]}"),
        }
        selected = Backend("scale", environment)
        result = run_command(["migrate"], selected, tmp_path_factory.mktemp("migrate"))
        assert result.returncode == 0, result.stderr
        yield selected


@pytest.fixture(scope="session")
def server(backend: Backend, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server shared by every test of a session on one backend; tests keep to their own UIDs."""
    process = start_server(backend, tmp_path_factory.mktemp(f"server-{backend.name}"))
    yield process
    process.stop()


@pytest.fixture
def client(server: ServerProcess) -> DICOMwebClient:
    return DICOMwebClient(server.dicomweb, headers=dict(server.headers))


@pytest.fixture
def server_factory(backend: Backend, tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """Start extra servers with their own settings, on the session's backend, stopped after the test."""
    started: list[ServerProcess] = []

    def start(extra: dict[str, str] | None = None, data_dir: Path | None = None) -> ServerProcess:
        process = start_server(backend, data_dir or tmp_path / f"data-{len(started)}", extra)
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


@pytest.fixture
def patient_id() -> str:
    """A PatientID no other test uses, so a test can search for exactly its own studies."""
    return f"TEST-{uuid.uuid4().hex[:16]}"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail a run that skipped tests: every backend and service the suite needs must be there."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter else 0
    if skipped and exitstatus == 0:
        reporter.write_line(f"{skipped} test(s) were skipped; the suite allows no skips", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
