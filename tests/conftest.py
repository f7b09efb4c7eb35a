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

from tests.identity import AdminApi
from tests.services import (
    Archive,
    Backend,
    ServerProcess,
    own_scale_backend,
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


SCALE_ONLY = "scale_only"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{SCALE_ONLY}: tests that need PostgreSQL and S3 (replicas, crashes); run once"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect (not skip) the scale-only tests when DICOMWEB_TEST_BACKENDS leaves out "scale"."""
    if "scale" in BACKENDS:
        return
    deselected = [item for item in items if item.get_closest_marker(SCALE_ONLY)]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if not item.get_closest_marker(SCALE_ONLY)]


@pytest.fixture
def fresh_backend(backend: Backend, request: pytest.FixtureRequest) -> Iterator[Backend]:
    """The session's kind of backend with an index and a store of this test's own, not migrated.

    Embedded: the SQLite file and objects folder live in each data folder. Scale: a new
    PostgreSQL database and a new key prefix in the session's SeaweedFS bucket.
    """
    if backend.name == "embedded":
        yield Backend("embedded")
        return
    with own_scale_backend(request.getfixturevalue("seaweedfs_service")) as own:
        yield own


@pytest.fixture
def scale_backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    """A PostgreSQL database and an S3 prefix of this test's own, not migrated (scale-only tests)."""
    with own_scale_backend(request.getfixturevalue("seaweedfs_service")) as own:
        yield own


def _archive(backend: Backend, folder: Path) -> Iterator[Archive]:
    archive = Archive(backend, folder / "data", backend.environment.get("DICOMWEB_INDEX_URL"))
    result = archive.run(["migrate"])
    assert result.returncode == 0, result.stderr
    yield archive
    archive.stop_all()


@pytest.fixture
def archive(fresh_backend: Backend, tmp_path: Path) -> Iterator[Archive]:
    """A migrated index and store of this test's own on the session's kind of backend."""
    yield from _archive(fresh_backend, tmp_path)


@pytest.fixture
def scale_archive(scale_backend: Backend, tmp_path: Path) -> Iterator[Archive]:
    """A migrated PostgreSQL index and S3 prefix of this test's own (scale-only tests)."""
    yield from _archive(scale_backend, tmp_path)


@pytest.fixture(scope="session")
def admin_api(server: ServerProcess) -> Iterator[AdminApi]:
    """The admin API of the session's server, for making organisations, tokens and authorizations."""
    api = AdminApi(server)
    yield api
    api.close()
