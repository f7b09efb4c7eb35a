"""Normalized forms of DA, TM and DT values, so that they compare correctly as text.

Dates become "YYYYMMDD"; times become "HHMMSS.FFFFFF" with missing parts filled in; date-times
become "YYYYMMDDHHMMSS.FFFFFF" with any UTC offset dropped. The index stores these forms, and
QIDO range bounds are normalized the same way, so a range is two text comparisons.
"""

from __future__ import annotations

import re
from enum import Enum

_DATE = re.compile(r"(\d{4})(\d{2})(\d{2})")
_LEGACY_DATE = re.compile(r"(\d{4})\.(\d{2})\.(\d{2})")
_TIME = re.compile(r"(\d{2})(\d{2})?(\d{2})?(?:\.(\d{1,6}))?")
_LEGACY_TIME = re.compile(r"(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,6}))?)?")
_DATETIME = re.compile(r"(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(?:\.(\d{1,6}))?([+-]\d{4})?")


class Bound(Enum):
    """Which end of a range a partial value stands for: "10" is 100000 as a lower bound and
    105959.999999 as an upper bound."""

    LOWER = "lower"
    UPPER = "upper"


def normalize_date(value: str) -> str | None:
    """Return a DA value as "YYYYMMDD", or None when it is not a valid date.

    The ACR-NEMA form "YYYY.MM.DD", still written by old modalities, is accepted too.
    """
    text = value.strip()
    match = _DATE.fullmatch(text) or _LEGACY_DATE.fullmatch(text)
    if not match:
        return None
    year, month, day = (int(part) for part in match.groups())
    if not (1 <= month <= 12 and 1 <= day <= 31):
        return None
    return f"{year:04d}{month:02d}{day:02d}"


def normalize_time(value: str, bound: Bound = Bound.LOWER) -> str | None:
    """Return a TM value as "HHMMSS.FFFFFF", or None when it is not a valid time.

    Missing minutes, seconds and fraction are filled with zeros for a lower bound and with
    their largest values for an upper bound. "HH:MM:SS", an old form, is accepted too.
    """
    text = value.strip()
    match = _TIME.fullmatch(text) or _LEGACY_TIME.fullmatch(text)
    if not match:
        return None
    hours, minutes, seconds, fraction = match.groups()
    upper = bound is Bound.UPPER
    minutes = minutes or ("59" if upper else "00")
    seconds = seconds or ("59" if upper else "00")
    fraction = (fraction or "").ljust(6, "9" if upper else "0")
    if int(hours) > 23 or int(minutes) > 59 or int(seconds) > 60:
        return None
    return f"{hours}{minutes}{seconds}.{fraction}"


def normalize_datetime(value: str, bound: Bound = Bound.LOWER) -> str | None:
    """Return a DT value as "YYYYMMDDHHMMSS.FFFFFF" without its UTC offset, or None when invalid.

    Missing parts are filled with their smallest values for a lower bound and their largest for
    an upper bound ("2024" is 20240101000000.000000 or 20241231235959.999999).
    """
    match = _DATETIME.fullmatch(value.strip())
    if not match:
        return None
    year, month, day, hour, minute, second, fraction, _offset = match.groups()
    upper = bound is Bound.UPPER
    month = month or ("12" if upper else "01")
    day = day or ("31" if upper else "01")
    hour = hour or ("23" if upper else "00")
    minute = minute or ("59" if upper else "00")
    second = second or ("59" if upper else "00")
    fraction = (fraction or "").ljust(6, "9" if upper else "0")
    if not (1 <= int(month) <= 12 and 1 <= int(day) <= 31 and int(hour) <= 23 and int(minute) <= 59):
        return None
    return f"{year}{month}{day}{hour}{minute}{second}.{fraction}"
