"""``dicomweb-server sweep``: remove stored objects that no index row points to, and abandoned spool files.

Ingest writes an object before its index row, so a crash or a lost database connection between
the two leaves an object that nothing points to (an orphan). It costs space and nothing else:
no request can reach it. The sweep lists the store, looks up which listed keys the index points
to, and deletes the rest. It deletes only objects older than a grace period, so that an upload
still on its way to the index is never touched.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from dicomweb_server.cli.common import (
    STORE_SETTINGS,
    add_settings_options,
    configure_logging,
    fail,
    settings_from,
)
from dicomweb_server.cli.records import counted
from dicomweb_server.config import Settings
from dicomweb_server.index.database import Index, IndexUnavailable, open_index
from dicomweb_server.index.objects import find_indexed_object_keys, has_instances
from dicomweb_server.storage.spool import SpoolCleanup
from dicomweb_server.storage.store import (
    KEY_PREFIX,
    PROBE_PREFIX,
    ObjectStore,
    StoredObject,
    StoreError,
    open_store,
)

DEFAULT_GRACE_PERIOD = datetime.timedelta(hours=24)
BATCH_SIZE = 500
"""Keys looked up in the index per query; below SQLite's oldest limit of 999 bound parameters."""

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> datetime.timedelta:
    """Parse a duration such as ``3600``, ``90s``, ``30m``, ``24h`` or ``7d`` (no suffix means seconds)."""
    match = _DURATION.match(text)
    if match is None:
        raise argparse.ArgumentTypeError(
            f"invalid duration {text!r}; give a number of seconds, or a number with s, m, h or d (24h)"
        )
    return datetime.timedelta(seconds=float(match.group(1)) * _UNIT_SECONDS[match.group(2).lower()])


@dataclass(frozen=True)
class Duration:
    """A duration as the user wrote it ("24h"), for messages, and its value."""

    text: str
    value: datetime.timedelta


def duration_option(text: str) -> Duration:
    return Duration(text.strip(), parse_duration(text))


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "sweep",
        help="remove stored objects that no index row points to, and abandoned spool files",
        description="Find the objects in the object store that no instance in the index points to "
        "(left by a crash between writing an object and recording it) and remove those older than "
        "the grace period. Also remove the spool folders of server or import processes that were "
        "killed. Safe to run while servers run. Prints what it found on standard output.",
    )
    sweep = parser.add_argument_group("sweep")
    sweep.add_argument(
        "--grace-period",
        type=duration_option,
        default=Duration("24h", DEFAULT_GRACE_PERIOD),
        metavar="DURATION",
        help="keep objects younger than this, since an upload may still be on its way to the index "
        "(seconds, or with s, m, h or d; default 24h)",
    )
    sweep.add_argument(
        "--dry-run", action="store_true", help="list what would be removed, and remove nothing"
    )
    add_settings_options(parser, STORE_SETTINGS)
    parser.set_defaults(run=run)


class SweepStopped(Exception):
    """The sweep found the settings unsafe to act on; the message names what to check."""


@dataclass
class SweepTotals:
    """Counts of the orphan objects (with their total size in bytes) and abandoned spool files found."""

    objects: int = 0
    size: int = 0
    spool: SpoolCleanup = field(default_factory=SpoolCleanup)


def run(arguments: argparse.Namespace) -> int:
    settings = settings_from(arguments)
    configure_logging(settings)
    try:
        totals = asyncio.run(_sweep(settings, arguments.grace_period.value, arguments.dry_run))
    except (IndexUnavailable, StoreError, SweepStopped) as error:
        return fail(str(error))
    _print_summary(totals, arguments.grace_period, arguments.dry_run)
    return 0


async def _sweep(settings: Settings, grace_period: datetime.timedelta, dry_run: bool) -> SweepTotals:
    index = await open_index(settings, migrate_empty_embedded=False)
    try:
        store = open_store(settings)
        try:
            await store.check()
            await _reject_empty_index(index, store)
            return await sweep(index, store, grace_period, dry_run=dry_run)
        finally:
            store.close()
    finally:
        await index.close()


async def _reject_empty_index(index: Index, store: ObjectStore) -> None:
    """Stop when the index has no instance at all but the store has objects.

    Settings that pair a store with the wrong database (a new or a test one) would otherwise
    make every object look like an orphan, and the sweep would delete the whole archive.
    """
    async with index.read() as connection:
        if await has_instances(connection):
            return
    async for _ in store.list(KEY_PREFIX):
        raise SweepStopped(
            f"the index has no instances, but the object store ({store.location}) has objects; "
            "check that DICOMWEB_INDEX_URL and DICOMWEB_STORE_URL name the same archive. To empty "
            "the store of an archive whose index is really empty, delete its objects by hand"
        )


async def sweep(
    index: Index, store: ObjectStore, grace_period: datetime.timedelta, *, dry_run: bool
) -> SweepTotals:
    """Remove (or with ``dry_run`` only list) orphan objects older than ``grace_period`` and abandoned spool.

    Each orphan is printed on standard output as ``key<TAB>size<TAB>last modified``.
    """
    totals = SweepTotals()
    cutoff = datetime.datetime.now(datetime.UTC) - grace_period
    orphans = []
    async for orphan in find_orphans(index, store, cutoff):
        print(f"{orphan.key}\t{orphan.size}\t{orphan.last_modified.isoformat()}", flush=True)
        orphans.append(orphan)
        totals.objects += 1
        totals.size += orphan.size

    # Deleting only after the listing ends keeps a local store's folder walk away from the
    # folders that deletes remove.
    if not dry_run:
        for orphan in orphans:
            await store.delete(orphan.key)
    totals.spool = await asyncio.to_thread(store.remove_abandoned_spool, dry_run=dry_run)
    return totals


async def find_orphans(
    index: Index, store: ObjectStore, cutoff: datetime.datetime
) -> AsyncIterator[StoredObject]:
    """Yield the objects last modified before ``cutoff`` that no instance row points to.

    NOTE: some S3 services date an object written by multipart upload from the start of the
    upload, not its end. An upload that takes longer than the grace period could then look like
    an orphan in the moment between its completion and its index row, so keep the grace period
    well above the longest upload.
    """
    for prefix in (KEY_PREFIX, PROBE_PREFIX):
        batch: list[StoredObject] = []
        async for stored in store.list(prefix):
            if stored.last_modified < cutoff:
                batch.append(stored)
            if len(batch) == BATCH_SIZE:
                for orphan in await _unindexed(index, batch):
                    yield orphan
                batch = []
        for orphan in await _unindexed(index, batch):
            yield orphan


async def _unindexed(index: Index, batch: list[StoredObject]) -> list[StoredObject]:
    async with index.read() as connection:
        indexed = await find_indexed_object_keys(connection, [stored.key for stored in batch])
    return [stored for stored in batch if stored.key not in indexed]


def _print_summary(totals: SweepTotals, grace_period: Duration, dry_run: bool) -> None:
    verb = "Would remove" if dry_run else "Removed"
    print(
        f"{verb} {counted(totals.objects, 'object')} ({format_size(totals.size)}) that no index row "
        f"points to and older than {grace_period.text}."
    )
    spool = totals.spool
    print(
        f"{verb} {counted(spool.folders, 'abandoned spool folder')} holding "
        f"{counted(spool.files, 'file')} ({format_size(spool.size)})."
    )


def format_size(size: int) -> str:
    """Format a byte count with a binary unit, keeping the exact count for scripts."""
    value = float(size)
    unit = "bytes"
    for larger in ("KiB", "MiB", "GiB", "TiB"):
        if value < 1024:
            break
        value /= 1024
        unit = larger
    return f"{size} bytes" if unit == "bytes" else f"{value:.1f} {unit}, {size} bytes"
