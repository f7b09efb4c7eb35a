"""Options and helpers shared by the subcommands: the settings options, logging and the data folder."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import stat
import sys
from collections.abc import Collection
from pathlib import Path
from typing import Any

from dicomweb_server.config import Settings, default_data_dir, env_name, load_settings, settings_fields

logger = logging.getLogger(__name__)

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

INDEX_SETTINGS = ("data_dir", "index_url", "index_timeout", "log_level")
"""Settings a command that works on the index alone uses."""
RECORD_SETTINGS = (*INDEX_SETTINGS, "time_zone")
"""Settings of the commands that keep records: org, token, consent, peer, audit, report."""
STORE_SETTINGS = (
    *INDEX_SETTINGS,
    "store_url",
    "s3_endpoint",
    "s3_region",
    "s3_access_key_id",
    "s3_secret_access_key",
    "store_timeout",
    "spool_dir",
)
"""Settings a command that works on the index and the object store uses."""


def add_settings_options(parser: argparse.ArgumentParser, shown: Collection[str] | None = None) -> None:
    """Add one option per setting (``--data-dir``), each defaulting to its DICOMWEB_ variable.

    Every setting is accepted, so a command works on the same data as ``serve`` however it is
    configured. With ``shown``, the help lists only those settings, the ones the command uses.
    """
    if shown is None:
        group = parser.add_argument_group(
            "settings", "each option is also an environment variable, named in its help, and a TOML key"
        )
    else:
        group = parser.add_argument_group(
            "settings",
            "the settings this command uses; it accepts every option of `dicomweb-server serve --help` "
            "as well, and each is also an environment variable, named in its help, and a TOML key",
        )
    group.add_argument("--config", type=Path, metavar="FILE", help="TOML file of settings (DICOMWEB_CONFIG)")
    for field in settings_fields():
        option = "--" + field.name.replace("_", "-")
        metavar = field.metadata["metavar"] or field.name.upper()
        parse = field.metadata["parse"]
        # A boolean setting given without a value means true, so `serve --open` works like a flag.
        flag = {"nargs": "?", "const": True} if field.type in ("bool", bool) else {}
        described = f"{field.metadata['help']} (default: {_default_text(field)}; {env_name(field.name)})"
        group.add_argument(
            option,
            dest=f"setting_{field.name}",
            type=parse,
            default=None,
            metavar=metavar,
            help=described if shown is None or field.name in shown else argparse.SUPPRESS,
            **flag,
        )


def _default_text(field: dataclasses.Field[Any]) -> str:
    """Write the default of a setting as a user would type it; % is doubled for argparse."""
    if field.default_factory is not dataclasses.MISSING:
        default = field.default_factory()
    else:
        default = field.default
    if default is None:
        text = "unset"
    elif isinstance(default, bool):
        text = "true" if default else "false"
    elif isinstance(default, tuple):
        text = ",".join(default) or "none"
    elif isinstance(default, float):
        text = f"{default:g}"
    else:
        text = str(default)
    return text.replace("%", "%%")


def settings_from(arguments: argparse.Namespace) -> Settings:
    overrides = {field.name: getattr(arguments, f"setting_{field.name}", None) for field in settings_fields()}
    return load_settings(overrides, config_file=getattr(arguments, "config", None))


def configure_logging(settings: Settings) -> None:
    """Send log lines to stderr; only the command line configures logging."""
    logging.basicConfig(level=settings.log_level.upper(), format=LOG_FORMAT, stream=sys.stderr, force=True)
    logging.getLogger("uvicorn.access").disabled = True
    # Clients of peers log URLs with query strings (patient attributes) and request headers
    # (credentials) at INFO and DEBUG, so they stay at WARNING whatever the level.
    for noisy in (
        "aiosqlite",
        "alembic",
        "asyncio",
        "multipart",
        "python_multipart",
        "pydicom",
        "dicomweb_client",
        "httpx",
        "httpcore",
        "urllib3",
    ):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
    # pydicom logs the failure of each pixel decoder with a traceback at ERROR; the archive logs one
    # line for every decode failure it catches (web.decode_failures), so those would only repeat it.
    logging.getLogger("pydicom").setLevel(max(logging.CRITICAL, logging.getLogger().level))


def prepare_data_dir(settings: Settings) -> None:
    """Create the data folder readable only by its owner (mode 0700), and check an existing one.

    The folder contains the index (patient names and IDs, token hashes, authorizations) and the
    stored instances. The default folder belongs to the server alone, so group and other
    permissions on it are removed. A folder named in the settings keeps its permissions, which
    its administrator may have chosen (a backup group, say), and a warning names it.
    """
    folder = settings.data_dir
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    mode = stat.S_IMODE(folder.stat().st_mode)
    if not mode & 0o077:
        return
    if folder == default_data_dir():
        os.chmod(folder, 0o700)
        logger.info("Server: removed group and other permissions from the data folder %s", folder)
        return
    logger.warning(
        "Server: other users may read the data folder %s (mode %03o); it contains patient data, so run "
        "chmod 700 on it unless that access is wanted",
        folder,
        mode,
    )


def fail(message: str, code: int = 2) -> int:
    print(f"dicomweb-server: {message}", file=sys.stderr)
    return code
