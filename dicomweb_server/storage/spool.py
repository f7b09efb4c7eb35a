"""Spool folders: where a process keeps the bytes of instances it is receiving.

Each process writes its spool files into a folder of its own inside the spool folder, named by
a random identifier, next to a lock file of the same name::

    tmp/3fa2….lock   held with flock(2) while the process lives
    tmp/3fa2…/       that process's spool files

A killed process cannot remove its files, but the kernel releases its lock. A process that
manages to take the lock of a folder can therefore conclude that the folder's owner is gone, and
removes the folder. The folders of live processes (other replicas sharing the spool folder, a
running ``dicomweb-server import``) stay untouched. Only names this module makes are ever removed, so a
spool folder shared with other programs is safe.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import shutil
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

LOCK_SUFFIX = ".lock"
_OWNER_NAME = re.compile(r"^[0-9a-f]{32}$")


@dataclass(frozen=True)
class SpoolCleanup:
    """Counts of abandoned spool folders and their files, with the files' total size in bytes."""

    folders: int = 0
    files: int = 0
    size: int = 0


class Spool:
    """This process's spool folder, made and locked on first use, removed by :meth:`close`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._folder: Path | None = None
        self._lock_descriptor: int | None = None
        # Uploads begin in worker threads; without this two could each make a folder.
        self._making = threading.Lock()

    def new_path(self, suffix: str = ".part") -> Path:
        """Return a path for a new spool file; the file itself is not created."""
        return self._own_folder() / f"{uuid.uuid4().hex}{suffix}"

    def close(self) -> None:
        """Remove this process's spool folder and release its lock; safe to call more than once."""
        with self._making:
            if self._folder is None or self._lock_descriptor is None:
                return
            shutil.rmtree(self._folder, ignore_errors=True)
            _remove_quietly(self._folder.with_suffix(LOCK_SUFFIX))
            os.close(self._lock_descriptor)
            self._folder = None
            self._lock_descriptor = None

    def _own_folder(self) -> Path:
        with self._making:
            if self._folder is None:
                self._folder, self._lock_descriptor = self._make_folder()
            return self._folder

    def _make_folder(self) -> tuple[Path, int]:
        self.root.mkdir(parents=True, exist_ok=True)
        while True:
            name = uuid.uuid4().hex
            lock_path = self.root / f"{name}{LOCK_SUFFIX}"
            descriptor = _lock_new_file(lock_path)
            if descriptor is not None:
                break
        folder = self.root / name
        folder.mkdir()
        return folder, descriptor


def _lock_new_file(lock_path: Path) -> int | None:
    """Create and lock ``lock_path``; None when a cleaner removed it between the two steps."""
    descriptor = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    fcntl.flock(descriptor, fcntl.LOCK_EX)
    # A cleaner in another process may have taken the lock between open and flock, seen no
    # owner and unlinked the file. A lock on an unlinked file guards nothing.
    if not _still_linked(lock_path, descriptor):
        os.close(descriptor)
        return None
    return descriptor


def remove_abandoned(root: Path, *, dry_run: bool = False) -> SpoolCleanup:
    """Remove the spool folders of processes that have ended, and count what they held.

    A folder is abandoned when no process holds the lock on its lock file. Folders of running processes are
    kept, whatever their age. With ``dry_run`` nothing is removed, only counted.
    """
    if not root.is_dir():
        return SpoolCleanup()

    folders = files = size = 0
    for lock_path in sorted(root.glob(f"*{LOCK_SUFFIX}")):
        if not _OWNER_NAME.match(lock_path.stem):
            continue
        removed = _remove_if_abandoned(lock_path, dry_run)
        if removed is not None:
            folders += 1
            files += removed[0]
            size += removed[1]
    if folders and not dry_run:
        logger.info("Spool: removed %d abandoned folders holding %d files, %d bytes", folders, files, size)
    return SpoolCleanup(folders, files, size)


def _remove_if_abandoned(lock_path: Path, dry_run: bool) -> tuple[int, int] | None:
    try:
        descriptor = os.open(lock_path, os.O_RDWR)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return None
        if not _still_linked(lock_path, descriptor):
            return None
        folder = lock_path.with_suffix("")
        counted = _measure(folder)
        if dry_run:
            return counted
        shutil.rmtree(folder, ignore_errors=True)
        # The lock file goes last, so a crash of this cleaner leaves a lock file that the next
        # cleaner finds, never a folder without one.
        _remove_quietly(lock_path)
        return counted
    finally:
        os.close(descriptor)


def _still_linked(path: Path, descriptor: int) -> bool:
    try:
        on_disk = os.stat(path)
    except FileNotFoundError:
        return False
    opened = os.fstat(descriptor)
    return (on_disk.st_dev, on_disk.st_ino) == (opened.st_dev, opened.st_ino)


def _measure(folder: Path) -> tuple[int, int]:
    files = size = 0
    for path in folder.rglob("*"):
        try:
            if path.is_file():
                files += 1
                size += path.stat().st_size
        except FileNotFoundError:
            continue
    return files, size


def _remove_quietly(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
