"""Reading values out of DICOM JSON data sets (PS3.18 Annex F), keyed by eight-digit tags."""

from __future__ import annotations

from typing import Any

from pydicom.datadict import keyword_for_tag

STUDY_INSTANCE_UID = "0020000D"
SERIES_INSTANCE_UID = "0020000E"
SOP_INSTANCE_UID = "00080018"
SOP_CLASS_UID = "00080016"
RETRIEVE_URL = "00081190"
FAILED_SOP_SEQUENCE = "00081198"
REFERENCED_SOP_SEQUENCE = "00081199"
REFERENCED_SOP_CLASS_UID = "00081150"
REFERENCED_SOP_INSTANCE_UID = "00081155"
FAILURE_REASON = "00081197"
WARNING_REASON = "00081196"
PIXEL_DATA = "7FE00010"


def values(dataset: dict[str, Any], tag: str) -> list[Any]:
    """Return the values of an attribute, or [] when it is absent or empty."""
    element = dataset.get(tag)
    if not isinstance(element, dict):
        return []
    found = element.get("Value")
    return list(found) if isinstance(found, list) else []


def value(dataset: dict[str, Any], tag: str) -> Any | None:
    """Return the first value of an attribute, or None."""
    found = values(dataset, tag)
    return found[0] if found else None


def text(dataset: dict[str, Any], tag: str) -> str | None:
    """Return the first value as text; a PN value gives its Alphabetic component group."""
    found = value(dataset, tag)
    if isinstance(found, dict):
        found = found.get("Alphabetic")
    return None if found is None else str(found)


def items(dataset: dict[str, Any], tag: str) -> list[dict[str, Any]]:
    """Return the items of a sequence attribute."""
    return [item for item in values(dataset, tag) if isinstance(item, dict)]


def uids(datasets: list[dict[str, Any]], tag: str) -> list[str]:
    """Return the value of ``tag`` from each data set, in order; missing values give ""."""
    return [text(dataset, tag) or "" for dataset in datasets]


def name(tag: str) -> str:
    """Name an attribute for a message: "StudyDate (0008,0020)"."""
    keyword = keyword_for_tag(int(tag, 16)) or "private attribute"
    return f"{keyword} ({tag[:4]},{tag[4:]})"
