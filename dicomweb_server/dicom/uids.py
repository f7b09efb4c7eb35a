"""Validation of UID values (PS3.5 9.1) as the archive uses them for identity and routing."""

from __future__ import annotations

import re
from dataclasses import dataclass

UID_MAX_LENGTH = 64
_UID_CHARACTERS = re.compile(r"[0-9.]+")
_LEADING_ZERO = re.compile(r"(^|\.)0[0-9]")


@dataclass(frozen=True)
class UidCheck:
    """Outcome of checking one UID value.

    ``usable`` is false when the archive cannot index or route by the value. ``warning`` is set
    when the value is usable but breaks a rule that real archives often see broken, such as a
    component with a leading zero ("1.2.03.4").
    """

    usable: bool
    reason: str | None = None
    warning: str | None = None


def check_uid(value: str | None) -> UidCheck:
    """Check a UID value against the rules of PS3.5 9.1.

    An empty value, a value longer than 64 characters, and a value with characters other than
    digits and dots cannot be used. Empty components ("1..2") and leading or trailing dots are
    also rejected, because two spellings of one UID would then index differently. A leading
    zero in a component is only a warning.
    """
    if value is None or value == "":
        return UidCheck(False, "the value is empty")
    if len(value) > UID_MAX_LENGTH:
        return UidCheck(
            False, f"the value has {len(value)} characters, more than the {UID_MAX_LENGTH} allowed"
        )
    if not _UID_CHARACTERS.fullmatch(value):
        return UidCheck(False, "the value contains characters other than digits and dots")
    if value.startswith(".") or value.endswith(".") or ".." in value:
        return UidCheck(False, "the value has an empty component")
    if _LEADING_ZERO.search(value):
        return UidCheck(True, warning="a component has a leading zero, which PS3.5 9.1 does not allow")
    return UidCheck(True)
