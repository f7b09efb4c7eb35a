"""``dicomweb-server check-config``: show the effective settings and check that they work."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses

from dicomweb_server.app import open_state
from dicomweb_server.cli.common import add_settings_options, configure_logging, fail, settings_from
from dicomweb_server.config import Secret
from dicomweb_server.index.database import IndexUnavailable
from dicomweb_server.storage.store import StoreError


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "check-config",
        help="print the effective settings and check the index and object store",
        description="Print every setting with its effective value (secrets hidden), then open "
        "the index and the object store as `serve` would.",
    )
    add_settings_options(parser)
    parser.set_defaults(run=run)


def run(arguments: argparse.Namespace) -> int:
    settings = settings_from(arguments)
    configure_logging(settings)
    for field in dataclasses.fields(settings):
        value = getattr(settings, field.name)
        shown = "(hidden)" if isinstance(value, Secret) else value
        print(f"{field.name} = {shown}")
    try:
        state = asyncio.run(open_state(settings))
    except (IndexUnavailable, StoreError) as error:
        return fail(str(error))
    asyncio.run(state.index.close())
    print("The index and the object store are usable.")
    return 0
