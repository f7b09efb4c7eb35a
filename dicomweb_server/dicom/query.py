"""The QIDO-RS query model: query parameters parsed into matching conditions (PS3.18 8.3.4).

The parser knows DICOM and nothing of HTTP or SQL: it takes the (name, value) pairs of a query
string and returns a :class:`SearchQuery`, or raises :class:`QueryError` naming the parameter
that cannot be used. ``index.search`` compiles the model to SQL.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum

from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword

from dicomweb_server.dicom.attributes import (
    MATCHING_KEYS,
    MATCHING_KEYS_BY_TAG_PATH,
    MatchingKey,
    QueryLevel,
    describe,
)
from dicomweb_server.dicom.names import fold_group, fuzzy_words
from dicomweb_server.dicom.uids import check_uid
from dicomweb_server.dicom.values import Bound, normalize_date, normalize_datetime, normalize_time

_TAG = re.compile(r"[0-9A-Fa-f]{8}")
_DIGITS = re.compile(r"[0-9]+")
_VALUE_SEPARATORS = re.compile(r"[\\,]")
_CONTROL_PARAMETERS = {
    "fuzzymatching",
    "includefield",
    "limit",
    "offset",
    "emptyvaluematching",
    "multiplevaluematching",
}
_WILDCARD_VRS = {"AE", "CS", "LO", "LT", "PN", "SH", "ST", "UC", "UR", "UT"}
_RANGE_VRS = {"DA", "TM", "DT"}
_LIST_VRS = {"UI", "CS"}


MAX_OFFSET = 2**31 - 1
"""Largest offset a search accepts; far beyond any result count, and within every database's integers."""

LARGE_NUMBER = 10**18
"""The value given to a limit or offset that has more digits than this number. The server caps every
limit far below it, and int() fails on a text of more than 4300 digits."""


class QueryError(ValueError):
    """A query parameter that cannot be used; the message names it and says how to fix it."""


class MatchKind(Enum):
    """Matching types of PS3.4 C.2.2.2, as the index applies them."""

    SINGLE_VALUE = "single value"
    VALUE_LIST = "value list"
    WILDCARD = "wildcard"
    RANGE = "range"
    FUZZY = "fuzzy"


@dataclass(frozen=True)
class Condition:
    """One matching condition on one attribute.

    ``values`` holds the normalized values: the folded component groups for PN, the dates or
    times in their indexed form for DA, TM and DT. For a range, ``low`` and ``high`` are the
    normalized bounds and either may be None for an open end. For a wildcard, ``values`` holds
    one pattern with DICOM's ``*`` and ``?``. ``empty_matches`` makes an empty or missing value
    match too (``emptyvaluematching=true``).
    """

    key: MatchingKey
    kind: MatchKind
    values: tuple[str, ...] = ()
    low: str | None = None
    high: str | None = None
    empty_matches: bool = False
    time_key: MatchingKey | None = None
    """For a date range combined with its time attribute: the TM key. The bounds then hold the
    date followed by the time ("20230531150000.000000")."""


DATE_TIME_PAIRS = {
    "StudyDate": "StudyTime",
    "SeriesDate": "SeriesTime",
    "PerformedProcedureStepStartDate": "PerformedProcedureStepStartTime",
    "ContentDate": "ContentTime",
}
"""DA attributes and the TM attribute that completes each into a point in time."""

_MIDNIGHT = "000000.000000"
_END_OF_DAY = "235959.999999"


@dataclass(frozen=True)
class SearchQuery:
    """A validated search: its level, conditions, attributes to return, and paging."""

    level: QueryLevel
    conditions: tuple[Condition, ...] = ()
    include_tags: frozenset[int] = frozenset()
    include_all: bool = False
    fuzzy: bool = False
    limit: int | None = None
    offset: int = 0
    warnings: tuple[str, ...] = field(default=())

    def condition_for(self, path: str) -> Condition | None:
        return next((c for c in self.conditions if c.key.path == path), None)


def parse_search(
    level: QueryLevel,
    parameters: Iterable[tuple[str, str]],
    scope: dict[str, str] | None = None,
) -> SearchQuery:
    """Parse the query parameters of a search at ``level``.

    Parameters
    ----------
    level
        The level searched: studies, series or instances.
    parameters
        The query parameters in the order received, repeated names included.
    scope
        UIDs fixed by the resource path ({"StudyInstanceUID": ...}); they become single value
        conditions and may not be given again as parameters.

    Raises
    ------
    QueryError
        For an unknown parameter, an attribute that cannot be matched at this level, a value
        that does not fit the attribute's VR, or a malformed control parameter.
    """
    pairs = list(parameters)
    controls = _parse_controls(pairs)
    warnings = list(controls.warnings)
    include_tags: set[int] = set(controls.include_tags)
    conditions: list[Condition] = []
    seen: dict[str, str] = {}

    for path, value in (scope or {}).items():
        key = MATCHING_KEYS[path]
        conditions.append(_single_uid(key, value))
        seen[path] = path

    for name, value in pairs:
        if name in _CONTROL_PARAMETERS:
            continue
        tags = _resolve_attribute(name)
        key = MATCHING_KEYS_BY_TAG_PATH.get(tags)
        if key is None:
            include_tags.add(_returnable_tag(name, tags, value, level))
            continue
        _check_level(name, key, level)
        if key.path in seen:
            raise QueryError(
                f"Invalid search: {name} is given twice (also as {seen[key.path]}); "
                "give each attribute once, with a list of values where the VR allows one"
            )
        seen[key.path] = name
        include_tags.add(key.tags[0])
        if value == "":
            continue
        conditions.append(_condition(name, key, value, controls.fuzzy, controls.empty_value_matching))

    return SearchQuery(
        level=level,
        conditions=tuple(_combine_dates_and_times(conditions)),
        include_tags=frozenset(include_tags),
        include_all=controls.include_all,
        fuzzy=controls.fuzzy,
        limit=controls.limit,
        offset=controls.offset,
        warnings=tuple(warnings),
    )


def _combine_dates_and_times(conditions: list[Condition]) -> list[Condition]:
    """Match a date key and its time key as one date-time range (PS3.18 8.3.4.1, PS3.4 C.2.2.2.5.1).

    "StudyDate=20230531-20230601&StudyTime=150000-235959" selects from 31 May 15:00 to 1 June
    23:59:59.999999, not the afternoons of both days. A time key without its date key, or a
    date key without its time key, is matched alone.
    """
    by_path = {condition.key.path: condition for condition in conditions}
    combined = list(conditions)
    for date_path, time_path in DATE_TIME_PAIRS.items():
        date, time = by_path.get(date_path), by_path.get(time_path)
        if date is None or time is None or date.empty_matches or time.empty_matches:
            continue
        low = date.low + (time.low or _MIDNIGHT) if date.low else None
        high = date.high + (time.high or _END_OF_DAY) if date.high else None
        combined.remove(date)
        combined.remove(time)
        combined.append(Condition(date.key, MatchKind.RANGE, low=low, high=high, time_key=time.key))
    return combined


@dataclass
class _Controls:
    fuzzy: bool = False
    empty_value_matching: bool = False
    include_all: bool = False
    include_tags: set[int] = field(default_factory=set)
    limit: int | None = None
    offset: int = 0
    warnings: list[str] = field(default_factory=list)


def _parse_controls(pairs: list[tuple[str, str]]) -> _Controls:
    controls = _Controls()
    for name, value in pairs:
        if name == "fuzzymatching":
            controls.fuzzy = _parse_boolean(name, value)
        elif name == "emptyvaluematching":
            controls.empty_value_matching = _parse_boolean(name, value)
        elif name == "multiplevaluematching":
            if not _parse_boolean(name, value):
                controls.warnings.append(
                    "multiplevaluematching=false is not supported; "
                    "a value list matches an attribute when any of its values matches"
                )
        elif name == "limit":
            controls.limit = _parse_uint(name, value)
        elif name == "offset":
            controls.offset = _parse_uint(name, value, MAX_OFFSET)
        elif name == "includefield":
            _parse_includefield(value, controls)
    return controls


def _parse_boolean(name: str, value: str) -> bool:
    if value == "true":
        return True
    if value == "false":
        return False
    raise QueryError(f"Invalid search: {name} value {value!r} is not true or false")


def _parse_uint(name: str, value: str, maximum: int | None = None) -> int:
    """Parse limit or offset; values too long to matter are kept as LARGE_NUMBER."""
    if not _DIGITS.fullmatch(value):
        raise QueryError(f"Invalid search: {name} value {value!r} is not an unsigned integer")
    digits = value.lstrip("0")
    number = LARGE_NUMBER if len(digits) > len(str(LARGE_NUMBER)) else int(digits or "0")
    if maximum is not None and number > maximum:
        raise QueryError(
            f"Invalid search: {name} value {value!r} is larger than the maximum {maximum}; "
            "narrow the search instead of paging that far"
        )
    return number


def _parse_includefield(value: str, controls: _Controls) -> None:
    for item in value.split(","):
        item = item.strip()
        if item == "all":
            controls.include_all = True
        elif item:
            controls.include_tags.add(_resolve_attribute(item, "includefield")[0])


def _resolve_attribute(name: str, parameter: str | None = None) -> tuple[int, ...]:
    """Turn "PatientName", "00100010" or a dotted path of either into a tuple of tags."""
    tags = []
    for part in name.split("."):
        if _TAG.fullmatch(part):
            tags.append(int(part, 16))
            continue
        tag = tag_for_keyword(part)
        if tag is None:
            if parameter:
                raise QueryError(
                    f"Invalid search: unknown includefield value {name!r}; use all, a DICOM keyword "
                    "(PatientName) or a tag as eight hexadecimal digits (00100010)"
                )
            raise QueryError(
                f"Invalid search: unknown query parameter {name!r}; use a DICOM keyword (PatientName), "
                "a tag as eight hexadecimal digits (00100010), or one of "
                f"{', '.join(sorted(_CONTROL_PARAMETERS))}"
            )
        tags.append(tag)
    return tuple(tags)


def _returnable_tag(name: str, tags: tuple[int, ...], value: str, level: QueryLevel) -> int:
    """Accept an attribute the index cannot match on only with an empty value (a return key)."""
    if value == "":
        return tags[0]
    supported = ", ".join(key.path for key in MATCHING_KEYS.values() if key.level.depth <= level.depth)
    raise QueryError(
        f"Invalid search: matching on {_name_attribute(name, tags)} is not supported; "
        f"give it as includefield to have it returned, or match on one of: {supported}"
    )


def _name_attribute(name: str, tags: tuple[int, ...]) -> str:
    """Name the attribute of a parameter once: "InstitutionName (0008,0080)"."""
    described = describe(tags[-1])
    return described if len(tags) == 1 else f"{name} ({described})"


def _check_level(name: str, key: MatchingKey, level: QueryLevel) -> None:
    if key.level.depth > level.depth:
        raise QueryError(
            f"Invalid search: {name} is a {key.level.value}-level attribute and cannot be "
            f"matched in a search for {level.value} entities; search for {key.level.value} "
            "entities instead"
        )


def _single_uid(key: MatchingKey, value: str) -> Condition:
    return Condition(key, MatchKind.SINGLE_VALUE, (value,))


def _condition(name: str, key: MatchingKey, value: str, fuzzy: bool, empty_matches: bool) -> Condition:
    if key.vr == "UI":
        condition = _uid_condition(name, key, value)
    elif key.vr in _RANGE_VRS:
        condition = _range_or_single(name, key, value)
    elif key.vr == "PN":
        condition = _person_name_condition(key, value, fuzzy)
    elif key.vr == "IS":
        condition = _integer_condition(name, key, value)
    else:
        condition = _text_condition(key, value)
    if empty_matches:
        condition = Condition(
            condition.key, condition.kind, condition.values, condition.low, condition.high, True
        )
    return condition


def _uid_condition(name: str, key: MatchingKey, value: str) -> Condition:
    uids = [uid.strip() for uid in _VALUE_SEPARATORS.split(value)]
    for uid in uids:
        check = check_uid(uid)
        if not check.usable:
            where = f"value {uid!r}" if uid == value else f"value {value!r} contains {uid!r}, which"
            raise QueryError(
                f"Invalid search: {name} {where} is not a UID ({check.reason}); "
                "give one UID or a list separated by commas or backslashes"
            )
    kind = MatchKind.SINGLE_VALUE if len(uids) == 1 else MatchKind.VALUE_LIST
    return Condition(key, kind, tuple(dict.fromkeys(uids)))


def _range_or_single(name: str, key: MatchingKey, value: str) -> Condition:
    if "-" not in value or (key.vr == "DT" and _is_datetime_offset_only(value)):
        low = _normalize_bound(name, key, value, Bound.LOWER)
        high = _normalize_bound(name, key, value, Bound.UPPER)
        return Condition(key, MatchKind.RANGE, low=low, high=high)

    first, _, second = _split_range(value, key.vr)
    if not first and not second:
        raise QueryError(
            f"Invalid search: {name} value {value!r} is a range with no bounds; "
            "give at least one of the two dates or times"
        )
    low = _normalize_bound(name, key, first, Bound.LOWER, value) if first else None
    high = _normalize_bound(name, key, second, Bound.UPPER, value) if second else None
    if low and high and low > high:
        raise QueryError(
            f"Invalid search: {name} range {value!r} ends before it starts; give the earlier bound first"
        )
    return Condition(key, MatchKind.RANGE, low=low, high=high)


def _is_datetime_offset_only(value: str) -> bool:
    # A DT value may carry a negative UTC offset ("20240101-0500"). A "-" followed by four digits
    # that are not an offset (hours 00 to 14) starts the upper bound of a range ("2024-2025").
    return bool(re.fullmatch(r"\d{4,14}(\.\d{1,6})?-(0\d|1[0-4])[0-5]\d", value))


def _split_range(value: str, vr: str) -> tuple[str, str, str]:
    if vr != "DT":
        return value.partition("-")
    match = re.fullmatch(r"([^-]*(?:[+-]\d{4})?)-([^-]*(?:[+-]\d{4})?)", value)
    if not match:
        return value.partition("-")
    return match.group(1), "-", match.group(2)


_NORMALIZERS = {
    "DA": lambda text, bound: normalize_date(text),
    "TM": normalize_time,
    "DT": normalize_datetime,
}
_FORMATS = {
    "DA": "YYYYMMDD",
    "TM": "HHMMSS.FFFFFF with optional parts",
    "DT": "YYYYMMDDHHMMSS.FFFFFF with optional parts",
}


def _normalize_bound(name: str, key: MatchingKey, text: str, bound: Bound, whole: str | None = None) -> str:
    normalized = _NORMALIZERS[key.vr](text, bound)
    where = f"range {whole!r} has the bound {text!r}, which" if whole else f"value {text!r}"
    if normalized is None:
        raise QueryError(
            f"Invalid search: {name} {where} is not a DICOM {key.vr} value "
            f"({_FORMATS[key.vr]}); give one such value or a range of two separated by '-'"
        )
    if key.vr in ("DA", "DT") and not _is_calendar_day(text, normalized):
        raise QueryError(
            f"Invalid search: {name} {where} names a day that does not exist in the calendar; "
            "check the month and the day"
        )
    return normalized


def _is_calendar_day(text: str, normalized: str) -> bool:
    """Return whether a date given with its day (YYYYMMDD at the start) exists in the calendar.

    The normalizers check months and days only against 1-12 and 1-31. A DT value given without
    its day gets day 31 as an upper bound ("202002" ends on "20200231"), which is a bound and not
    a date, so only a day written in the text is checked.
    """
    if len(text.strip().replace(".", "")) < 8:
        return True
    try:
        datetime.date(int(normalized[:4]), int(normalized[4:6]), int(normalized[6:8]))
    except ValueError:
        return False
    return True


def _person_name_condition(key: MatchingKey, value: str, fuzzy: bool) -> Condition:
    if fuzzy:
        words = fuzzy_words(value.replace("*", " ").replace("?", " "))
        return Condition(key, MatchKind.FUZZY, tuple(words))
    groups = tuple(fold_group(group) for group in value.split("=")[:3])
    kind = MatchKind.WILDCARD if any(ch in value for ch in "*?") else MatchKind.SINGLE_VALUE
    return Condition(key, kind, groups)


def _integer_condition(name: str, key: MatchingKey, value: str) -> Condition:
    numbers = [number.strip() for number in _VALUE_SEPARATORS.split(value)]
    for number in numbers:
        if not re.fullmatch(r"[+-]?\d{1,12}", number):
            raise QueryError(f"Invalid search: {name} value {number!r} is not an integer string (IS)")
    normalized = tuple(str(int(number)) for number in numbers)
    kind = MatchKind.SINGLE_VALUE if len(normalized) == 1 else MatchKind.VALUE_LIST
    return Condition(key, kind, normalized)


def _text_condition(key: MatchingKey, value: str) -> Condition:
    if key.vr in _WILDCARD_VRS and any(ch in value for ch in "*?"):
        if value.strip("*") == "":
            return Condition(key, MatchKind.WILDCARD, ("*",))
        return Condition(key, MatchKind.WILDCARD, (value,))
    if key.vr in _LIST_VRS:
        values = tuple(dict.fromkeys(item.strip() for item in _VALUE_SEPARATORS.split(value)))
        if len(values) > 1:
            return Condition(key, MatchKind.VALUE_LIST, values)
    return Condition(key, MatchKind.SINGLE_VALUE, (value.strip(),))


def tag_keyword(tag: int) -> str:
    """Return the keyword of a tag, or its eight hexadecimal digits when it has none."""
    return keyword_for_tag(tag) or f"{tag:08X}"


def is_known_tag(tag: int) -> bool:
    try:
        dictionary_VR(tag)
    except KeyError:
        return False
    return True
