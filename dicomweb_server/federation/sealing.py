"""Sealing the outbound credentials of peers, so that a dump of the index alone does not reveal them.

A credential is encrypted with AES-256-GCM under the peer key, with the peer's name as
associated data, and stored as ``aesgcm1:<base64url of nonce and ciphertext>``. A sealed value
copied to another peer's row therefore does not open.

The peer key is the ``peer_secret_key`` setting (DICOMWEB_PEER_SECRET_KEY: 32 bytes in
base64url) when it is set. Otherwise it is the file ``peer-secret-key`` in the data folder,
created on first use and readable only by its owner. Replicas that share one database but not a
data folder need the setting, with the same value on each.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
import tempfile
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from dicomweb_server.config import Settings

KEY_FILE = "peer-secret-key"
KEY_BYTES = 32
NONCE_BYTES = 12
SEALED_PREFIX = "aesgcm1:"


class SealError(Exception):
    """The peer key is missing or unusable, or a sealed credential does not open with it."""


def _decode_key(text: str, source: str) -> bytes:
    try:
        key = base64.urlsafe_b64decode(text.strip() + "=" * (-len(text.strip()) % 4))
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != KEY_BYTES:
        raise SealError(
            f"invalid peer key in {source}: it must be {KEY_BYTES} random bytes in base64url; "
            'make one with python3 -c "import secrets; print(secrets.token_urlsafe(32))"'
        )
    return key


def encode_key(key: bytes) -> str:
    return base64.urlsafe_b64encode(key).decode("ascii").rstrip("=")


class PeerKey:
    """The key that seals and opens the credentials of peers."""

    def __init__(self, key: bytes) -> None:
        self._cipher = AESGCM(key)

    def seal(self, credential: str, peer_name: str) -> str:
        nonce = secrets.token_bytes(NONCE_BYTES)
        ciphertext = self._cipher.encrypt(nonce, credential.encode("utf-8"), peer_name.encode("utf-8"))
        return SEALED_PREFIX + base64.urlsafe_b64encode(nonce + ciphertext).decode("ascii")

    def open(self, sealed: str, peer_name: str) -> str:
        """Return the credential of a sealed value.

        Raises
        ------
        SealError
            When the value was sealed with another key or for another peer, or is damaged.
        """
        if not sealed.startswith(SEALED_PREFIX):
            raise SealError(f"the stored credential of peer {peer_name!r} is not in a known sealed form")
        try:
            raw = base64.urlsafe_b64decode(sealed[len(SEALED_PREFIX) :])
            plain = self._cipher.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], peer_name.encode("utf-8"))
        except (binascii.Error, ValueError, InvalidTag):
            raise SealError(
                f"the stored credential of peer {peer_name!r} does not open with the current peer key; "
                "restore the key it was sealed with (DICOMWEB_PEER_SECRET_KEY or the file "
                f"{KEY_FILE} in the data folder), or remove the peer and add it again"
            ) from None
        return plain.decode("utf-8")


def load_peer_key(settings: Settings, *, create: bool) -> PeerKey:
    """Return the peer key of the settings, creating the key file when ``create`` is set.

    Raises
    ------
    SealError
        When the setting is malformed, or no key exists and ``create`` is false.
    """
    if settings.peer_secret_key:
        return PeerKey(_decode_key(settings.peer_secret_key.reveal(), "DICOMWEB_PEER_SECRET_KEY"))

    path = settings.data_dir / KEY_FILE
    if not path.exists():
        if not create:
            raise SealError(
                f"no peer key: the file {path} is missing and DICOMWEB_PEER_SECRET_KEY is unset, so the "
                "credentials of the peers cannot be opened; restore the key, or remove and add the peers"
            )
        _create_key_file(path)
    return PeerKey(_decode_key(path.read_text(encoding="ascii"), str(path)))


def _create_key_file(path: Path) -> None:
    """Write a new random key to ``path``, readable only by its owner, unless another process won."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".peer-key-")
    try:
        os.fchmod(handle, 0o600)
        os.write(handle, encode_key(secrets.token_bytes(KEY_BYTES)).encode("ascii") + b"\n")
        os.fsync(handle)
        os.close(handle)
        handle = -1
        # A hard link fails when the name exists, so two processes starting together keep one key.
        os.link(temporary, path)
    except FileExistsError:
        pass
    finally:
        if handle >= 0:
            os.close(handle)
        os.unlink(temporary)
