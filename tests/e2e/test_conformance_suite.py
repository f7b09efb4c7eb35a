"""The DICOMweb conformance suite, run as ``python -m conformance`` against a live server per backend.

Every check must pass, recommended ones included, so a change that breaks any behaviour the
conformance statement promises fails here. The CORS checks need a server that allows an
origin, so they run against a second server started for them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from typing import Any

from tests.services import ServerProcess
from tests.testdata import ROOT, TESTDATA

ORIGIN = "http://viewer.test"
SUITE_TIMEOUT = 240


def _run_suite(
    server: ServerProcess, *arguments: str, base_url: str | None = None
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    command = [
        sys.executable,
        "-m",
        "conformance",
        "--base-url",
        base_url or server.dicomweb,
        "--testdata",
        str(TESTDATA),
        "--json",
        "--strict",
        *arguments,
    ]
    for name, value in server.headers.items():
        command += ["--header", f"{name}: {value}"]
    completed = subprocess.run(
        command, capture_output=True, text=True, timeout=SUITE_TIMEOUT, cwd=ROOT, check=False
    )
    assert completed.stdout, completed.stderr
    return completed, json.loads(completed.stdout)


def _with_result(report: dict[str, Any], result: str) -> list[str]:
    return [f"{item['id']}: {item['detail']}" for item in report["checks"] if item["result"] == result]


def test_conformance_suite_passes(server: ServerProcess) -> None:
    completed, report = _run_suite(server)
    failed = _with_result(report, "fail")
    assert failed == [], "\n".join(failed)
    not_applicable = [line for line in _with_result(report, "n/a") if not line.startswith("CORS/")]
    assert not_applicable == [], "\n".join(not_applicable)
    assert report["summary"]["passed"] >= 80
    assert completed.returncode == 0, completed.stderr


def test_conformance_suite_reports_failure(server: ServerProcess) -> None:
    completed, report = _run_suite(
        server, "--select", "10.6.1/studies", base_url=f"{server.url}/not-dicomweb"
    )
    assert completed.returncode == 1
    (result,) = report["checks"]
    assert result["result"] == "fail"
    assert "404" in result["detail"]


def test_conformance_cors_checks_pass(server_factory: Callable[..., ServerProcess]) -> None:
    server = server_factory({"DICOMWEB_CORS_ORIGINS": ORIGIN})
    completed, report = _run_suite(server, "--origin", ORIGIN, "--select", "CORS/*")
    failed = _with_result(report, "fail")
    assert failed == [], "\n".join(failed)
    not_applicable = _with_result(report, "n/a")
    assert not_applicable == [], "\n".join(not_applicable)
    assert report["summary"]["passed"] == len(report["checks"]) >= 5
    assert completed.returncode == 0, completed.stderr
