"""Sealing peer credentials: AES-GCM under the peer key, bound to the peer's name."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from dicomweb_server.config import load_settings
from dicomweb_server.federation.sealing import KEY_FILE, SealError, encode_key, load_peer_key

TOKEN = "dwt_0123456789ab_secret-value"


def settings_for(data_dir: Path, key: str | None = None):  # type: ignore[no-untyped-def]
    environment = {"DICOMWEB_DATA_DIR": str(data_dir)}
    if key is not None:
        environment["DICOMWEB_PEER_SECRET_KEY"] = key
    return load_settings(environ=environment)


def test_seal_round_trip(tmp_path: Path) -> None:
    key = load_peer_key(settings_for(tmp_path), create=True)

    sealed = key.seal(TOKEN, "mercy")

    assert TOKEN not in sealed
    assert sealed.startswith("aesgcm1:")
    assert key.open(sealed, "mercy") == TOKEN


def test_seal_differs_each_time(tmp_path: Path) -> None:
    key = load_peer_key(settings_for(tmp_path), create=True)

    assert key.seal(TOKEN, "mercy") != key.seal(TOKEN, "mercy")


def test_open_other_peer_fails(tmp_path: Path) -> None:
    key = load_peer_key(settings_for(tmp_path), create=True)
    sealed = key.seal(TOKEN, "mercy")

    with pytest.raises(SealError, match="does not open"):
        key.open(sealed, "other")


def test_open_other_key_fails(tmp_path: Path) -> None:
    sealed = load_peer_key(settings_for(tmp_path / "one"), create=True).seal(TOKEN, "mercy")
    other = load_peer_key(settings_for(tmp_path / "two"), create=True)

    with pytest.raises(SealError, match="restore the key"):
        other.open(sealed, "mercy")


def test_key_file_owner_only(tmp_path: Path) -> None:
    load_peer_key(settings_for(tmp_path), create=True)

    mode = stat.S_IMODE((tmp_path / KEY_FILE).stat().st_mode)

    assert mode == 0o600


def test_key_file_kept(tmp_path: Path) -> None:
    sealed = load_peer_key(settings_for(tmp_path), create=True).seal(TOKEN, "mercy")

    again = load_peer_key(settings_for(tmp_path), create=True)

    assert again.open(sealed, "mercy") == TOKEN


def test_missing_key_without_create(tmp_path: Path) -> None:
    with pytest.raises(SealError, match="no peer key"):
        load_peer_key(settings_for(tmp_path), create=False)


def test_setting_key_used(tmp_path: Path) -> None:
    setting = encode_key(bytes(range(32)))
    sealed = load_peer_key(settings_for(tmp_path / "one", setting), create=False).seal(TOKEN, "mercy")

    other_folder = load_peer_key(settings_for(tmp_path / "two", setting), create=False)

    assert other_folder.open(sealed, "mercy") == TOKEN
    assert not (tmp_path / "one" / KEY_FILE).exists()


def test_setting_key_malformed(tmp_path: Path) -> None:
    with pytest.raises(SealError, match="32 random bytes"):
        load_peer_key(settings_for(tmp_path, "too-short"), create=False)
