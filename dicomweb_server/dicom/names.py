"""Person Name (PN) forms used to index and match names (PS3.5 6.2, PS3.4 C.2.2.2).

A PN value has up to three component groups (alphabetic, ideographic, phonetic) separated by
"=", each with up to five components separated by "^". For matching, every group is folded to
lower case with accents removed, and trailing empty components are dropped, so "Müller^Hans^^"
and "MULLER^HANS" compare equal.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

_WORD_SEPARATORS = re.compile(r"[\^\s,\-]+")


@dataclass(frozen=True)
class PersonNameForms:
    """The folded forms of one PN value: one per component group, plus its words for fuzzy matching.

    ``words`` holds every component word of every group, folded, separated and surrounded by
    single spaces (" yamada tarou 山田 太郎 "), so that a word prefix can be found with one
    pattern.
    """

    alphabetic: str | None
    ideographic: str | None
    phonetic: str | None
    words: str | None


def fold(text: str) -> str:
    """Fold text for case- and accent-insensitive comparison ("Müller" becomes "muller").

    Accents are removed from Latin and Greek letters only. In other scripts a combining mark
    can make a different letter: Cyrillic "й" is not an accented "и", and the voicing marks of
    Japanese kana turn "た" into "だ".
    """
    kept: list[str] = []
    base = ""
    for character in unicodedata.normalize("NFKD", text):
        if unicodedata.combining(character):
            if _is_latin_or_greek(base) and "\u0300" <= character <= "\u036f":
                continue
        else:
            base = character
        kept.append(character)
    return unicodedata.normalize("NFC", "".join(kept)).casefold()


def _is_latin_or_greek(character: str) -> bool:
    if not character:
        return False
    code = ord(character)
    return code < 0x0250 or 0x0370 <= code < 0x0400 or 0x1E00 <= code < 0x2000


def fold_group(group: str) -> str:
    """Fold one component group and drop its trailing empty components and spaces."""
    components = [component.strip() for component in group.split("^")]
    while components and not components[-1]:
        components.pop()
    return fold("^".join(components))


def person_name_forms(value: str | None) -> PersonNameForms:
    """Split a PN value into its folded component groups and words."""
    if not value:
        return PersonNameForms(None, None, None, None)

    groups = [fold_group(group) for group in value.split("=")[:3]]
    groups += [""] * (3 - len(groups))
    words = [word for group in groups for word in _WORD_SEPARATORS.split(group) if word]

    return PersonNameForms(
        alphabetic=groups[0] or None,
        ideographic=groups[1] or None,
        phonetic=groups[2] or None,
        words=f" {' '.join(words)} " if words else None,
    )


def fuzzy_words(query: str) -> list[str]:
    """Split a fuzzy PN query into folded words ("Doe^Jo" becomes ["doe", "jo"])."""
    return [word for word in _WORD_SEPARATORS.split(fold(query.replace("=", " "))) if word]
