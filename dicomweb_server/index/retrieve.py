"""Look-ups for WADO-RS: the instances under a study, series or instance path, with locations.

Every look-up takes the requester's visibility predicate on ``study`` and applies it in the
same statement, so a study the requester may not see returns nothing, exactly as a study that
does not exist.
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import ColumnElement, Select, select
from sqlalchemy.ext.asyncio import AsyncConnection

from dicomweb_server.dicom.parse import BulkDataLocation, PixelDataLayout
from dicomweb_server.index.schema import instance, instance_metadata, series, study


@dataclass(frozen=True)
class InstanceLocation:
    """An instance and where its object and values are in the object store."""

    instance_key: int
    study_instance_uid: str
    series_instance_uid: str
    sop_instance_uid: str
    sop_class_uid: str
    transfer_syntax_uid: str
    object_key: str
    object_size: int
    number_of_frames: int | None
    pixel_layout: PixelDataLayout | None
    bulkdata: dict[str, BulkDataLocation]

    @property
    def frame_count(self) -> int:
        if self.pixel_layout is not None:
            return len(self.pixel_layout.frames)
        return self.number_of_frames or 1


def _scoped(
    statement: Select[Any],
    visibility: ColumnElement[bool],
    study_instance_uid: str,
    series_instance_uid: str | None,
    sop_instance_uid: str | None,
) -> Select[Any]:
    statement = statement.where(visibility, study.c.study_instance_uid == study_instance_uid)
    if series_instance_uid is not None:
        statement = statement.where(series.c.series_instance_uid == series_instance_uid)
    if sop_instance_uid is not None:
        statement = statement.where(instance.c.sop_instance_uid == sop_instance_uid)
    return statement.order_by(
        series.c.series_number.nulls_last(),
        series.c.series_key,
        instance.c.instance_number.nulls_last(),
        instance.c.instance_key,
    )


_JOINED = instance.join(series, instance.c.series_key == series.c.series_key).join(
    study, instance.c.study_key == study.c.study_key
)


async def find_instances(
    connection: AsyncConnection,
    visibility: ColumnElement[bool],
    study_instance_uid: str,
    series_instance_uid: str | None = None,
    sop_instance_uid: str | None = None,
) -> list[InstanceLocation]:
    """Return the visible instances under a path, in series and instance number order.

    The series and instance in the path must belong to the study in the path; otherwise the
    list is empty.
    """
    statement = select(
        instance.c.instance_key,
        study.c.study_instance_uid,
        series.c.series_instance_uid,
        instance.c.sop_instance_uid,
        instance.c.sop_class_uid,
        instance.c.transfer_syntax_uid,
        instance.c.object_key,
        instance.c.object_size,
        instance.c.number_of_frames,
        instance.c.pixel_layout,
        instance.c.bulkdata,
    ).select_from(_JOINED)
    statement = _scoped(statement, visibility, study_instance_uid, series_instance_uid, sop_instance_uid)
    rows = (await connection.execute(statement)).all()
    return [_location(row) for row in rows]


def _location(row: Any) -> InstanceLocation:
    layout = PixelDataLayout.from_json(orjson.loads(row.pixel_layout)) if row.pixel_layout else None
    bulkdata = {
        path: BulkDataLocation(int(offset), int(length), str(vr))
        for path, (offset, length, vr) in orjson.loads(row.bulkdata or "{}").items()
    }
    return InstanceLocation(
        instance_key=row.instance_key,
        study_instance_uid=row.study_instance_uid,
        series_instance_uid=row.series_instance_uid,
        sop_instance_uid=row.sop_instance_uid,
        sop_class_uid=row.sop_class_uid,
        transfer_syntax_uid=row.transfer_syntax_uid,
        object_key=row.object_key,
        object_size=row.object_size,
        number_of_frames=row.number_of_frames,
        pixel_layout=layout,
        bulkdata=bulkdata,
    )


async def stream_metadata(
    connection: AsyncConnection,
    visibility: ColumnElement[bool],
    study_instance_uid: str,
    series_instance_uid: str | None = None,
    sop_instance_uid: str | None = None,
    batch_size: int = 200,
) -> AsyncIterator[bytes]:
    """Yield the stored DICOM JSON of each visible instance under a path, as UTF-8 bytes."""
    statement = select(instance_metadata.c.dicom_json).select_from(
        _JOINED.join(instance_metadata, instance_metadata.c.instance_key == instance.c.instance_key)
    )
    statement = _scoped(statement, visibility, study_instance_uid, series_instance_uid, sop_instance_uid)
    result = await connection.stream(statement.execution_options(yield_per=batch_size))
    async for (compressed,) in result:
        yield zlib.decompress(compressed)
