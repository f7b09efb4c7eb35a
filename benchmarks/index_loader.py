"""Build a large synthetic index in-process, with the rows the archive's own ingest writes.

Storing a million instances through STOW-RS takes hours on a small machine, almost all of it in
HTTP, multipart parsing, pydicom and one index transaction per instance. The loader skips those
steps but keeps the index identical to what STOW-RS would produce:

- every instance is rendered from one template (:mod:`benchmarks.instances`). Its
  ``ParsedInstance`` is the template's parse result with the varying values rewritten. Every
  ``check_every``-th instance is also parsed by ``dicomweb_server.dicom.parse.read_instance``,
  and the load stops if the two differ;
- the first ``reference_studies`` studies are recorded by
  ``dicomweb_server.index.ingest.record_instance``, the function STOW-RS calls, one transaction
  per instance. The rest are inserted in bulk (:mod:`benchmarks.index_rows`). The load stops if
  the bulk rows built for the reference studies differ from what ``record_instance`` wrote;
- objects are written under the store's key layout before their rows, as STOW-RS does, but
  without an fsync each (the local folder is synced once at the end), because the loader's
  durability does not matter to the measurements.

A bulk batch is one transaction, so an interrupted load is resumed by skipping the studies whose
rows exist. Objects of a batch that did not commit are written again with the same bytes.
"""

from __future__ import annotations

import asyncio
import datetime
import gc
import hashlib
import logging
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import obstore
from obstore.store import S3Store
from sqlalchemy import select, text

from benchmarks.dataset import DataSetPlan
from benchmarks.index_rows import Keys, StudyRows, compare_with_index, insert_rows, next_keys, study_rows
from benchmarks.instances import InstanceTemplate, ParsedTemplate, check_parsed, planned_instances
from dicomweb_server.config import Settings
from dicomweb_server.dicom.parse import ParsedInstance
from dicomweb_server.index.database import Index, create_engine, migrate, open_index
from dicomweb_server.index.ingest import StoredObjectInfo, record_instance
from dicomweb_server.index.schema import study
from dicomweb_server.storage.store import KEY_PREFIX

logger = logging.getLogger(__name__)

ObjectWriter = Callable[[list[tuple[str, bytes]]], Awaitable[None]]


@dataclass(frozen=True)
class LoadReport:
    instances_loaded: int
    studies_skipped: int
    seconds: float
    checked_instances: int


def object_key(sop_instance_uid: str) -> str:
    """Return a key in the store's layout, derived from the UID so that a reload writes the same key."""
    name = hashlib.sha256(sop_instance_uid.encode("ascii")).hexdigest()[:32]
    return f"{KEY_PREFIX}{name[:2]}/{name[2:4]}/{name}.dcm"


def local_object_writer(root: Path) -> ObjectWriter:
    def write_all(objects: list[tuple[str, bytes]]) -> None:
        for key, data in objects:
            path = root / key
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)

    async def write(objects: list[tuple[str, bytes]]) -> None:
        await asyncio.to_thread(write_all, objects)

    return write


def s3_object_writer(settings: Settings, concurrency: int = 32) -> ObjectWriter:
    """Write objects to the S3 store the settings name, ``concurrency`` PUT requests at a time."""
    assert settings.store_url is not None
    bucket, _, prefix = settings.store_url.removeprefix("s3://").partition("/")
    config: dict[str, object] = {"region": settings.s3_region}
    if settings.s3_endpoint:
        config["endpoint"] = settings.s3_endpoint
    if settings.s3_access_key_id:
        config["access_key_id"] = settings.s3_access_key_id
    if settings.s3_secret_access_key:
        config["secret_access_key"] = settings.s3_secret_access_key.reveal()
    store = S3Store(
        bucket,
        prefix=prefix.strip("/") or None,
        config=config,  # type: ignore[arg-type]
        client_options={"allow_http": True},
        virtual_hosted_style_request=False,
    )
    limit = asyncio.Semaphore(concurrency)

    async def put(key: str, data: bytes) -> None:
        async with limit:
            await obstore.put_async(store, key, data)

    async def write(objects: list[tuple[str, bytes]]) -> None:
        await asyncio.gather(*(put(key, data) for key, data in objects))

    return write


async def open_for_loading(settings: Settings) -> Index:
    """Open the index, bringing an empty PostgreSQL database to the current schema first."""
    if not settings.uses_embedded_index:
        engine = create_engine(settings)
        try:
            await migrate(engine)
        finally:
            await engine.dispose()
    return await open_index(settings)


async def load_index(
    settings: Settings,
    plan: DataSetPlan,
    write_objects: ObjectWriter,
    *,
    reference_studies: int = 20,
    batch_studies: int = 200,
    check_every: int = 10_000,
) -> LoadReport:
    """Record every instance of ``plan`` in the index and write its object to the store.

    Parameters
    ----------
    reference_studies
        The first studies, recorded one instance at a time by ``record_instance``. The bulk
        rows built for them must equal what it wrote, or the load stops.
    batch_studies
        Studies per bulk transaction.
    check_every
        Every this many instances, the rewritten template is compared with the real parser.
    """
    index = await open_for_loading(settings)
    started = time.perf_counter()
    # The load keeps tens of thousands of rows alive per batch and creates no reference cycles.
    # With the cyclic garbage collector on, its repeated scans of those rows double the build time.
    gc.disable()
    try:
        loader = _Loader(index, plan, write_objects, check_every)
        existing = await _existing_studies(index)
        pending = [number for number in range(plan.studies) if plan.uid(1, number) not in existing]
        reference = list(range(min(reference_studies, plan.studies)))
        for number in reference:
            if number in pending:
                await loader.record_study(number)
        await loader.compare_reference(reference)

        bulk = [number for number in pending if number not in set(reference)]
        await loader.load_bulk(
            [bulk[start : start + batch_studies] for start in range(0, len(bulk), batch_studies)]
        )
        await _finish(index)
    finally:
        gc.enable()
        await index.close()
    if hasattr(os, "sync"):
        await asyncio.to_thread(os.sync)
    return LoadReport(
        instances_loaded=loader.recorded,
        studies_skipped=plan.studies - len(pending),
        seconds=time.perf_counter() - started,
        checked_instances=loader.checked,
    )


async def _existing_studies(index: Index) -> set[str]:
    async with index.read() as connection:
        rows = await connection.execute(select(study.c.study_instance_uid))
        return {row[0] for row in rows}


async def _finish(index: Index) -> None:
    """Make the index look as if its rows had come in one by one: sequences advanced, statistics fresh."""
    if index.dialect != "postgresql":
        return
    async with index.write() as connection:
        for table, column in (
            ("study", "study_key"),
            ("series", "series_key"),
            ("series_request", "series_request_key"),
            ("instance", "instance_key"),
        ):
            await connection.execute(
                text(
                    f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'), "
                    f"(SELECT COALESCE(max({column}), 0) + 1 FROM {table}), false)"
                )
            )
    # Autovacuum would analyze the new tables soon after such a load; doing it now gives the
    # planner the statistics that a long-running archive has.
    async with index.engine.connect() as connection:
        await connection.execute(text("ANALYZE"))
        await connection.commit()


class _Loader:
    def __init__(
        self, index: Index, plan: DataSetPlan, write_objects: ObjectWriter, check_every: int
    ) -> None:
        self.index = index
        self.plan = plan
        self.write_objects = write_objects
        self.check_every = check_every
        self.template = InstanceTemplate(plan)
        self.parsed_template = ParsedTemplate(self.template)
        self.recorded = 0
        self.checked = 0
        self.started = time.perf_counter()
        self.last_report = self.started
        self.total = plan.instances
        self.check_folder = Path(tempfile.mkdtemp(prefix="dicomweb-bench-check-"))

    def prepare(self, study_number: int) -> list[tuple[ParsedInstance, StoredObjectInfo, bytes]]:
        """Render the instances of one study with their parse result and object information."""
        prepared = []
        for values in planned_instances(self.plan, self.plan.study(study_number)):
            if (values.series.first_instance + values.index) % self.check_every == 0:
                check_parsed(self.parsed_template, values, self.check_folder)
                self.checked += 1
            data = self.template.render(values)
            stored = StoredObjectInfo(
                object_key(values.sop_instance_uid), len(data), hashlib.sha256(data).hexdigest()
            )
            prepared.append((self.parsed_template.parsed_instance(values), stored, data))
        return prepared

    async def record_study(self, study_number: int) -> None:
        """Store one study the way STOW-RS does after parsing: objects first, then ``record_instance``."""
        prepared = self.prepare(study_number)
        await self.write_objects([(stored.object_key, data) for _, stored, data in prepared])
        for parsed, stored, _ in prepared:
            async with self.index.write() as connection:
                await record_instance(
                    connection, parsed, stored, overwrite=False, now=datetime.datetime.now(datetime.UTC)
                )
        self._count(len(prepared))

    async def compare_reference(self, study_numbers: list[int]) -> None:
        expected = StudyRows()
        keys = Keys(1, 1, 1, 1)
        now = datetime.datetime.now(datetime.UTC)
        for number in study_numbers:
            prepared = self.prepare(number)
            expected.extend(study_rows([(parsed, stored) for parsed, stored, _ in prepared], keys, now))
        async with self.index.read() as connection:
            differences = await compare_with_index(connection, expected)
        if differences:
            listed = "\n".join(differences[:10])
            raise RuntimeError(
                f"the bulk rows differ from what record_instance wrote ({len(differences)} differences); "
                f"update benchmarks/index_rows.py to follow the archive's ingest:\n{listed}"
            )

    async def load_bulk(self, batches: list[list[int]]) -> None:
        """Build batches in a worker thread while the previous batch is written, one transaction each."""
        async with self.index.read() as connection:
            keys = await next_keys(connection)
        queue: asyncio.Queue[tuple[StudyRows, list[tuple[str, bytes]]] | None] = asyncio.Queue(maxsize=2)

        async def produce() -> None:
            for batch in batches:
                await queue.put(await asyncio.to_thread(self._build_batch, batch, keys))
            await queue.put(None)

        async def consume() -> None:
            while (item := await queue.get()) is not None:
                rows, objects = item
                await self.write_objects(objects)
                async with self.index.write() as connection:
                    await insert_rows(connection, rows)
                self._count(len(objects))

        await asyncio.gather(produce(), consume())

    def _build_batch(self, study_numbers: list[int], keys: Keys) -> tuple[StudyRows, list[tuple[str, bytes]]]:
        rows = StudyRows()
        objects = []
        now = datetime.datetime.now(datetime.UTC)
        for number in study_numbers:
            prepared = self.prepare(number)
            rows.extend(study_rows([(parsed, stored) for parsed, stored, _ in prepared], keys, now))
            objects.extend((stored.object_key, data) for _, stored, data in prepared)
        return rows, objects

    def _count(self, instances: int) -> None:
        self.recorded += instances
        now = time.perf_counter()
        if now - self.last_report < 30:
            return
        self.last_report = now
        rate = self.recorded / (now - self.started)
        remaining = (self.total - self.recorded) / rate if rate else float("inf")
        print(
            f"index load: {self.recorded} instances recorded, {rate:.0f}/s, "
            f"about {remaining / 60:.0f} min left",
            file=sys.stderr,
            flush=True,
        )
