"""The object store: one key layout over a local folder or any S3-compatible service (obstore).

Keys are derived from a random identifier made at ingest ("instances/3f/a2/3fa2….dcm"), never
from a UID or a patient attribute, so listings and backups of the store reveal nothing and a
hostile UID cannot escape the folder.

An object is written in two steps. :meth:`ObjectStore.begin_upload` returns an :class:`Upload`
that receives the bytes and keeps a local copy for parsing; :meth:`Upload.commit` makes the
object durable and visible under its key, :meth:`Upload.discard` leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import os
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import aiofiles
import aiofiles.os
import obstore
from obstore.exceptions import NotFoundError
from obstore.store import LocalStore, S3Store

from dicomweb_server.config import Settings
from dicomweb_server.storage.spool import Spool, SpoolCleanup, remove_abandoned

logger = logging.getLogger(__name__)

READ_CHUNK_SIZE = 1024 * 1024
S3_PART_SIZE = 8 * 1024 * 1024
"""Bytes buffered before an S3 multipart upload sends a part (S3 needs at least 5 MiB)."""

KEY_PREFIX = "instances/"
PROBE_PREFIX = "probes/"
"""Key prefix of the probe objects that :meth:`ObjectStore.check` writes and deletes.

A crash between the write and the delete leaves a probe object, which the sweep removes.
"""


class StoreError(Exception):
    """The object store failed or is unreachable."""


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int
    last_modified: datetime.datetime


def new_key() -> str:
    """Make a key for a new object from a random identifier."""
    name = uuid.uuid4().hex
    return f"{KEY_PREFIX}{name[:2]}/{name[2:4]}/{name}.dcm"


class Upload(Protocol):
    """An object being written: bytes go in with :meth:`write`, then it is committed or discarded."""

    key: str
    spool_path: Path

    async def write(self, data: bytes) -> None: ...

    async def finish_writing(self) -> None:
        """Flush the local copy to disk; call once, after the last :meth:`write`."""

    async def replace_content(self, path: Path) -> None:
        """Replace everything written so far by the file at ``path``, which is moved."""

    async def commit(self) -> None:
        """Make the object durable and visible under :attr:`key`."""

    async def discard(self) -> None:
        """Remove every trace of the object; safe to call more than once."""


class ObjectStore:
    """Objects in a local folder or an S3 bucket, addressed by key."""

    def __init__(
        self,
        store: LocalStore | S3Store,
        spool: Spool,
        local_root: Path | None,
        timeout: float,
        location: str,
    ) -> None:
        self._store = store
        self._spool = spool
        self._local_root = local_root
        self._timeout = timeout
        self.location = location
        """Where the objects are, for messages: the objects folder, or the bucket, prefix and endpoint."""

    @property
    def is_local(self) -> bool:
        return self._local_root is not None

    async def check(self) -> None:
        """List the key prefix, then write and delete a probe object, so a wrong setting fails at start.

        The list comes first because some S3-compatible services (SeaweedFS among them) create
        a missing bucket on the first write, which would hide a mistyped bucket name.

        Raises
        ------
        StoreError
            With a message naming the setting to fix.
        """
        key = f"{PROBE_PREFIX}{uuid.uuid4().hex}"
        try:
            await asyncio.wait_for(
                obstore.list_with_delimiter_async(self._store, prefix=KEY_PREFIX), self._timeout
            )
            await asyncio.wait_for(obstore.put_async(self._store, key, b"probe"), self._timeout)
            await asyncio.wait_for(obstore.delete_async(self._store, key), self._timeout)
        except Exception as error:  # noqa: BLE001 - every failure here means the settings are wrong
            raise StoreError(self._describe_error(error)) from error

    def _describe_error(self, error: BaseException) -> str:
        if self._local_root is not None:
            return describe_local_error(error, self._local_root)
        return describe_s3_error(error, self.location, self._timeout)

    async def begin_upload(self) -> Upload:
        key = new_key()
        spool_path = await asyncio.to_thread(self._spool.new_path)
        if self._local_root is not None:
            return await _LocalUpload.open(key, spool_path, self._local_root)
        return await _S3Upload.open(key, spool_path, self._store, self._timeout)

    def remove_abandoned_spool(self, *, dry_run: bool = False) -> SpoolCleanup:
        """Remove the spool folders that killed processes left behind (see ``storage.spool``)."""
        return remove_abandoned(self._spool.root, dry_run=dry_run)

    def close(self) -> None:
        """Remove this process's spool folder; uploads still open lose their spool files."""
        self._spool.close()

    def local_path(self, key: str) -> Path | None:
        """Return the file of an object in a local store, or None for a remote store."""
        return self._local_root / key if self._local_root is not None else None

    async def stream(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """Yield the bytes of an object, or of the range [start, end), in chunks."""
        if self._local_root is not None:
            async for chunk in self._stream_file(key, start, end):
                yield chunk
            return
        try:
            if start == 0 and end is None:
                result = await asyncio.wait_for(obstore.get_async(self._store, key), self._timeout)
                async for chunk in result.stream(min_chunk_size=READ_CHUNK_SIZE):
                    yield bytes(chunk)
                return
            position = start
            stop = end if end is not None else (await self.size(key))
            while position < stop:
                length = min(READ_CHUNK_SIZE * 8, stop - position)
                yield await self.read_range(key, position, position + length)
                position += length
        except NotFoundError as error:
            raise StoreError(f"object {key} is missing from the store") from error

    async def _stream_file(self, key: str, start: int, end: int | None) -> AsyncIterator[bytes]:
        # Plain file reads: obstore's local streams cost about 4.5 ms of CPU per MB (obstore
        # 0.12.1, measured with benchmarks/), a file read about 0.05 ms.
        assert self._local_root is not None
        try:
            async with aiofiles.open(self._local_root / key, "rb") as file:
                await file.seek(start)
                remaining = None if end is None else end - start
                while remaining is None or remaining > 0:
                    size = READ_CHUNK_SIZE if remaining is None else min(READ_CHUNK_SIZE, remaining)
                    chunk = await file.read(size)
                    if not chunk:
                        break
                    if remaining is not None:
                        remaining -= len(chunk)
                    yield chunk
        except FileNotFoundError as error:
            raise StoreError(f"object {key} is missing from the store") from error

    async def read(self, key: str) -> bytes:
        chunks = [chunk async for chunk in self.stream(key)]
        return b"".join(chunks)

    async def read_range(self, key: str, start: int, end: int) -> bytes:
        try:
            data = await asyncio.wait_for(
                obstore.get_range_async(self._store, key, start=start, end=end), self._timeout
            )
        except NotFoundError as error:
            raise StoreError(f"object {key} is missing from the store") from error
        except TimeoutError as error:
            raise StoreError(f"reading object {key} timed out after {self._timeout} s") from error
        return bytes(data)

    async def read_ranges(self, key: str, ranges: list[tuple[int, int]]) -> list[bytes]:
        """Read several (start, end) ranges of one object; adjacent ranges are fetched together."""
        if not ranges:
            return []
        try:
            data = await asyncio.wait_for(
                obstore.get_ranges_async(
                    self._store, key, starts=[start for start, _ in ranges], ends=[end for _, end in ranges]
                ),
                self._timeout,
            )
        except NotFoundError as error:
            raise StoreError(f"object {key} is missing from the store") from error
        return [bytes(part) for part in data]

    async def size(self, key: str) -> int:
        meta = await asyncio.wait_for(obstore.head_async(self._store, key), self._timeout)
        return int(meta["size"])

    async def download(self, key: str, target: Path) -> None:
        """Copy an object to a local file, streaming."""
        async with aiofiles.open(target, "wb") as out:
            async for chunk in self.stream(key):
                await out.write(chunk)

    async def delete(self, key: str) -> None:
        try:
            await asyncio.wait_for(obstore.delete_async(self._store, key), self._timeout)
        except NotFoundError:
            return
        if self._local_root is not None:
            _remove_empty_parents(self._local_root / key, self._local_root)

    async def list(self, prefix: str = KEY_PREFIX) -> AsyncIterator[StoredObject]:
        """Yield every object under ``prefix``."""
        stream = obstore.list(self._store, prefix=prefix, chunk_size=1000)
        async for batch in stream:
            for meta in batch:
                yield StoredObject(meta["path"], int(meta["size"]), meta["last_modified"])


class _LocalUpload:
    """An upload to a local folder: the spool file is the object, renamed into place on commit."""

    def __init__(
        self, key: str, spool_path: Path, root: Path, file: aiofiles.threadpool.binary.AsyncBufferedIOBase
    ) -> None:
        self.key = key
        self.spool_path = spool_path
        self._root = root
        self._file = file
        self._done = False

    @classmethod
    async def open(cls, key: str, spool_path: Path, root: Path) -> _LocalUpload:
        file = await aiofiles.open(spool_path, "wb")
        return cls(key, spool_path, root, file)

    async def write(self, data: bytes) -> None:
        await self._file.write(data)

    async def finish_writing(self) -> None:
        await self._file.flush()
        await asyncio.to_thread(os.fsync, self._file.fileno())
        await self._file.close()

    async def replace_content(self, path: Path) -> None:
        await asyncio.to_thread(os.replace, path, self.spool_path)

    async def commit(self) -> None:
        target = self._root / self.key
        await asyncio.to_thread(_move_durably, self.spool_path, target, self._root)
        self._done = True

    async def discard(self) -> None:
        if self._done:
            return
        self._done = True
        if not self._file.closed:
            await self._file.close()
        try:
            await aiofiles.os.remove(self.spool_path)
        except FileNotFoundError:
            pass


class _S3Upload:
    """An upload to S3: bytes stream to a multipart upload and to a local spool file for parsing.

    NOTE: a process killed during an upload leaves an incomplete multipart upload in the
    bucket. It is not an object, so the sweep cannot see it. Its parts take space until they
    are aborted, and obstore can neither list nor abort them. Give the bucket a lifecycle rule
    that aborts incomplete multipart uploads after a day.
    """

    def __init__(self, key: str, spool_path: Path, store: S3Store | LocalStore, timeout: float) -> None:
        self.key = key
        self.spool_path = spool_path
        self._store = store
        self._timeout = timeout
        self._file: aiofiles.threadpool.binary.AsyncBufferedIOBase | None = None
        self._writer: obstore.AsyncWritableFile | None = None  # type: ignore[name-defined]
        self._closed_writer = False
        self._discarded = False
        self._upload_spool_on_commit = False

    @classmethod
    async def open(cls, key: str, spool_path: Path, store: S3Store | LocalStore, seconds: float) -> _S3Upload:
        upload = cls(key, spool_path, store, seconds)
        upload._file = await aiofiles.open(spool_path, "wb")
        upload._writer = obstore.open_writer_async(store, key, buffer_size=S3_PART_SIZE, max_concurrency=2)
        return upload

    async def write(self, data: bytes) -> None:
        assert self._file is not None and self._writer is not None
        await self._file.write(data)
        await asyncio.wait_for(self._writer.write(data), self._timeout)

    async def finish_writing(self) -> None:
        assert self._file is not None
        await self._file.close()

    async def replace_content(self, path: Path) -> None:
        await asyncio.to_thread(os.replace, path, self.spool_path)
        await self._close_writer()
        await asyncio.wait_for(obstore.delete_async(self._store, self.key), self._timeout)
        self._upload_spool_on_commit = True

    async def commit(self) -> None:
        if self._upload_spool_on_commit:
            await obstore.put_async(
                self._store, self.key, self.spool_path, chunk_size=S3_PART_SIZE, max_concurrency=2
            )
        else:
            await self._close_writer()
        self._discarded = True
        await _remove_quietly(self.spool_path)

    async def discard(self) -> None:
        if self._discarded:
            return
        self._discarded = True
        if self._file is not None and not self._file.closed:
            await self._file.close()
        await _remove_quietly(self.spool_path)
        # obstore has no way to abort a multipart upload, so the object is completed and deleted.
        try:
            await self._close_writer()
            await asyncio.wait_for(obstore.delete_async(self._store, self.key), self._timeout)
        except Exception:  # noqa: BLE001 - a leftover object is an orphan that the sweep removes
            logger.warning(
                "STOW-RS: could not delete discarded object %s; the sweep will remove it", self.key
            )

    async def _close_writer(self) -> None:
        if self._writer is not None and not self._closed_writer:
            self._closed_writer = True
            await asyncio.wait_for(self._writer.close(), self._timeout)


async def _remove_quietly(path: Path) -> None:
    try:
        await aiofiles.os.remove(path)
    except FileNotFoundError:
        pass


def _move_durably(source: Path, target: Path, root: Path) -> None:
    """Rename the spool file into place and sync the folders, so the object survives a crash."""
    created = _make_parents(target.parent, root)
    try:
        os.replace(source, target)
    except OSError as error:
        if error.errno != 18:  # EXDEV: the spool folder is on another file system
            raise
        _copy_and_sync(source, target)
        source.unlink()
    _fsync_directory(target.parent)
    for folder in created:
        _fsync_directory(folder.parent)


def _make_parents(folder: Path, root: Path) -> list[Path]:
    missing = []
    current = folder
    while not current.exists() and current != root:
        missing.append(current)
        current = current.parent
    folder.mkdir(parents=True, exist_ok=True)
    return missing


def _copy_and_sync(source: Path, target: Path) -> None:
    temporary = target.with_suffix(".copying")
    with source.open("rb") as reader, temporary.open("wb") as writer:
        while chunk := reader.read(READ_CHUNK_SIZE):
            writer.write(chunk)
        writer.flush()
        os.fsync(writer.fileno())
    os.replace(temporary, target)


def _fsync_directory(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _remove_empty_parents(path: Path, root: Path) -> None:
    folder = path.parent
    while folder != root and folder.is_relative_to(root):
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent


def open_store(settings: Settings) -> ObjectStore:
    """Build the object store the settings select (a local folder unless ``store_url`` is set)."""
    spool = Spool(settings.effective_spool_dir)
    if not settings.store_url or settings.store_url.startswith("file://"):
        root = (
            Path(settings.store_url.removeprefix("file://"))
            if settings.store_url
            else settings.data_dir / "objects"
        )
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise StoreError(describe_local_error(error, root)) from error
        return ObjectStore(LocalStore(root, mkdir=True), spool, root, settings.store_timeout, str(root))

    bucket, _, prefix = settings.store_url.removeprefix("s3://").partition("/")
    prefix = prefix.strip("/")
    config: dict[str, object] = {"region": settings.s3_region}
    if settings.s3_endpoint:
        config["endpoint"] = settings.s3_endpoint
    if settings.s3_access_key_id:
        config["access_key_id"] = settings.s3_access_key_id
    if settings.s3_secret_access_key:
        config["secret_access_key"] = settings.s3_secret_access_key.reveal()
    client_options = {
        "allow_http": bool(settings.s3_endpoint and settings.s3_endpoint.startswith("http://")),
        "timeout": f"{int(settings.store_timeout)}s",
        "connect_timeout": "10s",
    }
    store = S3Store(
        bucket,
        prefix=prefix or None,
        config=config,  # type: ignore[arg-type]
        client_options=client_options,  # type: ignore[arg-type]
        virtual_hosted_style_request=False,
    )
    endpoint = settings.s3_endpoint or f"the AWS S3 endpoint of region {settings.s3_region}"
    location = f"bucket {bucket!r}, prefix {prefix!r}, at {endpoint}"
    return ObjectStore(store, spool, None, settings.store_timeout, location)


_S3_ERROR_CODE = re.compile(r"<Code>([A-Za-z]+)</Code>")
_UNREACHABLE_HINTS = ("error sending request", "connection refused", "dns error", "tcp connect", "timed out")


def describe_s3_error(error: BaseException, location: str, timeout: float) -> str:
    """Turn a failed S3 request into a message that names the setting to fix.

    S3 services respond with an error code in an XML body (NoSuchBucket, InvalidAccessKeyId,
    SignatureDoesNotMatch, AccessDenied, ...); obstore puts that body into its message.
    """
    text = str(error)
    match = _S3_ERROR_CODE.search(text)
    code = match.group(1) if match else None
    if isinstance(error, TimeoutError):
        return (
            f"the object store ({location}) did not answer within {timeout} s "
            "(DICOMWEB_STORE_TIMEOUT); check DICOMWEB_S3_ENDPOINT and that the service runs"
        )
    if code == "NoSuchBucket":
        return (
            f"the bucket named in DICOMWEB_STORE_URL does not exist ({location}); "
            "create the bucket or correct DICOMWEB_STORE_URL"
        )
    if code == "InvalidAccessKeyId":
        return (
            f"the object store ({location}) does not know the access key in DICOMWEB_S3_ACCESS_KEY_ID; "
            "correct DICOMWEB_S3_ACCESS_KEY_ID"
        )
    if code == "SignatureDoesNotMatch":
        return (
            f"the object store ({location}) rejected the signature: DICOMWEB_S3_SECRET_ACCESS_KEY does "
            "not belong to DICOMWEB_S3_ACCESS_KEY_ID; correct DICOMWEB_S3_SECRET_ACCESS_KEY"
        )
    if code in {"AccessDenied", "AllAccessDisabled"}:
        return (
            f"the object store ({location}) denied access to the credentials in "
            "DICOMWEB_S3_ACCESS_KEY_ID; allow them to list the bucket and to read, write and delete "
            "objects under the prefix"
        )
    if code in {"AuthorizationHeaderMalformed", "PermanentRedirect", "IllegalLocationConstraintException"}:
        return (
            f"the bucket ({location}) is in another region than DICOMWEB_S3_REGION; "
            "correct DICOMWEB_S3_REGION"
        )
    if code is None and any(hint in text.lower() for hint in _UNREACHABLE_HINTS):
        return (
            f"the object store ({location}) cannot be reached; check DICOMWEB_S3_ENDPOINT and that "
            f"the service runs: {_first_line(text)}"
        )
    return (
        f"the object store ({location}) cannot be used ({code or type(error).__name__}); check "
        f"DICOMWEB_STORE_URL and the DICOMWEB_S3_* settings: {_first_line(text)}"
    )


def describe_local_error(error: BaseException, root: Path) -> str:
    """Turn a failed write to the objects folder into a message that names the setting to fix."""
    reason = error.strerror if isinstance(error, OSError) and error.strerror else _first_line(str(error))
    return (
        f"the objects folder {str(root)!r} cannot be written ({reason}); correct DICOMWEB_STORE_URL "
        "or DICOMWEB_DATA_DIR, or the folder's permissions"
    )


def _first_line(text: str) -> str:
    return text.splitlines()[0] if text else "no detail"
