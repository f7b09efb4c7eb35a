"""``dicomweb-server migrate``: bring the index database to the schema of this version."""

from __future__ import annotations

import argparse
import asyncio

from dicomweb_server.cli.common import (
    INDEX_SETTINGS,
    add_settings_options,
    configure_logging,
    fail,
    prepare_data_dir,
    settings_from,
)
from dicomweb_server.index.database import IndexUnavailable, migrate_index


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "migrate",
        help="create or upgrade the index database schema",
        description="Apply the schema migrations the index database lacks. Safe to run again.",
    )
    add_settings_options(parser, INDEX_SETTINGS)
    parser.set_defaults(run=run)


def run(arguments: argparse.Namespace) -> int:
    settings = settings_from(arguments)
    configure_logging(settings)
    prepare_data_dir(settings)
    try:
        before, after = asyncio.run(migrate_index(settings))
    except IndexUnavailable as error:
        return fail(str(error))
    if before == after:
        print(f"The index schema is up to date (revision {after}).")
    else:
        print(f"Migrated the index schema from revision {before or 'none'} to {after}.")
    return 0
