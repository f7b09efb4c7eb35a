"""Turn a bearer token into a requester: an API token of this archive, or a JWT of the OIDC issuer.

Every request looks its token up in the index again, so a revoked token, a deleted
organisation or an expired token is refused from the next request on, on every replica.
"""

from __future__ import annotations

import asyncio
import datetime
import logging

from dicomweb_server.auth.identity import Requester
from dicomweb_server.auth.oidc import InvalidToken, OidcVerifier, requester_for_claims
from dicomweb_server.auth.tokens import looks_like_api_token, requester_for_token
from dicomweb_server.config import Settings
from dicomweb_server.index.database import Index

logger = logging.getLogger(__name__)


class Authenticator:
    """Checks bearer tokens against the index and, when configured, the OIDC issuer."""

    def __init__(self, settings: Settings) -> None:
        self.oidc = OidcVerifier(settings) if settings.oidc_issuer else None
        self.organisation_claim = settings.oidc_organisation_claim

    async def authenticate(self, index: Index, token: str, now: datetime.datetime) -> Requester:
        """Return the requester ``token`` stands for.

        Raises
        ------
        InvalidToken
            When the token is unknown, expired, revoked, of a deleted organisation, or a JWT
            that fails a check.
        """
        if looks_like_api_token(token):
            async with index.read() as connection:
                requester = await requester_for_token(connection, token, now)
            if requester is None:
                logger.info("Identity: rejected an API token that is unknown, expired or revoked")
                raise InvalidToken("the API token is unknown, expired or revoked")
            return requester

        if self.oidc is None:
            logger.info("Identity: rejected a bearer token that is not an API token")
            raise InvalidToken(
                "the bearer token is not an API token of this archive, and the archive accepts no JWTs"
            )
        try:
            claims = await asyncio.to_thread(self.oidc.verify, token)
            async with index.read() as connection:
                return await requester_for_claims(connection, claims, self.organisation_claim)
        except InvalidToken as error:
            logger.info("Identity: rejected a JWT: %s", error.message)
            raise
