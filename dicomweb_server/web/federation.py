"""The federation root, /federation/dicom-web: one search across this archive and its peers.

``GET /federation/dicom-web/studies`` (and ``/series``, ``/instances`` and their nested forms)
takes the QIDO-RS query parameters of ``/dicom-web`` and returns the results of this
archive, under the requester's consent filter, and of every peer, each labelled with its source
(see ``federation.search``). A peer that fails or times out adds a ``Warning: 299`` naming it,
and the search answers 200 with the other sources' results.

``GET /federation/dicom-web/peers/NAME/studies/...`` relays a WADO-RS retrieval to the peer,
streamed, and ``POST /federation/dicom-web/peers/NAME/studies/UID/import`` stores a peer's study
in this archive. Peers are searched, and retrieved and imported from, only for requesters of
the archive's own (affiliated) organisations. A peer responds to this archive's credentials,
so relaying its responses to an external requester would disclose what the peer shared with us.
External requesters get this archive's results only.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.types import Receive, Scope, Send

from dicomweb_server.audit import request_audit
from dicomweb_server.dicom.attributes import QueryLevel
from dicomweb_server.dicom.query import SearchQuery, parse_search
from dicomweb_server.dicom.uids import check_uid
from dicomweb_server.errors import DependencyUnavailable, Forbidden, InvalidRequest, NotAcceptable, NotFound
from dicomweb_server.federation.client import PeerSearch
from dicomweb_server.federation.credentials import PeerAccess
from dicomweb_server.federation.errors import PeerError, as_archive_error
from dicomweb_server.federation.importer import ImportOutcome, import_study
from dicomweb_server.federation.peers import LOCAL_SOURCE, Peer, get_peer, list_peers
from dicomweb_server.federation.recording import (
    describe_import,
    describe_retrieval,
    describe_search,
    involve_local_results,
    record_import_results,
    record_peer_searches,
    request_searched_studies,
)
from dicomweb_server.federation.retrieval import (
    RELAYED_HEADERS,
    PeerStream,
    is_retrieval_path,
    open_stream,
    replace_prefix,
    unexpected_media_type,
)
from dicomweb_server.federation.sealing import SealError, load_peer_key
from dicomweb_server.federation.search import SourceResults, label, merge, search_peers, source_of
from dicomweb_server.federation.transport import describe_status
from dicomweb_server.web.accept import accepted_ranges
from dicomweb_server.web.context import requester, state
from dicomweb_server.web.negotiation import require_json
from dicomweb_server.web.qido import MORE_RESULTS, path_scope, search_archive
from dicomweb_server.web.responses import warning_header
from dicomweb_server.web.stow import store_instances_response
from dicomweb_server.web.urls import base_url, dicomweb_root, instance_url, series_url, study_url

logger = logging.getLogger(__name__)

FEDERATION_PREFIX = "/federation/dicom-web"
EXTERNAL_ONLY_LOCAL = (
    "peer archives are searched only for users of this archive's own organisation; "
    "these results are this archive's alone"
)
AFFILIATED_ONLY = (
    "retrieving from or importing from peer archives through this archive is open only to users of "
    "its own organisation; search and retrieve under /dicom-web instead"
)


def federation_root(request: Request) -> str:
    """Return the federation root URL ("https://pacs.example.org/federation/dicom-web")."""
    return base_url(request) + FEDERATION_PREFIX


async def federated_search_for_studies(request: Request) -> Response:
    return await _federated_search(request, QueryLevel.STUDY, "FederatedSearchForStudies")


async def federated_search_for_series(request: Request) -> Response:
    return await _federated_search(request, QueryLevel.SERIES, "FederatedSearchForSeries")


async def federated_search_for_instances(request: Request) -> Response:
    return await _federated_search(request, QueryLevel.INSTANCE, "FederatedSearchForInstances")


async def _federated_search(request: Request, level: QueryLevel, action: str) -> Response:
    audit = request_audit(request)
    describe_search(audit, action, level)
    media_type = require_json(accepted_ranges(request))
    scope = path_scope(request)
    parameters = [(name, value) for name, value in request.query_params.multi_items() if name != "accept"]
    query = parse_search(level, parameters, scope)
    request_searched_studies(audit, query, scope)

    maximum = state(request).settings.qido_max_results
    limit = min(query.limit if query.limit is not None else maximum, maximum)
    # A peer may read limit=0 as "no limit", so every source is asked for one result at least.
    window = max(min(query.offset + limit, maximum), 1)
    warnings = list(query.warnings)
    local, peer_results = await _search_sources(request, query, scope, parameters, window, warnings)
    page, more = merge(level, [local, *peer_results], query.offset, limit)

    for failure in _failures(peer_results):
        warnings.append(f"peer {failure.peer_name} {failure.reason}; its results are missing")
    if more:
        warnings.append(MORE_RESULTS)
    if query.offset + limit > maximum:
        warnings.append(
            f"a federated search reaches the first {maximum} merged results only; narrow the search "
            "to see results beyond them"
        )
    _log_search(peer_results)
    local_page = [dataset for dataset in page if source_of(dataset) == LOCAL_SOURCE]
    involve_local_results(audit, local_page, requester(request).external)
    await record_peer_searches(action, level, peer_results)
    headers = {"Warning": warning_header(warnings)} if warnings else {}
    return Response(orjson.dumps(page), media_type=media_type, headers=headers)


async def _search_sources(
    request: Request,
    query: SearchQuery,
    scope: dict[str, str],
    parameters: list[tuple[str, str]],
    window: int,
    warnings: list[str],
) -> tuple[SourceResults, list[SourceResults]]:
    """Search this archive and every peer at once for their first ``window`` results, labelled by source."""
    accesses = await _searchable_peers(request, warnings)
    study, series = scope.get("StudyInstanceUID"), scope.get("SeriesInstanceUID")
    search = PeerSearch(query.level, study, series, tuple(parameters))
    root = dicomweb_root(request)
    (datasets, more), peer_results = await asyncio.gather(
        search_archive(request, dataclasses.replace(query, limit=window, offset=0), scope, root),
        search_peers(accesses, search, window),
    )

    local = SourceResults(LOCAL_SOURCE, datasets, more=more)
    label(local.datasets, LOCAL_SOURCE, query.level, _retrieve_url(root), (study, series))
    for found in peer_results:
        peer_root = _peer_root(request, found.source)
        label(found.datasets, found.source, query.level, _retrieve_url(peer_root), (study, series))
    return local, peer_results


def _failures(peer_results: list[SourceResults]) -> list[PeerError]:
    return [found.failure for found in peer_results if found.failure is not None]


async def _searchable_peers(request: Request, warnings: list[str]) -> list[PeerAccess]:
    """Return the peers to search with their credentials opened; add a warning for each that cannot be."""
    if requester(request).external:
        warnings.append(EXTERNAL_ONLY_LOCAL)
        return []
    async with state(request).index.read() as connection:
        peers = await list_peers(connection)
    if not peers:
        return []
    try:
        key = load_peer_key(state(request).settings, create=False)
    except SealError as error:
        logger.error("Federation: the peer key cannot be loaded: %s", error)
        warnings += [f"peer {peer.name} was not searched: its credentials cannot be opened" for peer in peers]
        return []
    accesses = []
    for peer in peers:
        try:
            accesses.append(PeerAccess.open(peer, key))
        except SealError as error:
            logger.error("Federation: %s", error)
            warnings.append(f"peer {peer.name} was not searched: its credentials cannot be opened")
    return accesses


def _retrieve_url(root: str) -> Callable[[str, str | None, str | None], str]:
    def build(study: str, series: str | None, instance: str | None) -> str:
        if series is None:
            return study_url(root, study)
        if instance is None:
            return series_url(root, study, series)
        return instance_url(root, study, series, instance)

    return build


def _peer_root(request: Request, peer_name: str) -> str:
    return f"{federation_root(request)}/peers/{peer_name}"


def _log_search(peer_results: list[SourceResults]) -> None:
    failures = _failures(peer_results)
    for failure in failures:
        logger.warning("Federation: peer %s %s", failure.peer_name, failure.reason)
    logger.info("Federation: searched %d peers, %d failed", len(peer_results), len(failures))


async def _peer_access(request: Request) -> PeerAccess:
    """Return the peer of the request path with its credential opened.

    Raises
    ------
    Forbidden
        For an external requester, whatever the path names.
    NotFound
        When no peer has that name.
    """
    if requester(request).external:
        raise Forbidden(AFFILIATED_ONLY)
    async with state(request).index.read() as connection:
        peer = await get_peer(connection, request.path_params["peer"])
    try:
        return PeerAccess.open(peer, load_peer_key(state(request).settings, create=False))
    except SealError as error:
        logger.error("Federation: %s", error)
        raise DependencyUnavailable(str(error)) from None


async def retrieve_from_peer(request: Request) -> Response:
    """Relay a WADO-RS retrieval to a peer, streamed, with the client's Accept header and query."""
    path = request.path_params["path"]
    relayed = is_retrieval_path(path)
    describe_retrieval(request_audit(request), request.path_params["peer"], path if relayed else None)
    access = await _peer_access(request)
    if not relayed:
        raise NotFound("not found")

    try:
        stream = await open_stream(access, path, request.headers.get("accept"), request.url.query)
    except PeerError as error:
        raise as_archive_error(error) from None
    if stream.status_code not in (200, 206):
        await _reject_status(stream, access.peer)
    unexpected = unexpected_media_type(path, stream.media_type)
    if unexpected is not None:
        await stream.aclose()
        raise as_archive_error(PeerError(access.peer.name, unexpected))

    body = stream.chunks()
    if stream.is_json():
        at_peer = f"{access.peer.url}/".encode()
        through_us = f"{_peer_root(request, access.peer.name)}/".encode()
        body = replace_prefix(body, at_peer, through_us)
    return PeerStreamResponse(stream, body, status_code=stream.status_code, media_type=stream.content_type)


async def _reject_status(stream: PeerStream, peer: Peer) -> None:
    """Close a peer's error response and raise the error this archive returns instead."""
    status = stream.status_code
    excerpt = await stream.text_excerpt() if status in (400, 406) else ""
    await stream.aclose()
    if status == 404:
        raise NotFound("not found")
    if status == 406:
        raise NotAcceptable(f"peer {peer.name} cannot send the requested representation: {excerpt}")
    if status == 400:
        raise InvalidRequest(f"peer {peer.name} rejected the request: {excerpt}")
    raise as_archive_error(PeerError(peer.name, describe_status(status)))


class PeerStreamResponse(StreamingResponse):
    """A response that relays a peer's body and closes the connection to the peer however it ends."""

    def __init__(self, stream: PeerStream, body: object, *, status_code: int, media_type: str) -> None:
        super().__init__(body, status_code=status_code, media_type=media_type, headers=RELAYED_HEADERS)  # type: ignore[arg-type]
        self._stream = stream

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self._stream.aclose()


async def import_from_peer(request: Request) -> Response:
    """Store a peer's study in this archive and return the Store Instances Response of STOW-RS."""
    study_instance_uid = request.path_params["study_instance_uid"]
    audit = request_audit(request)
    describe_import(audit, request.path_params["peer"], study_instance_uid)
    response_type = require_json(accepted_ranges(request))
    check = check_uid(study_instance_uid)
    if not check.usable:
        raise InvalidRequest(
            f"invalid StudyInstanceUID {study_instance_uid!r} in the request path: {check.reason}"
        )
    access = await _peer_access(request)

    try:
        outcome = await import_study(access, study_instance_uid, state(request).ingest)
    except PeerError as error:
        raise as_archive_error(error) from None
    record_import_results(audit, study_instance_uid, outcome.results, outcome.interrupted)
    _log_import(outcome)

    body = store_instances_response(outcome.results, dicomweb_root(request), study_instance_uid)
    headers = {}
    if outcome.interrupted:
        warning = (
            f"the peer's response ended early ({outcome.interrupted}); import the study again for the rest"
        )
        headers["Warning"] = warning_header([warning])
    return Response(
        orjson.dumps(body), status_code=_import_status(outcome), media_type=response_type, headers=headers
    )


def _log_import(outcome: ImportOutcome) -> None:
    stored = sum(result.stored and not result.duplicate for result in outcome.results)
    duplicates = sum(result.duplicate for result in outcome.results)
    failed = sum(not result.stored for result in outcome.results)
    logger.info("Federation: imported %d instances, %d already stored, %d failed", stored, duplicates, failed)


def _import_status(outcome: ImportOutcome) -> int:
    stored = sum(result.stored for result in outcome.results)
    if stored == 0:
        return 409
    if stored < len(outcome.results) or outcome.interrupted:
        return 202
    return 200


STUDIES = "/studies"
STUDY = STUDIES + "/{study_instance_uid}"
SERIES = STUDY + "/series/{series_instance_uid}"

# NOTE: retrievals exist only under /peers/{peer}/, the RetrieveURL of each result. A viewer that
# builds WADO-RS URLs from the federation root (/federation/dicom-web/studies/{study}) gets 404.
FEDERATION_ROUTES = [
    Route(STUDIES, federated_search_for_studies, methods=["GET"], name="FederatedSearchForStudies"),
    Route("/series", federated_search_for_series, methods=["GET"], name="FederatedSearchForSeries"),
    Route("/instances", federated_search_for_instances, methods=["GET"], name="FederatedSearchForInstances"),
    Route(
        STUDY + "/series", federated_search_for_series, methods=["GET"], name="FederatedSearchForStudySeries"
    ),
    Route(
        STUDY + "/instances",
        federated_search_for_instances,
        methods=["GET"],
        name="FederatedSearchForStudyInstances",
    ),
    Route(
        SERIES + "/instances",
        federated_search_for_instances,
        methods=["GET"],
        name="FederatedSearchForSeriesInstances",
    ),
    Route(
        "/peers/{peer}" + STUDY + "/import", import_from_peer, methods=["POST"], name="ImportStudyFromPeer"
    ),
    Route("/peers/{peer}/{path:path}", retrieve_from_peer, methods=["GET"], name="RetrieveFromPeer"),
]


def federation_mount() -> Mount:
    return Mount(FEDERATION_PREFIX, routes=FEDERATION_ROUTES)
