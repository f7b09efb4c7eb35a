"""Every setting is documented: in the README's settings table and, with its default, in `serve --help`."""

from __future__ import annotations

import re

import pytest

from dicomweb_server.cli import build_parser
from dicomweb_server.config import env_name, settings_fields
from tests.testdata import ROOT

NAMES = [field.name for field in settings_fields()]


def _settings_section() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    return readme.split("## Settings", 1)[1].split("\n## ", 1)[0]


def _serve_help(capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--help"])
    return re.sub(r"\s+", " ", capsys.readouterr().out)


@pytest.mark.parametrize("name", NAMES)
def test_readme_settings_table_names_setting(name: str) -> None:
    assert f"`{env_name(name)}`" in _settings_section()


def test_serve_help_gives_every_default(capsys: pytest.CaptureFixture[str]) -> None:
    shown = _serve_help(capsys)
    for name in NAMES:
        assert f"{env_name(name)})" in shown, name
    assert shown.count("(default: ") == len(NAMES)
