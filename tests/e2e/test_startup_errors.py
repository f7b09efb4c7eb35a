"""`serve` stops at start, naming the setting to fix, when the index or the object store is unusable.

Each test runs `dicomweb-server serve` with one wrong setting; a server that started listening
instead would run until the command's timeout and fail the test.
"""

from __future__ import annotations

import socket
import subprocess
import uuid
from pathlib import Path

import obstore
import pytest
from obstore.store import S3Store

from tests.services import (
    POSTGRES_ADMIN_URL,
    S3_ACCESS_KEY_ID,
    S3_SECRET_ACCESS_KEY,
    Backend,
    SeaweedFS,
    free_port,
    run_command,
    s3_environment,
)

START_TIMEOUT = 90
EMBEDDED = Backend("embedded")


def serve(tmp_path: Path, settings: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return run_command(["serve"], EMBEDDED, tmp_path / "data", settings, timeout=START_TIMEOUT)


def assert_stopped(result: subprocess.CompletedProcess[str], *settings: str) -> None:
    assert result.returncode == 2, result.stderr
    for name in settings:
        assert name in result.stderr, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert "Uvicorn running" not in result.stderr, result.stderr


def test_serve_unreachable_database(tmp_path: Path) -> None:
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/dicomweb"

    result = serve(tmp_path, {"DICOMWEB_INDEX_URL": url})

    assert_stopped(result, "DICOMWEB_INDEX_URL")
    assert "cannot open the index database" in result.stderr


def test_serve_invalid_pool_size(tmp_path: Path) -> None:
    result = serve(tmp_path, {"DICOMWEB_INDEX_POOL_SIZE": "0"})

    assert_stopped(result, "index_pool_size")


def test_serve_unreachable_s3_endpoint(tmp_path: Path) -> None:
    settings = {
        "DICOMWEB_STORE_URL": "s3://dicom/archive",
        "DICOMWEB_S3_ENDPOINT": f"http://127.0.0.1:{free_port()}",
        "DICOMWEB_S3_ACCESS_KEY_ID": S3_ACCESS_KEY_ID,
        "DICOMWEB_S3_SECRET_ACCESS_KEY": S3_SECRET_ACCESS_KEY,
    }

    result = serve(tmp_path, settings)

    assert_stopped(result, "DICOMWEB_S3_ENDPOINT")
    assert "cannot be reached" in result.stderr


def test_serve_unwritable_objects_folder(tmp_path: Path) -> None:
    # A folder below a regular file cannot be made, even by root.
    blocker = tmp_path / "blocker"
    blocker.write_text("not a folder")

    result = serve(tmp_path, {"DICOMWEB_STORE_URL": f"file://{blocker}/objects"})

    assert_stopped(result, "DICOMWEB_STORE_URL")
    assert "cannot be written" in result.stderr


@pytest.mark.scale_only
def test_serve_missing_database(tmp_path: Path) -> None:
    url = f"{POSTGRES_ADMIN_URL.rsplit('/', 1)[0]}/dicomweb_missing_{uuid.uuid4().hex[:8]}"

    result = serve(tmp_path, {"DICOMWEB_INDEX_URL": url})

    assert_stopped(result, "DICOMWEB_INDEX_URL")
    assert "does not exist" in result.stderr


@pytest.mark.scale_only
def test_serve_database_without_schema(scale_backend: Backend, tmp_path: Path) -> None:
    result = serve(tmp_path, scale_backend.environment)

    assert_stopped(result, "dicomweb-server migrate")
    assert "has no schema" in result.stderr


@pytest.mark.scale_only
def test_serve_missing_bucket(seaweedfs_service: SeaweedFS, tmp_path: Path) -> None:
    bucket = f"missing-{uuid.uuid4().hex[:8]}"
    settings = {
        **s3_environment(seaweedfs_service, "archive"),
        "DICOMWEB_STORE_URL": f"s3://{bucket}/archive",
    }

    result = serve(tmp_path, settings)

    assert_stopped(result, "DICOMWEB_STORE_URL")
    assert "does not exist" in result.stderr
    # SeaweedFS creates a bucket on the first write; the check must not have written.
    assert bucket_exists(seaweedfs_service, bucket) is False


@pytest.mark.scale_only
def test_serve_unknown_access_key(seaweedfs_service: SeaweedFS, tmp_path: Path) -> None:
    settings = {**s3_environment(seaweedfs_service, "archive"), "DICOMWEB_S3_ACCESS_KEY_ID": "nobody"}

    result = serve(tmp_path, settings)

    assert_stopped(result, "DICOMWEB_S3_ACCESS_KEY_ID")


@pytest.mark.scale_only
def test_serve_wrong_secret_key(seaweedfs_service: SeaweedFS, tmp_path: Path) -> None:
    wrong_secret = f"wrong-{uuid.uuid4().hex}"
    settings = {**s3_environment(seaweedfs_service, "archive"), "DICOMWEB_S3_SECRET_ACCESS_KEY": wrong_secret}

    result = serve(tmp_path, settings)

    assert_stopped(result, "DICOMWEB_S3_SECRET_ACCESS_KEY")
    assert wrong_secret not in result.stderr


def bucket_exists(service: SeaweedFS, bucket: str) -> bool:
    store = S3Store(
        bucket,
        config={
            "endpoint": service.endpoint,
            "region": "us-east-1",
            "access_key_id": S3_ACCESS_KEY_ID,
            "secret_access_key": S3_SECRET_ACCESS_KEY,
        },
        client_options={"allow_http": True},
        virtual_hosted_style_request=False,
    )
    try:
        obstore.list_with_delimiter(store)
    except Exception as error:  # noqa: BLE001 - obstore reports a missing bucket as a generic error
        if "NoSuchBucket" in str(error):
            return False
        raise
    return True


def test_serve_port_in_use(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = str(taken.getsockname()[1])

        result = serve(tmp_path, {"DICOMWEB_PORT": port})

    assert_stopped(result, "--port", "DICOMWEB_PORT", f"port {port} on 127.0.0.1 is in use")
    assert "DICOMweb root" not in result.stderr
    assert "Admin token" not in result.stderr
    assert not (tmp_path / "data" / "admin-token").exists()
