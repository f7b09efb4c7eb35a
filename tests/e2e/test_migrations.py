"""Schema migrations on SQLite and PostgreSQL: `migrate` is idempotent and `serve` rejects other revisions."""

from __future__ import annotations

import datetime
import re
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, insert, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

import dicomweb_server.audit.tables  # noqa: F401 - registers the audit tables in the shared metadata
import dicomweb_server.auth.tables  # noqa: F401 - registers the identity tables in the shared metadata
import dicomweb_server.consent.tables  # noqa: F401 - registers the consent tables in the shared metadata
import dicomweb_server.federation.tables  # noqa: F401 - registers the peer table in the shared metadata
from dicomweb_server.config import load_settings
from dicomweb_server.consent.tables import patient_authorization
from dicomweb_server.index.database import create_engine, current_revision, head_revision, migrate
from dicomweb_server.index.schema import metadata, study_listing_order
from tests.services import Backend, run_command

FIRST_REVISION = "0001"


def engine_for(backend: Backend, data_dir: Path) -> AsyncEngine:
    environment = {**backend.environment, "DICOMWEB_DATA_DIR": str(data_dir)}
    return create_engine(load_settings(environ=environment))


async def run_on(engine: AsyncEngine, step: Callable[[Connection], Any]) -> Any:
    try:
        async with engine.begin() as connection:
            return await connection.run_sync(step)
    finally:
        await engine.dispose()


def test_migrate_twice_changes_nothing(fresh_backend: Backend, tmp_path: Path) -> None:
    first = run_command(["migrate"], fresh_backend, tmp_path)
    second = run_command(["migrate"], fresh_backend, tmp_path)

    assert first.returncode == 0, first.stderr
    assert f"from revision none to {head_revision()}" in first.stdout
    assert second.returncode == 0, second.stderr
    assert f"up to date (revision {head_revision()})" in second.stdout


async def test_migrated_schema_matches_tables(fresh_backend: Backend, tmp_path: Path) -> None:
    result = run_command(["migrate"], fresh_backend, tmp_path)
    assert result.returncode == 0, result.stderr

    def differences(connection: Connection) -> list[Any]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        with warnings.catch_warnings():
            # SQLAlchemy cannot reflect expression indexes from SQLite, so Alembic skips this one
            # there; test_listing_order_index_matches_search checks it on both databases.
            warnings.filterwarnings("ignore", message=".*expression-based index '?ix_study_newest_first")
            return compare_metadata(context, metadata)

    assert await run_on(engine_for(fresh_backend, tmp_path), differences) == []


async def test_listing_order_index_matches_search(fresh_backend: Backend, tmp_path: Path) -> None:
    result = run_command(["migrate"], fresh_backend, tmp_path)
    assert result.returncode == 0, result.stderr

    def index_definition(connection: Connection) -> str:
        if connection.dialect.name == "postgresql":
            query = "SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_study_newest_first'"
        else:
            query = "SELECT sql FROM sqlite_master WHERE type = 'index' AND name = 'ix_study_newest_first'"
        return str(connection.execute(text(query)).scalar_one())

    definition = await run_on(engine_for(fresh_backend, tmp_path), index_definition)
    # PostgreSQL writes the type of the "" back as a cast.
    expressions = re.sub(r"::character varying", "", definition).lower()
    searched = ", ".join(
        str(term.compile(compile_kwargs={"include_table": False})).lower() for term in study_listing_order()
    )
    assert f"({searched})" in expressions.replace("study.", "")


async def test_serve_rejects_older_revision(fresh_backend: Backend, tmp_path: Path) -> None:
    engine = engine_for(fresh_backend, tmp_path)
    try:
        await migrate(engine, FIRST_REVISION)
        assert await current_revision(engine) == FIRST_REVISION
    finally:
        await engine.dispose()

    refused = run_command(["serve"], fresh_backend, tmp_path, timeout=90)
    upgraded = run_command(["migrate"], fresh_backend, tmp_path)

    assert refused.returncode == 2, refused.stderr
    assert f"older schema revision '{FIRST_REVISION}'" in refused.stderr
    assert "run `dicomweb-server migrate`" in refused.stderr
    assert upgraded.returncode == 0, upgraded.stderr
    assert f"from revision {FIRST_REVISION} to {head_revision()}" in upgraded.stdout


async def test_serve_rejects_unknown_revision(fresh_backend: Backend, tmp_path: Path) -> None:
    result = run_command(["migrate"], fresh_backend, tmp_path)
    assert result.returncode == 0, result.stderr

    def set_unknown_revision(connection: Connection) -> None:
        connection.execute(text("UPDATE alembic_version SET version_num = 'f00d'"))

    await run_on(engine_for(fresh_backend, tmp_path), set_unknown_revision)
    refused = run_command(["serve"], fresh_backend, tmp_path, timeout=90)
    migrate_refused = run_command(["migrate"], fresh_backend, tmp_path)

    assert refused.returncode == 2, refused.stderr
    assert "schema revision 'f00d'" in refused.stderr
    assert "does not know" in refused.stderr
    assert "dicomweb-server migrate" in refused.stderr
    assert migrate_refused.returncode == 2, migrate_refused.stderr
    assert "schema revision 'f00d'" in migrate_refused.stderr
    assert "Traceback" not in migrate_refused.stderr


async def test_serve_rejects_tables_without_revision(fresh_backend: Backend, tmp_path: Path) -> None:
    def create_foreign_table(connection: Connection) -> None:
        connection.execute(text("CREATE TABLE unrelated (id INTEGER PRIMARY KEY)"))

    await run_on(engine_for(fresh_backend, tmp_path), create_foreign_table)
    refused = run_command(["serve"], fresh_backend, tmp_path, timeout=90)

    assert refused.returncode == 2, refused.stderr
    assert "has no schema" in refused.stderr
    assert "run `dicomweb-server migrate`" in refused.stderr


async def test_migration_pads_short_study_date_bounds(fresh_backend: Backend, tmp_path: Path) -> None:
    """Bounds written with a year below 1000 and no leading zeros get them back."""
    at = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    common = {
        "patient_id": "PAT-SHORT",
        "issuer_of_patient_id": "",
        "coverage": "date_range",
        "any_external": True,
        "purpose": "care",
        "reference": "ref",
        "recorded_by": "test",
        "recorded_at": at,
        "starts_at": at,
        "ends_at": at,
        "time_zone": "UTC",
        "end_chosen_by_patient": False,
        "meets_twelve_months": True,
        "updated_at": at,
    }
    stored = [("10101", "9991231"), ("990101", "20241231"), (None, None)]
    engine = engine_for(fresh_backend, tmp_path)
    try:
        await migrate(engine, "0005")
        async with engine.begin() as connection:
            await connection.execute(
                insert(patient_authorization),
                [
                    {
                        **common,
                        "authorization_id": f"short-{number}",
                        "study_date_from": first,
                        "study_date_to": last,
                    }
                    for number, (first, last) in enumerate(stored)
                ],
            )
        await migrate(engine)

        async with engine.connect() as connection:
            rows = await connection.execute(
                select(
                    patient_authorization.c.authorization_id,
                    patient_authorization.c.study_date_from,
                    patient_authorization.c.study_date_to,
                )
            )
            bounds = {row.authorization_id: (row.study_date_from, row.study_date_to) for row in rows}
    finally:
        await engine.dispose()

    assert bounds["short-0"] == ("00010101", "09991231")
    assert bounds["short-1"] == ("00990101", "20241231")
    assert bounds["short-2"] == (None, None)
