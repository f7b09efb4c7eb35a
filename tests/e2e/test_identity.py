"""Identity on live servers: the first admin token, open mode, the public paths and the commands.

The commands (org, token, consent, quarantine) run against the data folder or database of a
running server, as an administrator would run them beside it.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.identity import AdminApi, bearer, store, unique
from tests.services import ADMIN_TOKEN_FILE, Backend, ServerProcess, run_command
from tests.testdata import synthetic_ct

TIMEOUT = 60.0


def _cli(server: ServerProcess, backend: Backend, *arguments: str) -> subprocess.CompletedProcess[str]:
    result = run_command(list(arguments), backend, server.data_dir)
    assert result.returncode == 0, (arguments, result.stdout, result.stderr)
    return result


def _last_line(result: subprocess.CompletedProcess[str]) -> str:
    return result.stdout.strip().splitlines()[-1]


def _search(server: ServerProcess, headers: dict[str, str], patient_id: str) -> httpx.Response:
    return httpx.get(
        f"{server.dicomweb}/studies", params={"PatientID": patient_id}, headers=headers, timeout=TIMEOUT
    )


def test_first_start_writes_admin_token(server_factory: Callable[..., ServerProcess]) -> None:
    started = server_factory()
    token_file = started.data_dir / ADMIN_TOKEN_FILE

    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert f"Admin token: written to {token_file}" in started.log()
    token = token_file.read_text().strip()
    assert token.startswith("dwt_")
    assert token not in started.log()
    assert httpx.get(f"{started.dicomweb}/studies", headers=bearer(token), timeout=TIMEOUT).status_code == 200


def test_data_folder_owner_only(
    server_factory: Callable[..., ServerProcess], backend: Backend, patient_id: str
) -> None:
    started = server_factory()
    assert store(started, synthetic_ct(patient_id)).status_code == 200
    # The test harness created the folder with the test's umask, so it stays as it is, with a warning.
    assert f"other users may read the data folder {started.data_dir} (mode 755)" in started.log()

    created = [path for path in started.data_dir.rglob("*") if not path.name.startswith("server-")]
    files = [path for path in created if path.is_file()]
    assert any(path.suffix == ".dcm" for path in files) or backend.name == "scale"
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    for path in created:
        if path.is_dir():
            assert stat.S_IMODE(path.stat().st_mode) == 0o700, path


def test_data_folder_created_owner_only(tmp_path: Path) -> None:
    # The default folder is tightened when it exists; a folder named in the settings is created 0700.
    default = tmp_path / "xdg" / "dicomweb-server"
    default.mkdir(parents=True, mode=0o755)
    default.chmod(0o755)
    named = tmp_path / "new" / "data"
    environment = {name: value for name, value in os.environ.items() if not name.startswith("DICOMWEB_")}
    for extra in ({"XDG_DATA_HOME": str(tmp_path / "xdg")}, {"DICOMWEB_DATA_DIR": str(named)}):
        result = subprocess.run(
            [sys.executable, "-m", "dicomweb_server", "migrate"],
            env={**environment, **extra},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, result.stderr
    for folder in (default, named):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
        assert stat.S_IMODE((folder / "index.sqlite3").stat().st_mode) == 0o600, folder


def test_second_start_keeps_admin_token(server_factory: Callable[..., ServerProcess], tmp_path: Path) -> None:
    first = server_factory(data_dir=tmp_path / "data")
    token = (first.data_dir / ADMIN_TOKEN_FILE).read_text()
    first.stop()

    second = server_factory(data_dir=tmp_path / "data")
    assert (second.data_dir / ADMIN_TOKEN_FILE).read_text() == token
    assert f"Admin token: in {second.data_dir / ADMIN_TOKEN_FILE}" in second.log()


def test_bootstrap_disabled_writes_no_token(server_factory: Callable[..., ServerProcess]) -> None:
    started = server_factory({"DICOMWEB_BOOTSTRAP_ADMIN_TOKEN": "false"})
    assert not (started.data_dir / ADMIN_TOKEN_FILE).exists()
    assert httpx.get(f"{started.dicomweb}/studies", timeout=TIMEOUT).status_code == 401


def test_open_mode_serves_without_token(server_factory: Callable[..., ServerProcess]) -> None:
    # This test checks behaviour without credentials on purpose.
    started = server_factory({"DICOMWEB_OPEN": "true"})
    assert httpx.get(f"{started.dicomweb}/studies", timeout=TIMEOUT).status_code == 200
    assert "open mode" in started.log()
    refused = httpx.get(f"{started.dicomweb}/studies", headers=bearer("dwt_000000000000_x"), timeout=TIMEOUT)
    assert refused.status_code == 401


def test_open_mode_needs_loopback(server: ServerProcess, backend: Backend) -> None:
    result = run_command(
        ["check-config"],
        backend,
        server.data_dir,
        {"DICOMWEB_HOST": "0.0.0.0", "DICOMWEB_OPEN": "true"},  # noqa: S104
    )
    assert result.returncode == 2
    assert "with open=true" in result.stderr


def test_open_mode_only_for_local_requests(server_factory: Callable[..., ServerProcess]) -> None:
    # These requests carry no credentials on purpose: open mode must tell them apart.
    started = server_factory({"DICOMWEB_OPEN": "true", "DICOMWEB_CORS_ORIGINS": "http://localhost:3000"})
    port = started.url.rsplit(":", 1)[1]
    body = {"organisation": "archive", "scopes": ["admin", "read"]}
    refused = [
        ({"Host": f"attacker.example:{port}", "Origin": f"http://attacker.example:{port}"}, "Host"),
        ({"Host": "127.0.0.1.attacker.example"}, "Host"),
        ({"Forwarded": "for=203.0.113.9;proto=http"}, "forwarded"),
        ({"X-Forwarded-For": "203.0.113.9"}, "x-forwarded-for"),
        ({"Origin": "http://evil.example"}, "'http://evil.example'"),
    ]
    for headers, named in refused:
        response = httpx.post(f"{started.url}/admin/api/tokens", json=body, headers=headers, timeout=TIMEOUT)
        assert response.status_code == 401, (headers, response.text)
        assert named in response.json()["message"], headers
        assert httpx.get(f"{started.dicomweb}/studies", headers=headers, timeout=TIMEOUT).status_code == 401

    for host in (f"localhost:{port}", f"127.0.0.1:{port}", "LOCALHOST", "[::1]:80"):
        response = httpx.get(f"{started.dicomweb}/studies", headers={"Host": host}, timeout=TIMEOUT)
        assert response.status_code == 200, (host, response.text)
    listed = httpx.get(
        f"{started.dicomweb}/studies", headers={"Origin": "http://localhost:3000"}, timeout=TIMEOUT
    )
    assert listed.status_code == 200


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ({"DICOMWEB_TRUSTED_PROXIES": "127.0.0.1"}, "trusted_proxies"),
        ({"DICOMWEB_PUBLIC_BASE_URL": "https://pacs.example.org"}, "public_base_url"),
    ],
)
def test_open_mode_refuses_proxy_settings(
    server: ServerProcess, backend: Backend, extra: dict[str, str], named: str
) -> None:
    result = run_command(["check-config"], backend, server.data_dir, {"DICOMWEB_OPEN": "true", **extra})
    assert result.returncode == 2
    assert f"invalid open=true with {named} set" in result.stderr


def test_any_host_allowed_without_open(server: ServerProcess, backend: Backend) -> None:
    # check-config validates the settings and opens the index and store; it listens on nothing.
    result = run_command(["check-config"], backend, server.data_dir, {"DICOMWEB_HOST": "0.0.0.0"})  # noqa: S104
    assert result.returncode == 0, result.stderr


def test_public_paths_need_no_token(server: ServerProcess) -> None:
    # These requests carry no credentials on purpose.
    assert httpx.get(f"{server.url}/healthz", timeout=TIMEOUT).status_code == 200
    capabilities = httpx.request("OPTIONS", f"{server.dicomweb}/", timeout=TIMEOUT)
    assert capabilities.status_code == 200
    assert b"<application" in capabilities.content


def test_cors_preflight_needs_no_token(server_factory: Callable[..., ServerProcess]) -> None:
    started = server_factory({"DICOMWEB_CORS_ORIGINS": "https://viewer.example.org"})
    preflight = httpx.request(
        "OPTIONS",
        f"{started.dicomweb}/studies",
        headers={
            "Origin": "https://viewer.example.org",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "Authorization",
        },
        timeout=TIMEOUT,
    )
    assert preflight.status_code == 200
    refused = httpx.get(
        f"{started.dicomweb}/studies", headers={"Origin": "https://viewer.example.org"}, timeout=TIMEOUT
    )
    assert refused.status_code == 401
    assert refused.headers["access-control-allow-origin"] == "https://viewer.example.org"


def test_basic_authorization_rejected(server: ServerProcess) -> None:
    response = httpx.get(
        f"{server.dicomweb}/studies", headers={"Authorization": "Basic YTpi"}, timeout=TIMEOUT
    )
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="dicomweb"'
    assert response.json()["status"] == 401


def test_cli_token_lifecycle(server: ServerProcess, backend: Backend) -> None:
    organisation = unique("CLI Clinic")
    _cli(server, backend, "org", "add", organisation, "--external")
    created = _cli(server, backend, "token", "create", "--org", organisation, "--scope", "read,store")
    token = _last_line(created)
    assert token.startswith("dwt_")
    assert _search(server, bearer(token), "NOBODY").status_code == 200

    listed = _cli(server, backend, "token", "list", "--org", organisation).stdout
    token_id = token.split("_")[1]
    assert token_id in listed
    assert token not in listed

    _cli(server, backend, "token", "revoke", token_id)
    assert _search(server, bearer(token), "NOBODY").status_code == 401


def test_cli_token_expiry_date(server: ServerProcess, backend: Backend) -> None:
    organisation = unique("CLI Expiry")
    _cli(server, backend, "org", "add", organisation, "--affiliated")
    created = _cli(
        server,
        backend,
        "token",
        "create",
        "--org",
        organisation,
        "--scope",
        "read",
        "--expires",
        "2099-12-31",
    )
    assert "It expires at 2100-01-01T00:00:00+00:00 (UTC)." in created.stdout


def test_cli_rejects_admin_for_external(server: ServerProcess, backend: Backend) -> None:
    organisation = unique("CLI External")
    _cli(server, backend, "org", "add", organisation, "--external")
    result = run_command(
        ["token", "create", "--org", organisation, "--scope", "admin"], backend, server.data_dir
    )
    assert result.returncode == 1
    assert "cannot hold the admin scope" in result.stderr


def test_cli_deleted_organisation_token_stops(server: ServerProcess, backend: Backend) -> None:
    organisation = unique("CLI Deleted")
    _cli(server, backend, "org", "add", organisation, "--external")
    token = _last_line(_cli(server, backend, "token", "create", "--org", organisation, "--scope", "read"))
    _cli(server, backend, "org", "delete", organisation)
    assert _search(server, bearer(token), "NOBODY").status_code == 401
    assert organisation not in _cli(server, backend, "org", "list").stdout


def test_cli_consent_lifecycle(server: ServerProcess, backend: Backend, patient_id: str) -> None:
    organisation = unique("CLI Consent")
    _cli(server, backend, "org", "add", organisation, "--external")
    token = bearer(
        _last_line(_cli(server, backend, "token", "create", "--org", organisation, "--scope", "read"))
    )
    dataset = synthetic_ct(patient_id, study_date="20240301")
    assert store(server, dataset).status_code == 200
    assert _search(server, token, patient_id).json() == []

    granted = _cli(
        server, backend, "consent", "grant", "--patient-id", patient_id, "--org", organisation,
        "--study", dataset.StudyInstanceUID, "--until", "2099-01-31",
        "--purpose", "second opinion", "--reference", "binder 7, page 3",
    )  # fmt: skip
    authorization_id = _last_line(granted)
    assert "chosen by the patient" in granted.stdout
    assert [item["0020000D"]["Value"][0] for item in _search(server, token, patient_id).json()] == [
        dataset.StudyInstanceUID
    ]

    listed = _cli(server, backend, "consent", "list", "--patient-id", patient_id).stdout
    assert authorization_id in listed
    assert "active" in listed
    shown = _cli(server, backend, "consent", "show", authorization_id).stdout
    assert '"reference": "binder 7, page 3"' in shown
    assert '"ends_at": "2099-02-01T00:00:00.000000Z"' in shown

    _cli(server, backend, "consent", "revoke", authorization_id, "--reason", "patient wrote to revoke")
    assert _search(server, token, patient_id).json() == []
    assert "revoked" in _cli(server, backend, "consent", "list", "--patient-id", patient_id).stdout


def test_cli_consent_rejects_bad_date(server: ServerProcess, backend: Backend, patient_id: str) -> None:
    result = run_command(
        ["consent", "grant", "--patient-id", patient_id, "--any-external", "--until", "31/01/2099",
         "--purpose", "care", "--reference", "form"],
        backend,
        server.data_dir,
    )  # fmt: skip
    assert result.returncode == 1
    assert "invalid date or time '31/01/2099'" in result.stderr


def test_cli_quarantine_accept_and_reject(
    server: ServerProcess, backend: Backend, admin_api: AdminApi, patient_id: str
) -> None:
    organisation = admin_api.add_organisation(unique("CLI Sender"), affiliated=False)
    sender = admin_api.token_headers(organisation, "store")
    kept, dropped = synthetic_ct(patient_id), synthetic_ct(patient_id)
    for dataset in (kept, dropped):
        assert store(server, dataset, sender).status_code == 200
    listed = _cli(server, backend, "quarantine", "list", "--org", organisation).stdout
    held = {item["sop_instance_uid"]: item["id"] for item in admin_api.quarantine(organisation=organisation)}
    assert set(held.values()) <= set(listed.split())

    _cli(server, backend, "quarantine", "accept", held[kept.SOPInstanceUID], "--note", "checked")
    _cli(server, backend, "quarantine", "reject", held[dropped.SOPInstanceUID])
    found = _search(server, server.headers, patient_id).json()
    assert [item["0020000D"]["Value"][0] for item in found] == [kept.StudyInstanceUID]
    instances = httpx.get(
        f"{server.dicomweb}/studies/{kept.StudyInstanceUID}/instances",
        headers=server.headers,
        timeout=TIMEOUT,
    ).json()
    assert [item["00080018"]["Value"][0] for item in instances] == [kept.SOPInstanceUID]
    assert admin_api.quarantine(organisation=organisation) == []


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"DICOMWEB_TIME_ZONE": "Mars/Olympus"}, "invalid time_zone"),
        ({"DICOMWEB_EMERGENCY_ACCESS_MINUTES": "2000"}, "invalid emergency_access_minutes"),
        ({"DICOMWEB_OIDC_ISSUER": "https://idp.test"}, "incomplete OIDC settings"),
    ],
)
def test_identity_settings_checked(
    server: ServerProcess, backend: Backend, extra: dict[str, str], message: str
) -> None:
    result = run_command(["check-config"], backend, server.data_dir, extra)
    assert result.returncode == 2
    assert message in result.stderr
