"""The ``dicomweb-server`` command: one module per subcommand, each with ``add_parser`` and ``run``.

Every subcommand takes the same settings options as ``serve``, so a command works on the data
folder or databases the server uses.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from dicomweb_server import __version__
from dicomweb_server.cli import (
    audit,
    check_config,
    consent,
    import_,
    migrate,
    org,
    peer,
    quarantine,
    report,
    serve,
    sweep,
    token,
)
from dicomweb_server.config import SettingsError

COMMANDS = (
    serve,
    migrate,
    import_,
    sweep,
    check_config,
    org,
    token,
    consent,
    quarantine,
    peer,
    audit,
    report,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dicomweb-server",
        description=(
            "A DICOMweb archive that shares studies with outside facilities under patient authorization."
        ),
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        command.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # Every file and folder the server or a command creates is its owner's only: the index and
    # the objects hold patient data, and the data folder holds the admin token.
    os.umask(0o077)
    parser = build_parser()
    arguments = parser.parse_args(argv)
    try:
        return int(arguments.run(arguments) or 0)
    except SettingsError as error:
        print(f"dicomweb-server: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
