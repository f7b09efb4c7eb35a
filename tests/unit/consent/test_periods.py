"""Dates of authorizations: the twelve-month rule, local days and time zones."""

from __future__ import annotations

import datetime

import pytest

from dicomweb_server.consent import periods

UTC = datetime.UTC
PARIS = periods.zone("Europe/Paris")
NEW_YORK = periods.zone("America/New_York")


def test_twelve_months_same_day_next_year() -> None:
    assert periods.add_twelve_months(datetime.date(2024, 3, 15)) == datetime.date(2025, 3, 15)


def test_twelve_months_from_29_february() -> None:
    assert periods.add_twelve_months(datetime.date(2024, 2, 29)) == datetime.date(2025, 2, 28)


def test_required_until_end_of_local_day() -> None:
    # A study of 15 March 2024 stays available through 15 March 2025 in Paris (UTC+1 then).
    until = periods.required_until(datetime.date(2024, 3, 15), PARIS)
    assert until == datetime.datetime(2025, 3, 15, 23, 0, tzinfo=UTC)


def test_date_only_end_is_end_of_that_day() -> None:
    end = periods.parse_instant("2027-03-01", NEW_YORK, end_of_day=True)
    assert end == datetime.datetime(2027, 3, 2, 5, 0, tzinfo=UTC)
    assert periods.format_local(end, NEW_YORK) == "2027-03-02T00:00:00-05:00 (America/New_York)"


def test_date_only_start_is_start_of_that_day() -> None:
    start = periods.parse_instant("2027-07-01", PARIS, end_of_day=False)
    assert start == datetime.datetime(2027, 6, 30, 22, 0, tzinfo=UTC)


def test_date_only_end_across_daylight_saving_change() -> None:
    # Clocks in New York go forward on 8 March 2026: that local day has 23 hours.
    start = periods.parse_instant("2026-03-08", NEW_YORK, end_of_day=False)
    end = periods.parse_instant("2026-03-08", NEW_YORK, end_of_day=True)
    assert end - start == datetime.timedelta(hours=23)


def test_instant_with_offset_kept() -> None:
    instant = periods.parse_instant("2027-03-01T08:00:00+01:00", PARIS, end_of_day=True)
    assert instant == datetime.datetime(2027, 3, 1, 7, 0, tzinfo=UTC)


def test_instant_z_suffix_is_utc() -> None:
    assert periods.parse_instant("2027-03-01T07:00:00Z", PARIS, end_of_day=False).hour == 7


@pytest.mark.parametrize("text", ["2027-03-01T08:00:00", "01/03/2027", "2027-02-30", "tomorrow", ""])
def test_instant_invalid_rejected(text: str) -> None:
    with pytest.raises(ValueError, match="invalid date or time"):
        periods.parse_instant(text, PARIS, end_of_day=True)


def test_study_date_forms() -> None:
    assert periods.parse_study_date("2024-01-15") == "20240115"
    assert periods.parse_study_date("20240115") == "20240115"
    assert periods.parse_study_date("0999-12-31") == "09991231"
    assert periods.parse_study_date("00010101") == "00010101"
    with pytest.raises(ValueError, match="invalid study date"):
        periods.parse_study_date("20241315")


def test_default_end_after_start_without_studies() -> None:
    start = datetime.datetime(2026, 6, 15, 12, 0, tzinfo=UTC)
    assert periods.default_end(start, [], PARIS) == datetime.datetime(2027, 6, 15, 12, 0, tzinfo=UTC)


def test_default_end_after_latest_study() -> None:
    start = datetime.datetime(2026, 1, 10, 9, 0, tzinfo=UTC)
    days = [datetime.date(2025, 11, 1), datetime.date(2026, 5, 20)]
    assert periods.default_end(start, days, UTC) == datetime.datetime(2027, 5, 21, 0, 0, tzinfo=UTC)


def test_default_end_start_wins_over_old_study() -> None:
    start = datetime.datetime(2026, 1, 10, 9, 0, tzinfo=UTC)
    assert periods.default_end(start, [datetime.date(2020, 1, 1)], UTC) == datetime.datetime(
        2027, 1, 10, 9, 0, tzinfo=UTC
    )


def test_study_day_falls_back_to_stored_day() -> None:
    stored = datetime.datetime(2026, 6, 30, 23, 30, tzinfo=UTC)
    assert periods.study_day(None, stored, PARIS) == datetime.date(2026, 7, 1)
    assert periods.study_day("20240115", stored, PARIS) == datetime.date(2024, 1, 15)
    assert periods.study_day("2024011", stored, UTC) == datetime.date(2026, 6, 30)


def test_unknown_time_zone_rejected() -> None:
    with pytest.raises(ValueError, match="unknown time zone 'Mars/Olympus'"):
        periods.zone("Mars/Olympus")


@pytest.mark.parametrize(
    "text", ["9999-12-31", "9999-01-01", "9999-06-01T12:00:00Z", "9999-12-31T23:00:00-05:00"]
)
def test_instant_after_latest_date_rejected(text: str) -> None:
    for end_of_day in (False, True):
        with pytest.raises(ValueError, match="the latest date accepted is 9998-12-31"):
            periods.parse_instant(text, NEW_YORK, end_of_day=end_of_day)


def test_instant_on_latest_date_in_every_offset() -> None:
    # The UTC offsets of time zones range from -12:00 to +14:00.
    extremes = (periods.zone("Pacific/Kiritimati"), periods.zone("Etc/GMT+12"))
    for zone in extremes:
        end = periods.parse_instant("9998-12-31", zone, end_of_day=True)
        assert end == datetime.datetime.combine(datetime.date(9999, 1, 1), datetime.time(0), zone)
        for shown_in in extremes:
            assert periods.format_local(end, shown_in).startswith(("9998-12-3", "9999-01-0"))


def test_study_day_beyond_latest_date_uses_stored_day() -> None:
    stored = datetime.datetime(2026, 6, 30, 12, 0, tzinfo=UTC)
    assert periods.study_day("99990601", stored, UTC) == datetime.date(2026, 6, 30)
