"""Helpers of the record-keeping commands: org, token, consent and quarantine.

They open the same index as ``serve``, so they work while servers run; each change is one
transaction. A person running them is recorded as "cli <login name>".
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
from collections.abc import Awaitable, Callable, Collection, Sequence

from dicomweb_server.audit import command_context
from dicomweb_server.cli.common import (
    RECORD_SETTINGS,
    add_settings_options,
    configure_logging,
    fail,
    prepare_data_dir,
    settings_from,
)
from dicomweb_server.config import Settings
from dicomweb_server.errors import ArchiveError
from dicomweb_server.index.database import Index, IndexUnavailable, open_index
from dicomweb_server.storage.store import StoreError


def add_command(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    run: Callable[[argparse.Namespace], int],
    *,
    help: str,
    description: str,
    settings: Collection[str] = RECORD_SETTINGS,
) -> argparse.ArgumentParser:
    """Add a subcommand with the settings options, of which its help lists ``settings``.

    The caller adds its own options to the result; the help lists them before the settings.
    """
    parser = subparsers.add_parser(name, help=help, description=description, allow_abbrev=False)
    parser.set_defaults(run=run)
    add_settings_options(parser, settings)
    return parser


def actor() -> str:
    try:
        return f"cli {getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def run_on_index(arguments: argparse.Namespace, work: Callable[[Settings, Index], Awaitable[int]]) -> int:
    """Open the index of the settings, run ``work``, and turn archive errors into messages and exit codes.

    Exit codes: 0 success, 1 a request the archive rejected (the message gives the reason), 2 the
    index or the store could not be used.
    """
    settings = settings_from(arguments)
    configure_logging(settings)
    prepare_data_dir(settings)

    async def main() -> int:
        index = await open_index(settings)
        try:
            # The audit entries of the changes a command makes name the person running it.
            async with command_context(index, actor()):
                return await work(settings, index)
        finally:
            await index.close()

    try:
        return asyncio.run(main())
    except ArchiveError as error:
        return fail(error.message, 1)
    except (IndexUnavailable, StoreError) as error:
        return fail(str(error))


def print_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Print rows in columns wide enough for their longest value."""
    widths = [max(len(str(row[column])) for row in [header, *rows]) for column in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(str(value).ljust(width) for value, width in zip(row, widths, strict=True)).rstrip())


def counted(count: int, noun: str, plural: str | None = None) -> str:
    """Write ``count`` with ``noun``, or with its plural (``noun`` + "s" unless given) when it is not 1."""
    if count == 1:
        return f"{count} {noun}"
    return f"{count} {plural or noun + 's'}"
