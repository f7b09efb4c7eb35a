"""Options and helpers shared by the subcommands: the settings options and logging."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from dicomweb_server.config import Settings, env_name, load_settings, settings_fields

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def add_settings_options(parser: argparse.ArgumentParser) -> None:
    """Add one option per setting (``--data-dir``), each defaulting to its DICOMWEB_ variable."""
    group = parser.add_argument_group(
        "settings", "each option also reads from the environment variable named in its help"
    )
    group.add_argument("--config", type=Path, metavar="FILE", help="TOML file of settings (DICOMWEB_CONFIG)")
    for field in settings_fields():
        option = "--" + field.name.replace("_", "-")
        metavar = field.metadata["metavar"] or field.name.upper()
        parse = field.metadata["parse"]
        # A boolean setting given without a value means true, so `serve --open` works like a flag.
        flag = {"nargs": "?", "const": True} if field.type in ("bool", bool) else {}
        group.add_argument(
            option,
            dest=f"setting_{field.name}",
            type=parse,
            default=None,
            metavar=metavar,
            help=f"{field.metadata['help']} ({env_name(field.name)})",
            **flag,
        )


def settings_from(arguments: argparse.Namespace) -> Settings:
    overrides = {field.name: getattr(arguments, f"setting_{field.name}", None) for field in settings_fields()}
    return load_settings(overrides, config_file=getattr(arguments, "config", None))


def configure_logging(settings: Settings) -> None:
    """Send log lines to stderr; only the command line configures logging."""
    logging.basicConfig(level=settings.log_level.upper(), format=LOG_FORMAT, stream=sys.stderr, force=True)
    logging.getLogger("uvicorn.access").disabled = True
    for noisy in ("aiosqlite", "alembic", "asyncio", "multipart", "python_multipart", "pydicom"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))


def fail(message: str, code: int = 2) -> int:
    print(f"dicomweb-server: {message}", file=sys.stderr)
    return code
