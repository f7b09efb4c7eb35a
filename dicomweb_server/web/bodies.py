"""Request bodies read with a time limit between chunks, so a stalled upload does not hold the server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from starlette.requests import Request

from dicomweb_server.errors import RequestTimeout


async def body_chunks(request: Request) -> AsyncIterator[bytes]:
    """Yield the chunks of the request body as they arrive.

    Raises
    ------
    RequestTimeout
        When no byte arrives for ``body_read_timeout`` seconds before the body ends.
    """
    timeout = request.app.state.settings.body_read_timeout
    stream = aiter(request.stream())
    while True:
        try:
            async with asyncio.timeout(timeout):
                chunk = await anext(stream)
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise RequestTimeout(
                f"no byte of the request body arrived for {timeout:g} seconds, so the request was stopped "
                "and nothing of an unfinished instance was kept; send the whole body without pausing "
                "(the limit is DICOMWEB_BODY_READ_TIMEOUT)",
                headers={"Connection": "close"},
            ) from None
        yield chunk
