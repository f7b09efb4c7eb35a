"""``dicomweb-server import``: store the DICOM files of folders and zip archives.

Every file goes through :class:`~dicomweb_server.ingest.Ingest`, the path STOW-RS uses, so an
imported instance is checked, stored and indexed exactly as if a client had sent it. Importing
the same files again stores nothing twice: identical instances are reported as already stored.
The command can run while ``serve`` runs on the same index and store.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import zipfile
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from dicomweb_server.app import configure_pydicom, open_state
from dicomweb_server.audit import command_context
from dicomweb_server.cli.common import (
    STORE_SETTINGS,
    add_settings_options,
    configure_logging,
    fail,
    prepare_data_dir,
    settings_from,
)
from dicomweb_server.cli.records import actor, counted
from dicomweb_server.config import Settings
from dicomweb_server.dicom.status import FailureReason
from dicomweb_server.errors import PayloadTooLarge
from dicomweb_server.index.database import IndexUnavailable
from dicomweb_server.ingest import Ingest, StoreResult
from dicomweb_server.storage.store import StoreError
from dicomweb_server.web.context import ServerState

logger = logging.getLogger(__name__)

READ_CHUNK_SIZE = 1024 * 1024
DEFAULT_JOBS = 4


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "import",
        help="store the DICOM files of folders and zip archives",
        description="Store every DICOM file found in the given folders (recursively), zip archives "
        "and files, through the same checks as STOW-RS. Files already stored with the same content "
        "are reported as already stored; files that are not DICOM are reported as failed with the "
        "reason. The summary goes to standard output, the progress bar to standard error. Exits "
        "with 1 when any file failed. Safe to run while `serve` runs.",
    )
    options = parser.add_argument_group("import")
    options.add_argument(
        "paths", nargs="+", type=Path, metavar="PATH", help="a folder, a .zip archive or a DICOM file"
    )
    options.add_argument(
        "--jobs",
        type=_positive_integer,
        default=DEFAULT_JOBS,
        metavar="N",
        help=f"files stored at the same time (default {DEFAULT_JOBS})",
    )
    options.add_argument("--no-progress", action="store_true", help="do not show the progress bar")
    add_settings_options(parser, (*STORE_SETTINGS, "max_part_size", "overwrite"))
    parser.set_defaults(run=run)


def _positive_integer(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"invalid number {text!r}; use 1 or more")
    return int(text)


@dataclass(frozen=True)
class Source:
    """One file to import: its name in the summary and a way to read its bytes."""

    name: str
    chunks: Callable[[], AsyncIterator[bytes]]


@dataclass
class ImportSummary:
    """Counts of the outcomes, and the reason of each failure by file name."""

    stored: int = 0
    already_stored: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)

    def add(self, name: str, result: StoreResult) -> None:
        if result.duplicate:
            self.already_stored += 1
        elif result.stored:
            self.stored += 1
        else:
            assert result.failure_reason is not None
            message = _about_file(result.message or "")
            self.failures.append((name, f"{message} (Failure Reason 0x{result.failure_reason:04X})"))


def _about_file(message: str) -> str:
    # Ingest words its messages for the parts of a STOW-RS request; here each source is a file.
    return "the file " + message.removeprefix("the part ") if message.startswith("the part ") else message


def run(arguments: argparse.Namespace) -> int:
    settings = settings_from(arguments)
    configure_logging(settings)
    configure_pydicom()
    missing = [str(path) for path in arguments.paths if not path.exists()]
    if missing:
        return fail(f"cannot import {', '.join(missing)}: no such file or folder")

    try:
        sources = list(find_sources(arguments.paths))
    except (OSError, zipfile.BadZipFile) as error:
        return fail(f"cannot read the files to import: {error}")
    prepare_data_dir(settings)
    try:
        summary = asyncio.run(_import(settings, sources, arguments.jobs, not arguments.no_progress))
    except (IndexUnavailable, StoreError) as error:
        return fail(str(error))
    except OSError as error:
        # Unreadable source files are per-file failures; this is the archive's own side (spool
        # folder, SQLite file) failing, which ends the import.
        return fail(f"the import stopped: {error}")

    print_summary(summary)
    return 1 if summary.failures else 0


def find_sources(paths: list[Path]) -> Iterator[Source]:
    """Yield every file under the paths: folders recursively, zip archives by member, in name order."""
    for path in paths:
        if path.is_dir():
            for file in _walk(path):
                yield from _sources_of_file(file)
        else:
            yield from _sources_of_file(path)


def _walk(folder: Path) -> Iterator[Path]:
    for root, folders, files in os.walk(folder):
        folders.sort()
        for name in sorted(files):
            yield Path(root) / name


def _sources_of_file(path: Path) -> Iterator[Source]:
    """Yield the members of a zip archive, or the file itself for any other file, DICOM or not.

    A DICOM file's 128-byte preamble may hold anything, even a zip signature, so only files
    named .zip are opened as archives. A .zip file that cannot be opened is one failed source,
    reported as a damaged archive.
    """
    if path.suffix.lower() == ".zip":
        try:
            yield from _zip_sources(path)
        except (OSError, zipfile.BadZipFile) as error:
            yield Source(str(path), lambda reason=str(error): _unreadable_archive(reason))
        return
    yield Source(str(path), lambda: _file_chunks(path))


async def _unreadable_archive(reason: str) -> AsyncIterator[bytes]:
    raise SourceUnreadable(
        f"the file is a damaged zip archive and cannot be read ({reason}); nothing in it was stored"
    )
    yield b""  # Never reached; the yield makes this an async generator like the other sources.


def _zip_sources(path: Path) -> Iterator[Source]:
    archive = zipfile.ZipFile(path)
    for member in archive.infolist():
        if member.is_dir():
            continue
        yield Source(f"{path}:{member.filename}", lambda member=member: _member_chunks(archive, member))


class SourceUnreadable(Exception):
    """A file or zip member to import cannot be read; the message gives the reason."""


async def _file_chunks(path: Path) -> AsyncIterator[bytes]:
    try:
        with path.open("rb") as file:
            while chunk := await asyncio.to_thread(file.read, READ_CHUNK_SIZE):
                yield chunk
    except OSError as error:
        raise SourceUnreadable(f"the file cannot be read: {error.strerror or error}") from error


async def _member_chunks(archive: zipfile.ZipFile, member: zipfile.ZipInfo) -> AsyncIterator[bytes]:
    # ZipFile serialises reads of its members on one shared file handle, so workers may read
    # different members of the same archive at the same time.
    try:
        with archive.open(member) as file:
            while chunk := await asyncio.to_thread(file.read, READ_CHUNK_SIZE):
                yield chunk
    except (OSError, zipfile.BadZipFile, NotImplementedError) as error:
        # NotImplementedError: a compression method zipfile cannot decompress.
        raise SourceUnreadable(f"the zip member cannot be read: {error}") from error


async def _import(settings: Settings, sources: list[Source], jobs: int, progress: bool) -> ImportSummary:
    state = await open_state(settings)
    try:
        with (
            logging_redirect_tqdm(),
            tqdm(total=len(sources), unit="file", file=sys.stderr, disable=not progress) as bar,
        ):
            async with command_context(state.index, actor()):
                return await import_sources(state.ingest, sources, jobs, bar.update)
    finally:
        await _close(state)


async def _close(state: ServerState) -> None:
    await state.audit.close()
    await state.index.close()
    state.store.close()


async def import_sources(
    ingest: Ingest, sources: list[Source], jobs: int, advance: Callable[[int], object]
) -> ImportSummary:
    """Store the sources with ``jobs`` workers; call ``advance(1)`` after each file."""
    summary = ImportSummary()
    queue: asyncio.Queue[Source] = asyncio.Queue()
    for source in sources:
        queue.put_nowait(source)

    async def worker() -> None:
        while not queue.empty():
            source = queue.get_nowait()
            summary.add(source.name, await _store(ingest, source))
            advance(1)

    await asyncio.gather(*(worker() for _ in range(min(jobs, len(sources)) or 1)))
    summary.failures.sort()
    return summary


async def _store(ingest: Ingest, source: Source) -> StoreResult:
    try:
        return await ingest.store_stream(source.chunks())
    except PayloadTooLarge as error:
        return StoreResult(failure_reason=FailureReason.OUT_OF_RESOURCES, message=error.message)
    except SourceUnreadable as error:
        return StoreResult(failure_reason=FailureReason.PROCESSING_FAILURE, message=str(error))


def print_summary(summary: ImportSummary) -> None:
    print(
        f"Stored {counted(summary.stored, 'new instance')}, {summary.already_stored} already stored, "
        f"{len(summary.failures)} failed."
    )
    if summary.failures:
        print("Failed files:")
        for name, reason in summary.failures:
            print(f"  {name}: {reason}")
