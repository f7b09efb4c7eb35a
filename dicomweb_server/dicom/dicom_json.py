"""Reading and building DICOM JSON (PS3.18 Annex F) values."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydicom.datadict import tag_for_keyword


def tag_key(keyword: str) -> str:
    """Return the DICOM JSON key of a keyword ("PatientName" becomes "00100010")."""
    tag = tag_for_keyword(keyword)
    if tag is None:
        raise KeyError(keyword)
    return f"{tag:08X}"


def values(dataset: dict[str, Any], keyword: str) -> list[Any]:
    """Return the values of an attribute in a DICOM JSON object, empty when absent or empty."""
    element = dataset.get(tag_key(keyword))
    if not element:
        return []
    return list(element.get("Value") or [])


def first_value(dataset: dict[str, Any], keyword: str) -> Any:
    """Return the first value of an attribute, or None; PN values come back as "A=I=P" text."""
    found = values(dataset, keyword)
    if not found:
        return None
    value = found[0]
    if isinstance(value, dict):
        return person_name_text(value)
    return value


def first_text(dataset: dict[str, Any], keyword: str) -> str | None:
    value = first_value(dataset, keyword)
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def first_integer(dataset: dict[str, Any], keyword: str) -> int | None:
    value = first_value(dataset, keyword)
    if value is None or isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        try:
            return int(float(value))
        except (TypeError, ValueError):
            return None


def person_name_text(value: dict[str, str]) -> str:
    """Join the component groups of a DICOM JSON PN value back into "A=I=P" text."""
    groups = [value.get("Alphabetic", ""), value.get("Ideographic", ""), value.get("Phonetic", "")]
    while groups and not groups[-1]:
        groups.pop()
    return "=".join(groups)


def element(vr: str, *items: Any) -> dict[str, Any]:
    """Build a DICOM JSON element; with no items the element is present and empty."""
    if not items:
        return {"vr": vr}
    return {"vr": vr, "Value": list(items)}


def subset(dataset: dict[str, Any], tags: Iterable[int]) -> dict[str, Any]:
    """Return the elements of ``dataset`` whose tags are in ``tags``."""
    wanted = {f"{tag:08X}" for tag in tags}
    return {key: value for key, value in dataset.items() if key in wanted}
