"""``dicomweb-server serve``: run the server until Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import errno
import logging
import os
import signal
import socket
import sys

import uvicorn
from starlette.applications import Starlette
from uvicorn.supervisors import Multiprocess

from dicomweb_server.app import create_app, open_state
from dicomweb_server.auth.bootstrap import AdminTokenFile, BootstrapError, ensure_admin_token
from dicomweb_server.cli.common import (
    add_settings_options,
    configure_logging,
    fail,
    prepare_data_dir,
    settings_from,
)
from dicomweb_server.config import Settings, load_settings, settings_environment
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
    prepare_data_dir(settings)

    # The port is taken first, so that a port in use stops the start before it prints a URL
    # that leads to another program, and before it issues the first admin token.
    try:
        listener = bind_listener(settings)
    except OSError as error:
        return fail(_bind_failure(settings, error))
    with listener:
        problem = asyncio.run(_preflight(settings))
        if problem:
            return fail(problem)

        host = f"[{settings.host}]" if ":" in settings.host else settings.host
        print(f"DICOMweb root: http://{host}:{settings.port}/dicom-web", file=sys.stderr, flush=True)
        print(f"Data folder: {settings.data_dir}", file=sys.stderr, flush=True)
        if settings.workers > 1:
            return _run_workers(settings, listener)

        server = uvicorn.Server(_uvicorn_config(settings, create_app(settings)))
        # On SIGTERM uvicorn finishes the requests in flight and then raises the signal again for
        # the handler installed before it. The default handler would end the process with status -15.
        signal.signal(signal.SIGTERM, _exit_after_shutdown)
        server.run(sockets=[listener])
        return 0 if server.started else 1


LISTEN_BACKLOG = 2048
"""Connections the kernel queues before the server accepts them; uvicorn's default."""


def bind_listener(settings: Settings) -> socket.socket:
    """Bind and listen on the configured host and port, as uvicorn would, and return the socket.

    Raises
    ------
    OSError
        When the address cannot be used, such as a port another program listens on.
    """
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((settings.host, settings.port))
        # Listening at once also keeps a second server from binding the port with SO_REUSEADDR.
        listener.listen(LISTEN_BACKLOG)
    except OSError:
        listener.close()
        raise
    listener.set_inheritable(True)
    return listener


def _bind_failure(settings: Settings, error: OSError) -> str:
    if error.errno == errno.EADDRINUSE:
        return (
            f"port {settings.port} on {settings.host} is in use by another program; stop that program, or "
            "choose another port with --port or DICOMWEB_PORT"
        )
    return (
        f"cannot listen on {settings.host} port {settings.port}: {error.strerror or error}; choose another "
        "address or port with --host and --port, or DICOMWEB_HOST and DICOMWEB_PORT"
    )


def _uvicorn_config(settings: Settings, app: object, **options: object) -> uvicorn.Config:
    return uvicorn.Config(
        app,  # type: ignore[arg-type]
        host=settings.host,
        port=settings.port,
        access_log=False,
        proxy_headers=False,
        server_header=False,
        timeout_graceful_shutdown=int(settings.shutdown_timeout),
        log_config=None,
        lifespan="on",
        **options,  # type: ignore[arg-type]
    )


def _run_workers(settings: Settings, listener: socket.socket) -> int:
    """Run several worker processes on one port; each builds its app from the environment."""
    os.environ.update(settings_environment(settings))
    config = _uvicorn_config(
        settings, "dicomweb_server.cli.serve:worker_app", factory=True, workers=settings.workers
    )
    try:
        Multiprocess(config, sockets=[listener]).run()
    except KeyboardInterrupt:
        pass
    return 0


def worker_app() -> Starlette:
    """Build the application in a worker process, from the settings its parent put in the environment."""
    settings = load_settings()
    configure_logging(settings)
    return create_app(settings)


def _exit_after_shutdown(signum: int, frame: object) -> None:
    raise SystemExit(0)


async def _preflight(settings: Settings) -> str | None:
    """Open the index and store once before listening, so a wrong setting stops the start.

    On the first start this also issues the admin token and writes it to its file.
    """
    try:
        state = await open_state(settings)
    except (IndexUnavailable, StoreError) as error:
        return str(error)
    try:
        token_file = await ensure_admin_token(settings, state.index)
    except BootstrapError as error:
        return str(error)
    finally:
        await state.index.close()
    _announce_identity(settings, token_file)
    return None


def _announce_identity(settings: Settings, token_file: AdminTokenFile | None) -> None:
    if token_file is not None and token_file.issued:
        print(
            f"Admin token: written to {token_file.path} (readable only by its owner); send it as "
            "'Authorization: Bearer <token>'",
            file=sys.stderr,
            flush=True,
        )
    elif token_file is not None:
        print(f"Admin token: in {token_file.path}", file=sys.stderr, flush=True)
    if settings.open:
        logger.warning(
            "Identity: open mode; requests without a token are served as the local administrator. "
            "Use it only to try the server out"
        )
