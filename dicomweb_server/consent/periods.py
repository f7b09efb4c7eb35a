"""Instants and periods of authorizations: date-only input, the twelve-month rule, time zones.

Every instant is kept in UTC. A date given without a time means a local day in the configured
time zone. As a start it is the beginning of that day. As an end it includes the whole day, so
the stored (exclusive) end is the next local midnight.
"""

from __future__ import annotations

import calendar
import datetime
import re
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
DICOM_DATE = re.compile(r"^\d{8}$")

EARLIEST_DATE = datetime.date(1, 1, 2)
"""Earliest day accepted as the start of a report period, whose midnight in any time zone is still
a Python datetime in UTC."""

LATEST_DATE = datetime.date(9998, 12, 31)
"""Latest date accepted as a start or an end. Python's dates end with 9999-12-31, and the end of a
day, a time zone offset or the twelve months added to a study must stay within them."""


def zone(name: str) -> ZoneInfo:
    """Return the IANA time zone ``name`` ("Europe/Paris", "UTC").

    Raises
    ------
    ValueError
        When the name is not a known time zone.
    """
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {name!r}; use an IANA name such as UTC or Europe/Paris"
        ) from None


def parse_instant(text: str, time_zone: ZoneInfo, *, end_of_day: bool) -> datetime.datetime:
    """Parse a date (2027-03-01) or a date and time with a UTC offset (2027-03-01T08:00:00+01:00).

    A date alone is a day in ``time_zone``: its start, or with ``end_of_day`` the next local
    midnight, which as an exclusive end includes the whole day. A date and time must carry its
    offset (``Z`` for UTC), so that no instant depends on the machine's clock settings.

    Raises
    ------
    ValueError
        When the text is neither form; the message shows both forms.
    """
    value = text.strip()
    day: datetime.date | None = None
    instant: datetime.datetime | None = None
    try:
        if DATE_ONLY.match(value):
            day = datetime.date.fromisoformat(value)
        else:
            instant = datetime.datetime.fromisoformat(value)
    except ValueError:
        pass
    if day is not None:
        _check_not_too_late(text, datetime.datetime.combine(day, datetime.time(0)))
        return start_of_local_day(day + datetime.timedelta(days=1) if end_of_day else day, time_zone)
    if instant is None or instant.tzinfo is None:
        raise ValueError(
            f"invalid date or time {text!r}; use a date (2027-03-01) or a date and time with its UTC "
            "offset (2027-03-01T08:00:00+01:00 or 2027-03-01T07:00:00Z)"
        )
    _check_not_too_late(text, instant.replace(tzinfo=None))
    return instant.astimezone(datetime.UTC)


def _check_not_too_late(text: str, local: datetime.datetime) -> None:
    # The local date and time are compared before any conversion, which may overflow near 9999-12-31.
    if local.date() > LATEST_DATE:
        raise ValueError(
            f"invalid date or time {text!r}: the latest date accepted is {LATEST_DATE.isoformat()}; "
            "give an earlier date"
        )


def parse_study_date(text: str) -> str:
    """Turn a date given as 2024-01-15 or 20240115 into the index's StudyDate form, 20240115.

    Raises
    ------
    ValueError
        When the text is not a valid calendar date in either form.
    """
    value = text.strip()
    try:
        if DICOM_DATE.match(value):
            return dicom_date(datetime.datetime.strptime(value, "%Y%m%d").date())
        if DATE_ONLY.match(value):
            return dicom_date(datetime.date.fromisoformat(value))
    except ValueError:
        pass
    raise ValueError(f"invalid study date {text!r}; use YYYY-MM-DD or YYYYMMDD")


def dicom_date(day: datetime.date) -> str:
    """Write ``day`` as a DICOM DA value, YYYYMMDD, with the year in four digits."""
    # strftime("%Y") writes year 999 as "999" on glibc, and StudyDate ranges are compared as text.
    return f"{day.year:04d}{day.month:02d}{day.day:02d}"


def start_of_local_day(day: datetime.date, time_zone: ZoneInfo) -> datetime.datetime:
    return datetime.datetime.combine(day, datetime.time(0), tzinfo=time_zone).astimezone(datetime.UTC)


def add_twelve_months(day: datetime.date) -> datetime.date:
    """Return the same day a year later; 29 February becomes 28 February."""
    year = day.year + 1
    return day.replace(year=year, day=min(day.day, calendar.monthrange(year, day.month)[1]))


def study_day(study_date: str | None, stored_at: datetime.datetime, time_zone: ZoneInfo) -> datetime.date:
    """Return the local day of a study: its StudyDate, or the day it was first stored when it has none."""
    if study_date and DICOM_DATE.match(study_date):
        try:
            day = datetime.datetime.strptime(study_date, "%Y%m%d").date()
        except ValueError:
            pass
        else:
            # Twelve months after a StudyDate in year 9999 cannot be represented.
            if day <= LATEST_DATE:
                return day
    return stored_at.astimezone(time_zone).date()


def required_until(day: datetime.date, time_zone: ZoneInfo) -> datetime.datetime:
    """Return the end of availability for a study of ``day``: the end of the local day twelve months later."""
    return start_of_local_day(add_twelve_months(day) + datetime.timedelta(days=1), time_zone)


def twelve_months_after_start(starts_at: datetime.datetime, time_zone: ZoneInfo) -> datetime.datetime:
    local = starts_at.astimezone(time_zone)
    later = datetime.datetime.combine(add_twelve_months(local.date()), local.timetz().replace(tzinfo=None))
    return later.replace(tzinfo=time_zone).astimezone(datetime.UTC)


def default_end(
    starts_at: datetime.datetime, study_days: list[datetime.date], time_zone: ZoneInfo
) -> datetime.datetime:
    """Return the default end of an authorization (exclusive).

    It is twelve months after the latest covered study or twelve months after the authorization
    starts, whichever is later.
    """
    candidates = [twelve_months_after_start(starts_at, time_zone)]
    candidates += [required_until(day, time_zone) for day in study_days]
    return max(candidates)


def format_local(instant: datetime.datetime, time_zone: ZoneInfo) -> str:
    """Write an instant in the configured zone with its offset and zone name, for people to read."""
    local = instant.astimezone(time_zone)
    return f"{local.isoformat(timespec='seconds')} ({time_zone.key})"


def format_utc(instant: datetime.datetime) -> str:
    return instant.astimezone(datetime.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
