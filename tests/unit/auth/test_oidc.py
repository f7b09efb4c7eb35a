"""OIDC bearer JWTs: signature, algorithm, issuer, audience, expiry and claims."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt import PyJWK
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from jwt.exceptions import PyJWKClientError

from dicomweb_server.auth.oidc import InvalidToken, OidcVerifier, claimed_scopes
from dicomweb_server.config import SettingsError, load_settings

ISSUER = "https://idp.example.org/realms/imaging"
AUDIENCE = "https://pacs.example.org/dicom-web"
KEY_ID = "signing-1"


class KeySet:
    """Stands in for PyJWKClient: the issuer's published keys, by key id."""

    def __init__(self, keys: dict[str, PyJWK]) -> None:
        self.keys = keys

    def get_signing_key(self, kid: str) -> PyJWK:
        if kid not in self.keys:
            raise PyJWKClientError(f'Unable to find a signing key that matches: "{kid}"')
        return self.keys[kid]


def _public_jwk(private_key: Any, algorithm: str) -> PyJWK:
    converter = RSAAlgorithm if algorithm.startswith(("RS", "PS")) else ECAlgorithm
    document = json.loads(converter.to_jwk(private_key.public_key()))
    return PyJWK({**document, "kid": KEY_ID, "alg": algorithm})


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def verifier(rsa_key: rsa.RSAPrivateKey) -> OidcVerifier:
    settings = load_settings(
        {"oidc_issuer": ISSUER, "oidc_audience": AUDIENCE, "oidc_jwks_url": "http://127.0.0.1:9/jwks"},
        environ={},
    )
    checker = OidcVerifier(settings)
    checker.keys = KeySet({KEY_ID: _public_jwk(rsa_key, "RS256")})  # type: ignore[assignment]
    return checker


def _claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "dr-who", "exp": now + 300, "iat": now, "org": "Mercy"}
    claims["scope"] = "read store"
    claims.update(changes)
    return {key: value for key, value in claims.items() if value is not None}


def _sign(key: Any, claims: dict[str, Any], algorithm: str = "RS256", kid: str | None = KEY_ID) -> str:
    headers = {"kid": kid} if kid else {}
    return jwt.encode(claims, key, algorithm=algorithm, headers=headers)


def _part(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _unsigned(claims: dict[str, Any]) -> str:
    return f"{_part({'alg': 'none', 'typ': 'JWT', 'kid': KEY_ID})}.{_part(claims)}."


def test_jwt_valid_returns_claims(verifier: OidcVerifier, rsa_key: rsa.RSAPrivateKey) -> None:
    claims = verifier.verify(_sign(rsa_key, _claims()))
    assert claims["sub"] == "dr-who"
    assert claims["org"] == "Mercy"


def test_jwt_wrong_audience_rejected(verifier: OidcVerifier, rsa_key: rsa.RSAPrivateKey) -> None:
    with pytest.raises(InvalidToken, match="(?i)audience"):
        verifier.verify(_sign(rsa_key, _claims(aud="https://other.example.org")))


def test_jwt_wrong_issuer_rejected(verifier: OidcVerifier, rsa_key: rsa.RSAPrivateKey) -> None:
    with pytest.raises(InvalidToken, match="issuer"):
        verifier.verify(_sign(rsa_key, _claims(iss="https://evil.example.org")))


def test_jwt_expired_rejected(verifier: OidcVerifier, rsa_key: rsa.RSAPrivateKey) -> None:
    with pytest.raises(InvalidToken, match="expired"):
        verifier.verify(_sign(rsa_key, _claims(exp=int(time.time()) - 120)))


def test_jwt_expired_within_leeway_accepted(verifier: OidcVerifier, rsa_key: rsa.RSAPrivateKey) -> None:
    assert verifier.verify(_sign(rsa_key, _claims(exp=int(time.time()) - 5)))["sub"] == "dr-who"


def test_jwt_not_yet_valid_rejected(verifier: OidcVerifier, rsa_key: rsa.RSAPrivateKey) -> None:
    with pytest.raises(InvalidToken, match="not yet valid"):
        verifier.verify(_sign(rsa_key, _claims(nbf=int(time.time()) + 600)))


@pytest.mark.parametrize("claim", ["exp", "iss", "aud", "sub"])
def test_jwt_missing_claim_rejected(verifier: OidcVerifier, rsa_key: rsa.RSAPrivateKey, claim: str) -> None:
    with pytest.raises(InvalidToken, match=claim):
        verifier.verify(_sign(rsa_key, _claims(**{claim: None})))


def test_jwt_wrong_signature_rejected(verifier: OidcVerifier) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(InvalidToken, match="Signature verification failed"):
        verifier.verify(_sign(other, _claims()))


def test_jwt_alg_none_rejected(verifier: OidcVerifier) -> None:
    with pytest.raises(InvalidToken, match="'none'"):
        verifier.verify(_unsigned(_claims()))


def test_jwt_symmetric_with_public_key_rejected(verifier: OidcVerifier, rsa_key: rsa.RSAPrivateKey) -> None:
    # A forger who signs with HS256, using the issuer's public key as the secret, must fail.
    public = RSAAlgorithm.to_jwk(rsa_key.public_key()).encode()
    signing_input = f"{_part({'alg': 'HS256', 'typ': 'JWT', 'kid': KEY_ID})}.{_part(_claims())}"
    signature = hmac.new(public, signing_input.encode(), hashlib.sha256).digest()
    token = f"{signing_input}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"
    with pytest.raises(InvalidToken, match="'HS256'"):
        verifier.verify(token)


def test_jwt_unknown_key_rejected(verifier: OidcVerifier, rsa_key: rsa.RSAPrivateKey) -> None:
    with pytest.raises(InvalidToken, match="key the issuer does not publish"):
        verifier.verify(_sign(rsa_key, _claims(), kid="rotated-away"))


def test_jwt_without_kid_rejected(verifier: OidcVerifier, rsa_key: rsa.RSAPrivateKey) -> None:
    with pytest.raises(InvalidToken, match="no kid"):
        verifier.verify(_sign(rsa_key, _claims(), kid=None))


def test_jwt_garbage_rejected(verifier: OidcVerifier) -> None:
    with pytest.raises(InvalidToken, match="neither an API token"):
        verifier.verify("not.a.jwt")


def test_jwt_elliptic_curve_accepted(verifier: OidcVerifier) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    verifier.keys = KeySet({KEY_ID: _public_jwk(key, "ES256")})  # type: ignore[assignment]
    assert verifier.verify(_sign(key, _claims(), algorithm="ES256"))["sub"] == "dr-who"


def test_claimed_scopes_reads_scope_and_scp() -> None:
    assert claimed_scopes({"scope": "read openid profile"}) == {"read"}
    assert claimed_scopes({"scp": ["store", "emergency", "other"]}) == {"store", "emergency"}
    assert claimed_scopes({"scope": 42}) == frozenset()


def test_oidc_settings_incomplete_rejected() -> None:
    with pytest.raises(SettingsError, match="oidc_audience, oidc_jwks_url missing"):
        load_settings({"oidc_issuer": ISSUER}, environ={})


@pytest.mark.parametrize("algorithms", ["none", "HS256", "RS256,HS512"])
def test_oidc_symmetric_algorithms_rejected(algorithms: str) -> None:
    with pytest.raises(SettingsError, match="invalid oidc_algorithms"):
        load_settings({"oidc_algorithms": tuple(algorithms.split(","))}, environ={})
