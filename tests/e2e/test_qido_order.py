"""Order of study search results on a migrated index of each backend: newest first, NULLs last."""

from __future__ import annotations

import datetime

from sqlalchemy import insert, true

from dicomweb_server.config import load_settings
from dicomweb_server.dicom.attributes import QueryLevel
from dicomweb_server.dicom.query import parse_search
from dicomweb_server.index.database import create_engine
from dicomweb_server.index.schema import study
from dicomweb_server.index.search import search
from tests.services import Archive

AT = datetime.datetime(2026, 6, 15, 12, 0, 0, tzinfo=datetime.UTC)

# (StudyInstanceUID, StudyDate, StudyTime), inserted in this order, so the study_key grows down the list.
STUDIES = [
    ("1.2.3.1", None, None),
    ("1.2.3.2", "20240101", None),
    ("1.2.3.3", "20240101", "080000.000000"),
    ("1.2.3.4", None, "235959.000000"),
    ("1.2.3.5", "20250101", "000000.000000"),
    ("1.2.3.6", "20240101", "080000.000000"),
    ("1.2.3.7", "20240101", None),
    ("1.2.3.8", None, None),
]

# Date, then time, descending with missing values after present ones, then the highest study_key first.
EXPECTED = ["1.2.3.5", "1.2.3.6", "1.2.3.3", "1.2.3.7", "1.2.3.2", "1.2.3.4", "1.2.3.8", "1.2.3.1"]


async def test_study_order_puts_nulls_last(archive: Archive) -> None:
    engine = create_engine(load_settings(environ=archive.settings_environment()))
    try:
        async with engine.begin() as connection:
            await connection.execute(
                insert(study),
                [
                    {
                        "study_instance_uid": uid,
                        "study_date": study_date,
                        "study_time": study_time,
                        "attributes": "{}",
                        "created_at": AT,
                        "updated_at": AT,
                    }
                    for uid, study_date, study_time in STUDIES
                ],
            )
        async with engine.connect() as connection:
            everything = await search(connection, parse_search(QueryLevel.STUDY, []), true(), 100)
            paged = []
            for offset in range(0, len(STUDIES), 3):
                query = parse_search(QueryLevel.STUDY, [("limit", "3"), ("offset", str(offset))])
                paged += (await search(connection, query, true(), 100)).results
    finally:
        await engine.dispose()

    assert [result.study_instance_uid for result in everything.results] == EXPECTED
    assert [result.study_instance_uid for result in paged] == EXPECTED
