"""The log of decode failures: one WARNING line per failure and interval, repeats counted."""

from __future__ import annotations

import logging

import pytest

from dicomweb_server.web.decode_failures import DecodeFailureLog


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _decoder_error() -> ValueError:
    try:
        try:
            raise RuntimeError("Error decoding the J2K data")
        except RuntimeError as cause:
            raise ValueError("the frame cannot be decoded") from cause
    except ValueError as error:
        return error


def _lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name == "dicomweb_server.web.decode_failures"]


def test_decode_failure_repeats_counted(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    failures = DecodeFailureLog(interval=600.0, clock=clock)
    with caplog.at_level(logging.WARNING):
        for _ in range(5):
            failures.report("WADO-RS rendered", 42, _decoder_error())
        clock.now = 601.0
        failures.report("WADO-RS rendered", 42, _decoder_error())

    first, second = _lines(caplog)
    assert first.levelno == logging.WARNING
    assert first.getMessage() == (
        "WADO-RS rendered: cannot decode instance 42 (RuntimeError); "
        "0 more failure(s) of it since the previous line"
    )
    assert "; 4 more failure(s)" in second.getMessage()
    assert first.exc_info is None


def test_decode_failure_routes_and_instances_apart(caplog: pytest.LogCaptureFixture) -> None:
    failures = DecodeFailureLog(clock=Clock())
    with caplog.at_level(logging.WARNING):
        failures.report("WADO-RS rendered", 1, _decoder_error())
        failures.report("WADO-RS frames", 1, _decoder_error())
        failures.report("WADO-RS rendered", 2, _decoder_error())
        failures.report("WADO-RS rendered", 2, KeyError("x"))
    assert len(_lines(caplog)) == 4
