"""The requester: the identity every read and write is decided and recorded for."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class Scope(enum.StrEnum):
    """A permission a token carries.

    ``read`` covers QIDO-RS and every WADO form, ``store`` covers STOW-RS, ``admin`` covers the
    admin API (organisations, tokens, authorizations, quarantine) and ``emergency`` lets a user
    open emergency access to one patient's studies by giving a reason.
    """

    READ = "read"
    STORE = "store"
    ADMIN = "admin"
    EMERGENCY = "emergency"


def parse_scopes(text: str) -> frozenset[Scope]:
    """Parse scope names separated by commas or spaces ("read,store").

    Raises
    ------
    ValueError
        When a name is not a scope; the message lists the scopes.
    """
    names = [name for name in text.replace(",", " ").split() if name]
    if not names:
        raise ValueError(f"no scope given; use one or more of {', '.join(Scope)}")
    scopes = set()
    for name in names:
        try:
            scopes.add(Scope(name.lower()))
        except ValueError:
            raise ValueError(f"unknown scope {name!r}; use one or more of {', '.join(Scope)}") from None
    return frozenset(scopes)


def format_scopes(scopes: frozenset[Scope] | frozenset[str]) -> str:
    return " ".join(sorted(str(scope) for scope in scopes))


@dataclass(frozen=True)
class Requester:
    """Who sent a request.

    ``affiliated`` is true for members of the archive's own organisation, who see every study
    their scopes allow; external requesters see only what an authorization covers.
    ``organisation_key`` is the internal key of the organisation, which the consent predicate
    uses. It is None only for the local user of a server started with ``--open``.
    """

    subject: str
    organisation: str | None = None
    affiliated: bool = True
    scopes: frozenset[str] = field(default_factory=frozenset)
    organisation_key: int | None = None

    def has_scope(self, scope: Scope) -> bool:
        return scope in self.scopes

    @property
    def external(self) -> bool:
        return not self.affiliated

    def describe(self) -> str:
        """Name the requester for records such as "recorded by": subject and organisation."""
        if self.organisation is None:
            return self.subject
        return f"{self.subject} ({self.organisation})"


LOCAL_REQUESTER = Requester(
    subject="local",
    organisation=None,
    affiliated=True,
    scopes=frozenset({Scope.READ, Scope.STORE, Scope.ADMIN}),
)
"""The user of a server started with ``--open`` who sends no token; allowed on loopback only."""
