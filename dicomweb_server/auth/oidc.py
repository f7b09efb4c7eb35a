"""OAuth 2.0 / OIDC bearer JWTs from one configured issuer, checked against its JWKS.

A token is accepted when its signature verifies with the key of the issuer's JWKS that its
``kid`` header names, and its algorithm is one of the configured asymmetric ones (never
``none``). Its ``iss``, ``aud`` and ``exp`` claims must hold, and ``nbf`` and ``iat`` too when
present, within a small clock leeway. Its claims then name a registered organisation and the
scopes: ``scope`` as a space-separated string (RFC 9068) or ``scp`` as a list. Scope names other
than read, store, admin and emergency are ignored.
"""

from __future__ import annotations

import logging
from typing import Any

import jwt
from jwt import PyJWKClient
from jwt.exceptions import PyJWKClientConnectionError, PyJWKClientError
from sqlalchemy.ext.asyncio import AsyncConnection

from dicomweb_server.auth.identity import Requester, Scope
from dicomweb_server.auth.organisations import find_organisation
from dicomweb_server.config import Settings
from dicomweb_server.errors import DependencyUnavailable, Unauthenticated

logger = logging.getLogger(__name__)

JWKS_CACHE_SECONDS = 300
JWKS_TIMEOUT_SECONDS = 10
REQUIRED_CLAIMS = ["exp", "iss", "aud", "sub"]


class InvalidToken(Unauthenticated):
    """The bearer token was sent but cannot be trusted; the message gives the reason to the token's holder."""


class OidcVerifier:
    """Checks JWTs of the configured issuer. The JWKS is cached and fetched again for an unknown key id."""

    def __init__(self, settings: Settings) -> None:
        assert settings.oidc_issuer is not None
        assert settings.oidc_audience is not None
        assert settings.oidc_jwks_url is not None
        self.issuer = settings.oidc_issuer
        self.audience = settings.oidc_audience
        self.algorithms = list(settings.oidc_algorithms)
        self.leeway = settings.oidc_leeway
        self.organisation_claim = settings.oidc_organisation_claim
        self.keys = PyJWKClient(
            settings.oidc_jwks_url,
            cache_jwk_set=True,
            lifespan=JWKS_CACHE_SECONDS,
            timeout=JWKS_TIMEOUT_SECONDS,
        )

    def verify(self, token: str) -> dict[str, Any]:
        """Return the claims of a valid token; blocking (it may fetch the JWKS), so run it in a thread.

        Raises
        ------
        InvalidToken
            For a malformed token, an algorithm not accepted, an unknown key, a bad signature,
            or a failed claim check.
        DependencyUnavailable
            When the JWKS cannot be fetched.
        """
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise InvalidToken("the bearer token is neither an API token of this archive nor a JWT") from None
        algorithm = header.get("alg")
        if algorithm not in self.algorithms:
            raise InvalidToken(
                f"the JWT is signed with {algorithm!r}, and this archive accepts {', '.join(self.algorithms)}"
            )
        key_id = header.get("kid")
        if not isinstance(key_id, str):
            raise InvalidToken("the JWT has no kid header naming the issuer's signing key")

        try:
            key = self.keys.get_signing_key(key_id)
        except PyJWKClientConnectionError as error:
            logger.error("Identity: the OIDC issuer's JWKS could not be fetched: %s", type(error).__name__)
            raise DependencyUnavailable(
                "the archive cannot fetch its identity provider's signing keys; try again later"
            ) from error
        except PyJWKClientError:
            raise InvalidToken("the JWT is signed with a key the issuer does not publish") from None

        try:
            return jwt.decode(
                token,
                key,
                algorithms=self.algorithms,
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": REQUIRED_CLAIMS},
            )
        except jwt.InvalidTokenError as error:
            raise InvalidToken(f"the JWT is not valid: {error}") from None


def claimed_scopes(claims: dict[str, Any]) -> frozenset[str]:
    names: list[str] = []
    scope = claims.get("scope")
    if isinstance(scope, str):
        names += scope.split()
    scp = claims.get("scp")
    if isinstance(scp, str):
        names += scp.split()
    elif isinstance(scp, list):
        names += [name for name in scp if isinstance(name, str)]
    known = {str(member) for member in Scope}
    return frozenset(name for name in names if name in known)


async def requester_for_claims(
    connection: AsyncConnection, claims: dict[str, Any], organisation_claim: str
) -> Requester:
    """Return the requester of a verified JWT: its organisation must be registered and not deleted.

    Raises
    ------
    InvalidToken
        When the organisation claim is missing or names no registered organisation.
    """
    name = claims.get(organisation_claim)
    if not isinstance(name, str) or not name.strip():
        raise InvalidToken(f"the JWT has no {organisation_claim!r} claim naming the requester's organisation")
    owner = await find_organisation(connection, name)
    if owner is None:
        raise InvalidToken("the organisation named by the JWT is not registered with this archive")
    scopes = claimed_scopes(claims)
    if not owner.affiliated:
        scopes -= {Scope.ADMIN}
    return Requester(
        subject=f"user {claims['sub']}",
        organisation=owner.name,
        affiliated=owner.affiliated,
        scopes=scopes,
        organisation_key=owner.key,
    )
