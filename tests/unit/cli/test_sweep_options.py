"""Options of `dicomweb-server sweep`: the grace period and the size summary."""

from __future__ import annotations

import argparse
import datetime

import pytest

from dicomweb_server.cli.sweep import Duration, duration_option, format_size, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("0", 0), ("3600", 3600), ("90s", 90), ("30m", 1800), ("24h", 86400), ("7d", 604800), ("1.5h", 5400)],
)
def test_parse_duration_units(text: str, seconds: float) -> None:
    assert parse_duration(text) == datetime.timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "-1", "1w", "h", "1 hour"])
def test_parse_duration_invalid(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="invalid duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (0, "0 bytes"),
        (1023, "1023 bytes"),
        (3000, "2.9 KiB, 3000 bytes"),
        (5 * 1024**3, "5.0 GiB, 5368709120 bytes"),
    ],
)
def test_format_size(size: int, text: str) -> None:
    assert format_size(size) == text


def test_duration_option_keeps_text() -> None:
    assert duration_option(" 7d ") == Duration("7d", datetime.timedelta(days=7))
