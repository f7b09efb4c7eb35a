"""QIDO-RS searches of one peer, through dicomweb-client, bounded by the peer's timeout.

dicomweb-client is synchronous (it sends with requests), so each search runs on a thread of a
pool kept for peers, apart from the event loop's default pool that parsing and transcoding
use. The peer's timeout bounds each connect and each read of requests, and a deadline on the
event loop bounds the whole search, token fetch included. A search that passes its deadline is
reported as timed out at once. Its thread stops reading the body at the first read after the
deadline, or when requests' read timeout fires, and stops after 32 MiB of body. Retries are off:
a peer that fails is reported, not asked again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any

import requests
from dicomweb_client.api import DICOMwebClient

from dicomweb_server.dicom.attributes import QueryLevel
from dicomweb_server.federation.credentials import ACCESS_TOKENS, PeerAccess
from dicomweb_server.federation.errors import PeerError
from dicomweb_server.federation.transport import bounded_body_hook, peer_failure, requests_session

logger = logging.getLogger(__name__)

SEARCH_THREADS = 32
"""Threads for searches of peers; a search waits for a free one when all are busy."""

_executor: ThreadPoolExecutor | None = None


def _search_executor() -> ThreadPoolExecutor:
    global _executor
    if _executor is None:
        _executor = ThreadPoolExecutor(max_workers=SEARCH_THREADS, thread_name_prefix="peer-search")
    return _executor


@dataclass(frozen=True)
class PeerSearch:
    """One search to send to a peer: its level, the UIDs of its path, and its query parameters."""

    level: QueryLevel
    study_instance_uid: str | None = None
    series_instance_uid: str | None = None
    parameters: tuple[tuple[str, str], ...] = ()


async def search_peer(access: PeerAccess, search: PeerSearch) -> list[dict[str, Any]]:
    """Run ``search`` on the peer and return its results as DICOM JSON data sets.

    An empty result may come as ``200 []`` or as ``204 No Content``; both return ``[]``.

    Raises
    ------
    PeerError
        When the peer fails, refuses, times out or responds with something that is not DICOM JSON;
        ``PeerTimeout`` for a timeout.
    """
    peer = access.peer
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(peer.timeout):
            headers = await ACCESS_TOKENS.headers(access)
            run = partial(_search_blocking, access, headers, search)
            results = await loop.run_in_executor(_search_executor(), run)
    except PeerError:
        raise
    except Exception as error:  # noqa: BLE001 - every failure of a peer is reported, none ends the search
        failure = peer_failure(peer, error)
        if _rejected_credentials(error):
            ACCESS_TOKENS.forget(access)
        raise failure from None
    return _checked(peer.name, results)


def _search_blocking(access: PeerAccess, headers: dict[str, str], search: PeerSearch) -> Any:
    session = requests_session(access.peer)
    deadline = time.monotonic() + access.peer.timeout
    session.hooks["response"].append(bounded_body_hook(access.peer, deadline))
    try:
        client = DICOMwebClient(
            access.peer.url,
            session=session,
            headers=headers,
            timeout=(access.peer.timeout, access.peer.timeout),
        )
        client.set_http_retry_params(retry=False)
        try:
            return _method(client, search)(**_client_arguments(search.parameters))
        except requests.HTTPError as error:
            # A nested search under a study or series the peer does not hold may return 404; that
            # means no results, as an empty search does.
            nested = search.study_instance_uid is not None
            if nested and error.response is not None and error.response.status_code == 404:
                return []
            raise
    finally:
        session.close()


def _method(client: DICOMwebClient, search: PeerSearch) -> Callable[..., Any]:
    if search.level is QueryLevel.STUDY:
        return client.search_for_studies
    if search.level is QueryLevel.SERIES:
        return partial(client.search_for_series, study_instance_uid=search.study_instance_uid)
    return partial(
        client.search_for_instances,
        study_instance_uid=search.study_instance_uid,
        series_instance_uid=search.series_instance_uid,
    )


def _client_arguments(parameters: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """Translate QIDO query parameters into the arguments of dicomweb-client's search methods."""
    filters: dict[str, str] = {}
    fields: list[str] = []
    extra: dict[str, str] = {}
    arguments: dict[str, Any] = {}
    for name, value in parameters:
        if name == "includefield":
            fields.extend(item.strip() for item in value.split(",") if item.strip())
        elif name == "fuzzymatching":
            arguments["fuzzymatching"] = value.strip().lower() == "true"
        elif name in ("limit", "offset"):
            arguments[name] = int(value)
        elif name in ("emptyvaluematching", "multiplevaluematching"):
            extra[name] = value
        else:
            filters[name] = value
    if fields:
        arguments["fields"] = fields
    if filters:
        arguments["search_filters"] = filters
    if extra:
        arguments["additional_params"] = extra
    return arguments


def _checked(peer_name: str, results: Any) -> list[dict[str, Any]]:
    if not isinstance(results, list) or not all(isinstance(item, dict) for item in results):
        raise PeerError(peer_name, "responded with a body that is not a DICOM JSON array")
    return results


def _rejected_credentials(error: BaseException) -> bool:
    response = getattr(error, "response", None)
    return response is not None and getattr(response, "status_code", None) in (401, 403)


@dataclass(frozen=True)
class ProbeResult:
    """The outcome of ``peer test``: the latency of one study search and its first error."""

    elapsed: float
    results: int | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


async def probe_peer(access: PeerAccess) -> ProbeResult:
    """Search the peer for one study and report how long it took and what failed, in plain words."""
    started = time.perf_counter()
    try:
        found = await search_peer(access, PeerSearch(QueryLevel.STUDY, parameters=(("limit", "1"),)))
    except PeerError as error:
        return ProbeResult(time.perf_counter() - started, error=error.reason)
    return ProbeResult(time.perf_counter() - started, results=len(found))
