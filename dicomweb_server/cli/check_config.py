"""``dicomweb-server check-config``: show the effective settings and check that they work."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses

from sqlalchemy.engine import make_url

from dicomweb_server.app import open_state
from dicomweb_server.cli.common import add_settings_options, configure_logging, fail, settings_from
from dicomweb_server.config import Secret, Settings
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
        print(f"{field.name} = {_shown(settings, field.name)}")
    try:
        state = asyncio.run(open_state(settings))
    except (IndexUnavailable, StoreError) as error:
        return fail(str(error))
    asyncio.run(state.index.close())
    print(
        f"The index ({_without_password(settings.effective_index_url)}) and the object store "
        f"({state.store.location}) are usable."
    )
    return 0


EFFECTIVE_WHEN_UNSET = {
    "index_url": "SQLite in the data folder",
    "store_url": "the objects folder in the data folder",
    "spool_dir": "tmp in the data folder",
}
"""Settings whose unset value means a place in the data folder, and which place."""


def _shown(settings: Settings, name: str) -> str:
    """Write a setting's value; an unset place in the data folder is written as the place it means."""
    value = getattr(settings, name)
    if isinstance(value, Secret):
        return "(hidden)"
    if name == "index_url":
        value = _without_password(settings.effective_index_url)
    elif name == "store_url" and value is None:
        value = settings.data_dir / "objects"
    elif name == "spool_dir":
        value = settings.effective_spool_dir
    if name in EFFECTIVE_WHEN_UNSET and getattr(settings, name) is None:
        return f"{value} (unset: {EFFECTIVE_WHEN_UNSET[name]})"
    return "(unset)" if value is None else str(value)


def _without_password(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)
