"""``dicomweb-server serve``: run the server until Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

import uvicorn

from dicomweb_server.app import create_app, open_state
from dicomweb_server.cli.common import add_settings_options, configure_logging, fail, settings_from
from dicomweb_server.config import Settings
from dicomweb_server.index.database import IndexUnavailable
from dicomweb_server.storage.store import StoreError

logger = logging.getLogger(__name__)


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="run the DICOMweb server",
        description="Run the DICOMweb server. It listens on 127.0.0.1:8080 unless told otherwise.",
    )
    add_settings_options(parser)
    parser.set_defaults(run=run)


def run(arguments: argparse.Namespace) -> int:
    settings = settings_from(arguments)
    configure_logging(settings)
    settings.data_dir.mkdir(parents=True, exist_ok=True)

    problem = asyncio.run(_preflight(settings))
    if problem:
        return fail(problem)

    config = uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        access_log=False,
        proxy_headers=False,
        server_header=False,
        timeout_graceful_shutdown=int(settings.shutdown_timeout),
        log_config=None,
        lifespan="on",
    )
    server = uvicorn.Server(config)
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    print(f"DICOMweb root: http://{host}:{settings.port}/dicom-web", file=sys.stderr, flush=True)
    print(f"Data folder: {settings.data_dir}", file=sys.stderr, flush=True)
    server.run()
    return 0 if server.started else 1


async def _preflight(settings: Settings) -> str | None:
    """Open the index and store once before listening, so a wrong setting stops the start."""
    try:
        state = await open_state(settings)
    except (IndexUnavailable, StoreError) as error:
        return str(error)
    await state.index.close()
    return None
