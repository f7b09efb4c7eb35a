"""Failed requests to a peer, described in plain words, and the HTTP errors the web layer returns for them."""

from __future__ import annotations

from dicomweb_server.errors import ArchiveError


class PeerError(Exception):
    """A request to a peer failed.

    ``reason`` states what happened in plain words ("did not respond within 5 s", "refused the
    connection"), without credentials, query values or UIDs, so it may be shown to the user,
    written to the audit trail and logged.
    """

    def __init__(self, peer_name: str, reason: str) -> None:
        super().__init__(f"peer {peer_name}: {reason}")
        self.peer_name = peer_name
        self.reason = reason


class PeerTimeout(PeerError):
    """The peer did not respond within its timeout."""


class PeerUnavailable(ArchiveError):
    """A retrieval or import through this archive failed on the peer's side (502)."""

    http_status = 502


class PeerTimedOut(ArchiveError):
    """A retrieval or import through this archive timed out waiting for the peer (504)."""

    http_status = 504


def as_archive_error(error: PeerError) -> ArchiveError:
    """Turn a failed request to a peer into the error the client of this archive receives."""
    message = f"peer {error.peer_name} {error.reason}"
    if isinstance(error, PeerTimeout):
        return PeerTimedOut(message)
    return PeerUnavailable(message)
