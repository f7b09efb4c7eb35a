"""Settings of the server, read once at start from the command line, the environment and a file.

Every setting has a command-line option (``--data-dir``), an environment variable with the
``DICOMWEB_`` prefix (``DICOMWEB_DATA_DIR``) and a key in an optional TOML file (``data_dir``),
named by ``--config`` or ``DICOMWEB_CONFIG``. The command line wins over the environment, which
wins over the file, which wins over the default.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

ENV_PREFIX = "DICOMWEB_"


class SettingsError(ValueError):
    """Raised when a setting has a value the server cannot use."""


class Secret:
    """A string that never shows its value in ``repr`` or ``str``, so logs and tracebacks stay clean."""

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    def __str__(self) -> str:
        return "**********"

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "dicomweb-server"


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"{text!r} is not a boolean; use true or false")


def _parse_list(text: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in text.split(",") if item.strip())


def _parse_size(text: str) -> int:
    """Parse a byte count with an optional K, M, G or T suffix (powers of 1024)."""
    units = {"K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
    cleaned = text.strip().upper().removesuffix("B").removesuffix("I")
    if cleaned and cleaned[-1] in units:
        return int(float(cleaned[:-1]) * units[cleaned[-1]])
    return int(cleaned)


def _parse_networks(text: str) -> tuple[str, ...]:
    networks = _parse_list(text)
    for network in networks:
        ipaddress.ip_network(network, strict=False)
    return networks


def setting(
    default: Any,
    help: str,
    parse: Callable[[str], Any] = str,
    *,
    metavar: str | None = None,
    secret: bool = False,
) -> Any:
    """Declare one setting: its default, its help text and how to parse it from text."""
    metadata = {"help": help, "parse": parse, "metavar": metavar, "secret": secret}
    if callable(default):
        return field(default_factory=default, metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass(frozen=True)
class Settings:
    """The server's configuration. Build it with :func:`load_settings`, never field by field."""

    data_dir: Path = setting(
        default_data_dir, "folder for the SQLite index, stored objects and spool files", Path
    )
    host: str = setting("127.0.0.1", "address to listen on")
    port: int = setting(8080, "TCP port to listen on", int)
    index_url: str | None = setting(
        None,
        "index database URL (postgresql://user@host/db); unset means SQLite in the data folder",
        metavar="URL",
    )
    store_url: str | None = setting(
        None,
        "object store URL (s3://bucket/prefix); unset means the objects folder in the data folder",
        metavar="URL",
    )
    s3_endpoint: str | None = setting(
        None, "endpoint of an S3-compatible service (http://127.0.0.1:8333)", metavar="URL"
    )
    s3_region: str = setting("us-east-1", "S3 region")
    s3_access_key_id: str | None = setting(None, "S3 access key id")
    s3_secret_access_key: Secret | None = setting(None, "S3 secret access key", Secret, secret=True)
    index_pool_size: int = setting(
        10, "database connections kept open per server process, besides the audit writer's one", int
    )
    index_max_overflow: int = setting(10, "database connections opened beyond the pool under load", int)
    index_timeout: float = setting(30.0, "seconds to wait for a database connection or statement", float)
    store_timeout: float = setting(60.0, "seconds to wait for one object-store request", float)
    body_read_timeout: float = setting(
        60.0,
        "seconds to wait for the next bytes of a request body before the request fails with 408",
        float,
    )
    max_part_size: int = setting(
        4 * 1024**3, "largest DICOM part accepted by STOW-RS, in bytes (K, M, G suffixes)", _parse_size
    )
    spool_dir: Path | None = setting(
        None, "folder for STOW-RS spool files; unset means tmp in the data folder", Path
    )
    overwrite: bool = setting(
        False,
        "replace a stored instance when the same SOP Instance UID arrives with other content",
        _parse_bool,
    )
    qido_max_results: int = setting(
        1000, "most results one QIDO-RS response returns, whatever its limit", int
    )
    cors_origins: tuple[str, ...] = setting(
        (), "browser origins allowed to call the server (comma-separated)", _parse_list
    )
    trusted_proxies: tuple[str, ...] = setting(
        (),
        "addresses or networks of reverse proxies whose Forwarded and X-Forwarded-* headers are "
        "trusted (comma-separated)",
        _parse_networks,
    )
    public_base_url: str | None = setting(
        None,
        "URL clients use to reach the server (https://pacs.example.org); overrides request headers",
        metavar="URL",
    )
    shutdown_timeout: float = setting(
        30.0, "seconds to let requests in flight finish after SIGTERM or Ctrl-C", float
    )
    workers: int = setting(
        1,
        "server processes sharing the port; each uses one core for parsing, JSON and transcoding",
        int,
    )
    log_level: str = setting("info", "log level: debug, info, warning or error")
    open: bool = setting(
        False,
        "serve requests that carry no token as the local administrator; allowed only with a loopback "
        "host, for trying the server out",
        _parse_bool,
    )
    bootstrap_admin_token: bool = setting(
        True,
        "on start, issue an admin token and write it to admin-token in the data folder when that "
        "file is missing",
        _parse_bool,
    )
    token_lifetime_days: int = setting(
        365, "days an API token stays valid when it is created without an expiry date", int
    )
    time_zone: str = setting(
        "UTC",
        "IANA time zone of dates given without a time (an authorization that ends on 2027-03-01 "
        "ends at the end of that day there), such as Europe/Paris",
    )
    oidc_issuer: str | None = setting(
        None,
        "issuer (iss claim) of the OAuth 2.0 / OIDC access tokens to accept; unset accepts none",
        metavar="URL",
    )
    oidc_audience: str | None = setting(
        None, "audience (aud claim) the OIDC access tokens must name: this archive's identifier"
    )
    oidc_jwks_url: str | None = setting(
        None,
        "URL of the issuer's signing keys (JWKS) the OIDC access tokens are checked against",
        metavar="URL",
    )
    oidc_algorithms: tuple[str, ...] = setting(
        ("RS256", "PS256", "ES256"),
        "signature algorithms accepted on OIDC access tokens (comma-separated; asymmetric only)",
        _parse_list,
    )
    oidc_leeway: float = setting(
        30.0, "seconds of clock difference tolerated on the exp, nbf and iat claims (at most 60)", float
    )
    oidc_organisation_claim: str = setting(
        "org", "claim of an OIDC access token that names the requester's registered organisation"
    )
    emergency_access_minutes: int = setting(
        240, "minutes an emergency access stays open unless closed earlier (at most 1440)", int
    )
    peer_secret_key: Secret | None = setting(
        None,
        "key that encrypts the credentials of peers in the index: 32 random bytes in base64url; unset "
        "means the file peer-secret-key in the data folder, created on first use",
        Secret,
        secret=True,
    )

    @property
    def effective_index_url(self) -> str:
        if self.index_url:
            return self.index_url
        return f"sqlite:///{self.data_dir / 'index.sqlite3'}"

    @property
    def effective_spool_dir(self) -> Path:
        return self.spool_dir or self.data_dir / "tmp"

    @property
    def uses_embedded_index(self) -> bool:
        return self.effective_index_url.startswith("sqlite")


def settings_fields() -> list[dataclasses.Field[Any]]:
    return list(dataclasses.fields(Settings))


def env_name(name: str) -> str:
    return ENV_PREFIX + name.upper()


def settings_environment(settings: Settings) -> dict[str, str]:
    """Write settings as DICOMWEB_* variables that :func:`load_settings` reads back unchanged.

    Worker processes get their settings this way. Secrets are written in clear, so the result
    belongs only in the environment of processes of this server.
    """
    environment = {}
    for settings_field in settings_fields():
        value = getattr(settings, settings_field.name)
        if value is None:
            continue
        if isinstance(value, Secret):
            text = value.reveal()
        elif isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, tuple):
            text = ",".join(value)
        else:
            text = str(value)
        environment[env_name(settings_field.name)] = text
    return environment


def load_settings(
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    config_file: Path | None = None,
) -> Settings:
    """Build settings from a TOML file, the environment and explicit overrides.

    Parameters
    ----------
    overrides
        Values already parsed, typically from command-line options; ``None`` values are ignored.
    environ
        The environment to read ``DICOMWEB_*`` variables from; defaults to ``os.environ``.
    config_file
        A TOML file; defaults to the path in ``DICOMWEB_CONFIG`` when that is set.

    Raises
    ------
    SettingsError
        When a value cannot be parsed or a key is unknown; the message names the setting.
    """
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}

    config_variable = env_name("config")
    config_path = config_file or (Path(environ[config_variable]) if config_variable in environ else None)
    if config_path is not None:
        values.update(_read_config_file(config_path))

    for settings_field in settings_fields():
        variable = env_name(settings_field.name)
        if variable in environ:
            values[settings_field.name] = _parse_value(settings_field, environ[variable], variable)

    for name, value in (overrides or {}).items():
        if value is not None:
            values[name] = value

    return _validate(Settings(**values))


def _read_config_file(path: Path) -> dict[str, Any]:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise SettingsError(f"cannot read the configuration file {str(path)!r}: {error.strerror}") from error
    except tomllib.TOMLDecodeError as error:
        raise SettingsError(f"invalid TOML in configuration file {str(path)!r}: {error}") from error

    known = {f.name: f for f in settings_fields()}
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in known:
            raise SettingsError(
                f"unknown setting {key!r} in {str(path)!r}; known settings are {', '.join(sorted(known))}"
            )
        text = ",".join(map(str, value)) if isinstance(value, list) else str(value)
        values[key] = _parse_value(known[key], text, f"{key} in {path}")
    return values


def _parse_value(settings_field: dataclasses.Field[Any], text: str, source: str) -> Any:
    parse = settings_field.metadata["parse"]
    try:
        return parse(text)
    except (ValueError, TypeError) as error:
        shown = "(hidden)" if settings_field.metadata["secret"] else repr(text)
        raise SettingsError(f"invalid value {shown} for {source}: {error}") from error


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _is_public(url: str | None) -> bool:
    """Return whether a base URL names a host other than a loopback address or localhost."""
    if not url:
        return False
    host = urlsplit(url).hostname or ""
    return not (host == "localhost" or is_loopback(host))


def _validate_open(settings: Settings) -> None:
    """Allow open mode only where requests come from this machine and reach it directly."""
    if settings.open and not is_loopback(settings.host):
        raise SettingsError(
            f"invalid host {settings.host!r} with open=true: an open server answers requests without "
            "a token, so it listens only on a loopback address such as 127.0.0.1; drop --open to "
            "serve other machines, whose requests then need a token"
        )
    if settings.open and (settings.trusted_proxies or _is_public(settings.public_base_url)):
        configured = "trusted_proxies" if settings.trusted_proxies else "public_base_url"
        raise SettingsError(
            f"invalid open=true with {configured} set: a server behind a reverse proxy or reached at a "
            "public URL receives requests from other machines, which an open server would serve "
            f"without a token; unset {configured} or drop --open"
        )


def _validate(settings: Settings) -> Settings:
    _validate_open(settings)
    if not 0 < settings.port < 65536:
        raise SettingsError(f"invalid port {settings.port}; use a number from 1 to 65535")
    if not 1 <= settings.workers <= 64:
        raise SettingsError(f"invalid workers {settings.workers}; use a number from 1 to 64")
    if settings.qido_max_results < 1:
        raise SettingsError(f"invalid qido_max_results {settings.qido_max_results}; use 1 or more")
    if settings.max_part_size < 1:
        raise SettingsError(f"invalid max_part_size {settings.max_part_size}; use 1 or more bytes")
    if settings.log_level.lower() not in {"debug", "info", "warning", "error"}:
        raise SettingsError(f"invalid log_level {settings.log_level!r}; use debug, info, warning or error")
    _validate_identity(settings)
    if settings.index_pool_size < 1:
        raise SettingsError(f"invalid index_pool_size {settings.index_pool_size}; use 1 or more connections")
    if settings.index_max_overflow < 0:
        raise SettingsError(
            f"invalid index_max_overflow {settings.index_max_overflow}; use 0 or more connections"
        )
    for name in ("index_timeout", "store_timeout", "body_read_timeout"):
        if getattr(settings, name) <= 0:
            raise SettingsError(f"invalid {name} {getattr(settings, name)}; use a number of seconds above 0")
    index_url = settings.effective_index_url
    if not index_url.startswith(("sqlite", "postgresql", "postgres")):
        raise SettingsError(
            f"invalid index_url {index_url!r}; use postgresql://user@host:port/database "
            "or leave it unset for SQLite in the data folder"
        )
    if settings.store_url and not settings.store_url.startswith(("s3://", "file://")):
        raise SettingsError(
            f"invalid store_url {settings.store_url!r}; use s3://bucket/prefix "
            "or leave it unset for the objects folder in the data folder"
        )
    return settings


MAX_OIDC_LEEWAY = 60.0
MAX_EMERGENCY_ACCESS_MINUTES = 24 * 60
MAX_TOKEN_LIFETIME_DAYS = 36500
"""A hundred years; an expiry beyond the year 9999 cannot be represented."""
ASYMMETRIC_ALGORITHMS = (
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES256K",
    "ES384",
    "ES512",
    "EdDSA",
)


def _validate_identity(settings: Settings) -> None:
    try:
        ZoneInfo(settings.time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise SettingsError(
            f"invalid time_zone {settings.time_zone!r}; use an IANA name such as UTC or Europe/Paris"
        ) from None
    if not 1 <= settings.token_lifetime_days <= MAX_TOKEN_LIFETIME_DAYS:
        raise SettingsError(
            f"invalid token_lifetime_days {settings.token_lifetime_days}; use 1 to {MAX_TOKEN_LIFETIME_DAYS}"
        )
    if not 1 <= settings.emergency_access_minutes <= MAX_EMERGENCY_ACCESS_MINUTES:
        raise SettingsError(
            f"invalid emergency_access_minutes {settings.emergency_access_minutes}; "
            f"use 1 to {MAX_EMERGENCY_ACCESS_MINUTES} (24 hours)"
        )
    oidc = {
        "oidc_issuer": settings.oidc_issuer,
        "oidc_audience": settings.oidc_audience,
        "oidc_jwks_url": settings.oidc_jwks_url,
    }
    if any(oidc.values()) and not all(oidc.values()):
        missing = ", ".join(name for name, value in oidc.items() if not value)
        raise SettingsError(f"incomplete OIDC settings: {missing} missing; set all three or none")
    rejected = [name for name in settings.oidc_algorithms if name not in ASYMMETRIC_ALGORITHMS]
    if rejected or not settings.oidc_algorithms:
        raise SettingsError(
            f"invalid oidc_algorithms {','.join(settings.oidc_algorithms)!r}: "
            f"{', '.join(rejected) or 'none given'}; use asymmetric algorithms from "
            f"{', '.join(ASYMMETRIC_ALGORITHMS)} (a symmetric key or alg none could be forged)"
        )
    if not 0 <= settings.oidc_leeway <= MAX_OIDC_LEEWAY:
        raise SettingsError(
            f"invalid oidc_leeway {settings.oidc_leeway}; use 0 to {MAX_OIDC_LEEWAY:g} seconds"
        )
