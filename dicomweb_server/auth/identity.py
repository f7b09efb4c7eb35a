"""The requester: the identity every read and write is decided and recorded for."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Requester:
    """Who sent a request.

    ``affiliated`` is true for members of the archive's own organisation, who see every study
    their scopes allow; external requesters see only what an authorization covers.
    """

    subject: str
    organisation: str | None = None
    affiliated: bool = True
    scopes: frozenset[str] = field(default_factory=frozenset)


LOCAL_REQUESTER = Requester(
    subject="local", organisation=None, affiliated=True, scopes=frozenset({"read", "store"})
)
"""The single user of a server that has no identity configured; it can only listen on loopback."""
