"""What the commands print: help with defaults, effective places, times, deleted recipients, refusals."""

from __future__ import annotations

import re
import subprocess

from tests.identity import unique
from tests.services import ADMIN_TOKEN_FILE, Archive, Backend, ServerProcess, run_command


def _run(server: ServerProcess, backend: Backend, *arguments: str) -> subprocess.CompletedProcess[str]:
    return run_command(list(arguments), backend, server.data_dir)


def _ok(server: ServerProcess, backend: Backend, *arguments: str) -> subprocess.CompletedProcess[str]:
    result = _run(server, backend, *arguments)
    assert result.returncode == 0, (arguments, result.stdout, result.stderr)
    return result


def test_cli_far_future_dates_rejected(server: ServerProcess, backend: Backend, patient_id: str) -> None:
    organisation = unique("CLI Far Future")
    _ok(server, backend, "org", "add", organisation, "--external")
    commands = [
        ("token", "create", "--org", organisation, "--scope", "read", "--expires", "9999-12-31"),
        ("consent", "grant", "--patient-id", patient_id, "--org", organisation, "--purpose", "p")
        + ("--reference", "r", "--until", "9999-12-31"),
    ]
    for arguments in commands:
        result = _run(server, backend, *arguments)
        assert result.returncode == 1, (arguments, result.stderr)
        assert "the latest date accepted is 9998-12-31" in result.stderr
        assert "Traceback" not in result.stderr


def test_cli_help_shows_defaults(server: ServerProcess, backend: Backend) -> None:
    serve_help = _ok(server, backend, "serve", "--help").stdout
    assert re.search(r"--workers WORKERS\s+server processes", serve_help)
    assert "(default: 1; DICOMWEB_WORKERS)" in re.sub(r"\s+", " ", serve_help)
    assert "(default: 60; DICOMWEB_BODY_READ_TIMEOUT)" in re.sub(r"\s+", " ", serve_help)

    revoke_help = _ok(server, backend, "token", "revoke", "--help").stdout
    assert "--data-dir" in revoke_help
    assert "--index-url" in revoke_help
    for server_only in ("--workers", "--cors-origins", "--oidc-issuer", "--max-part-size"):
        assert server_only not in revoke_help, server_only
    assert revoke_help.index("positional arguments") < revoke_help.index("settings:")


def test_cli_server_options_accepted_by_records(server: ServerProcess, backend: Backend) -> None:
    # Options the help leaves out still work, so one set of options fits every command.
    listed = _ok(server, backend, "org", "list", "--workers", "2", "--cors-origins", "http://a.example")
    assert "NAME" in listed.stdout


def test_check_config_prints_effective_places(server: ServerProcess, backend: Backend) -> None:
    printed = _ok(server, backend, "check-config").stdout
    if backend.name == "embedded":
        index = f"sqlite:///{server.data_dir / 'index.sqlite3'}"
        assert f"index_url = {index} (unset: SQLite in the data folder)" in printed
        assert f"store_url = {server.data_dir / 'objects'} (unset: the objects folder" in printed
        assert (
            f"The index ({index}) and the object store ({server.data_dir / 'objects'}) are usable." in printed
        )
    else:
        assert "index_url = postgresql://" in printed
        assert "The index (postgresql://" in printed
    assert "= None" not in printed
    assert f"spool_dir = {server.data_dir / 'tmp'} (unset: tmp in the data folder)" in printed


def test_cli_consent_times_and_deleted_recipient(
    server: ServerProcess, backend: Backend, patient_id: str
) -> None:
    organisation = unique("CLI Deleted Recipient")
    _ok(server, backend, "org", "add", organisation, "--external")
    granted = _ok(
        server,
        backend,
        *("consent", "grant", "--patient-id", patient_id, "--org", organisation),
        *("--purpose", "p", "--reference", "r", "--from", "2026-01-05", "--until", "2027-02-01"),
    ).stdout
    starts = re.search(r"It starts at (\S+ \(\S+\))", granted)
    ends = re.search(r"and ends at (\S+ \(\S+\))", granted)
    assert starts is not None and ends is not None, granted

    listed = _ok(server, backend, "consent", "list", "--patient-id", patient_id).stdout
    assert starts.group(1) in listed
    assert ends.group(1) in listed
    assert "deleted" not in listed

    _ok(server, backend, "org", "delete", organisation)
    _ok(server, backend, "org", "add", organisation, "--external")
    relisted = _ok(server, backend, "consent", "list", "--patient-id", patient_id).stdout
    assert re.search(rf"'{re.escape(organisation)}' \(deleted \S+; receives nothing\)", relisted), relisted


def test_cli_sweep_grace_period_as_written(server: ServerProcess, backend: Backend) -> None:
    swept = _ok(server, backend, "sweep", "--dry-run", "--grace-period", "36h")
    assert "older than 36h." in swept.stdout


def test_cli_org_delete_admin_token_holder_needs_force(server: ServerProcess, backend: Backend) -> None:
    refused = _run(server, backend, "org", "delete", "archive")
    assert refused.returncode == 1
    assert f"holds the admin token in {server.data_dir / ADMIN_TOKEN_FILE}" in refused.stderr
    assert "--force" in refused.stderr
    assert "archive" in _ok(server, backend, "org", "list").stdout


def test_cli_org_delete_admin_token_holder_forced(archive: Archive) -> None:
    server = archive.start()
    token_file = server.data_dir / ADMIN_TOKEN_FILE

    deleted = archive.run(["org", "delete", "archive", "--force"])

    assert deleted.returncode == 0, deleted.stderr
    assert f"The admin token in {token_file} no longer works" in deleted.stdout


def test_cli_decline_errors_name_options(server: ServerProcess, backend: Backend, patient_id: str) -> None:
    cases = [
        (("--patient-id", " ", "--reference", "r"), "missing --patient-id"),
        (("--patient-id", patient_id, "--reference", " "), "missing --reference (where the signed refusal"),
        (("--patient-id", patient_id, "--reference", "r", "--at", "2099-01-01"), "invalid --at 2099-01-01"),
    ]
    for options, expected in cases:
        result = _run(server, backend, "consent", "decline", *options)
        assert result.returncode == 1, (options, result.stderr)
        assert expected in result.stderr
