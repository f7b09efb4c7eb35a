"""Folding of person names for matching."""

from __future__ import annotations

import pytest

from dicomweb_server.dicom.names import fold, fuzzy_words, person_name_forms


@pytest.mark.parametrize(
    ("text", "folded"),
    [
        ("Müller", "muller"),
        ("ÉLODIE", "elodie"),
        ("Ἀθηνᾶ", "αθηνα"),
        ("Йогурт", "йогурт"),
        ("やまだ", "やまだ"),
        ("ﾔﾏﾀﾞ", "ヤマダ"),
    ],
)
def test_fold_removes_only_latin_and_greek_accents(text: str, folded: str) -> None:
    assert fold(text) == folded


def test_person_name_forms_split_groups() -> None:
    forms = person_name_forms("Yamada^Tarou=山田^太郎=やまだ^たろう")
    assert forms.alphabetic == "yamada^tarou"
    assert forms.ideographic == "山田^太郎"
    assert forms.phonetic == "やまだ^たろう"
    assert forms.words == " yamada tarou 山田 太郎 やまだ たろう "


def test_person_name_forms_drop_trailing_components() -> None:
    assert person_name_forms("DOE^JOHN^^^").alphabetic == "doe^john"


def test_fuzzy_words_split_on_separators() -> None:
    assert fuzzy_words("Doe^JO, ann") == ["doe", "jo", "ann"]
