"""QIDO-RS: the Search transaction of the Studies Service (PS3.18 10.6)."""

from __future__ import annotations

from typing import Any

import orjson
from pydicom.datadict import dictionary_VR
from starlette.requests import Request
from starlette.responses import Response

from dicomweb_server.audit import EventType, request_audit
from dicomweb_server.dicom.attributes import COMPUTED_TAGS, RETURN_TAGS, QueryLevel, level_of_tag
from dicomweb_server.dicom.dicom_json import element
from dicomweb_server.dicom.query import MatchKind, SearchQuery, parse_search
from dicomweb_server.index.search import SearchResult, search
from dicomweb_server.web.accept import accepted_ranges
from dicomweb_server.web.context import requester, requester_visibility, state
from dicomweb_server.web.negotiation import require_json
from dicomweb_server.web.responses import warning_header
from dicomweb_server.web.urls import dicomweb_root, instance_url, series_url, study_url

MORE_RESULTS = "There are additional results that can be requested"


async def search_for_studies(request: Request) -> Response:
    return await _search(request, QueryLevel.STUDY, {}, "SearchForStudies")


async def search_for_series(request: Request) -> Response:
    return await _search(request, QueryLevel.SERIES, path_scope(request), "SearchForSeries")


async def search_for_instances(request: Request) -> Response:
    return await _search(request, QueryLevel.INSTANCE, path_scope(request), "SearchForInstances")


def path_scope(request: Request) -> dict[str, str]:
    scope = {}
    if "study_instance_uid" in request.path_params:
        scope["StudyInstanceUID"] = request.path_params["study_instance_uid"]
    if "series_instance_uid" in request.path_params:
        scope["SeriesInstanceUID"] = request.path_params["series_instance_uid"]
    return scope


async def _search(request: Request, level: QueryLevel, scope: dict[str, str], action: str) -> Response:
    audit = request_audit(request)
    audit.describe(EventType.QUERY, action, level=str(level), discloses=True)
    media_type = require_json(accepted_ranges(request))
    parameters = [(name, value) for name, value in request.query_params.multi_items() if name != "accept"]
    query = parse_search(level, parameters, scope)
    _record_requested_studies(request, query, scope)

    app = state(request)
    body, more = await search_archive(request, query, scope, dicomweb_root(request))
    _record_results(request, body)

    warnings = list(query.warnings)
    if more:
        warnings.append(MORE_RESULTS)
    if query.limit is not None and query.limit > app.settings.qido_max_results and more:
        warnings.append(
            "The number of results exceeded the maximum supported by the server. "
            "Additional results can be requested."
        )
    headers = {"Warning": warning_header(warnings)} if warnings else {}
    return Response(orjson.dumps(body), media_type=media_type, headers=headers)


async def search_archive(
    request: Request, query: SearchQuery, scope: dict[str, str], root: str
) -> tuple[list[dict[str, Any]], bool]:
    """Run a parsed search on this archive under the requester's consent filter.

    Return the result data sets, with RetrieveURLs under ``root``, and whether more results
    match than the page holds. The federated search uses it for this archive's own results.
    """
    app = state(request)
    levels = _returned_levels(query.level, scope)
    async with app.index.read() as connection:
        page = await search(
            connection,
            query,
            requester_visibility(request),
            app.settings.qido_max_results,
            frozenset(levels - {query.level}),
        )
    return [_result_dataset(result, query, levels, root) for result in page.results], page.more


def _record_requested_studies(request: Request, query: SearchQuery, scope: dict[str, str]) -> None:
    """Name the studies a search asks for by UID, so the trail shows requests for hidden ones."""
    uids = [scope["StudyInstanceUID"]] if "StudyInstanceUID" in scope else []
    condition = query.condition_for("StudyInstanceUID")
    if condition is not None and condition.kind in (MatchKind.SINGLE_VALUE, MatchKind.VALUE_LIST):
        uids += list(condition.values)
    request_audit(request).request_studies(uids)


def _record_results(request: Request, body: list[dict[str, Any]]) -> None:
    """Name the studies in the results of an external requester's search: each is a disclosure.

    An affiliated requester's search is recorded with its query and the number of results only.
    An instance-level search counts its results per study as the instances disclosed.
    """
    audit = request_audit(request)
    audit.detail["results"] = len(body)
    if not requester(request).external:
        return
    for dataset in body:
        uid = (dataset.get("0020000D", {}).get("Value") or [None])[0]
        if isinstance(uid, str):
            audit.involve(uid, 1 if "00080018" in dataset else None)


def _returned_levels(level: QueryLevel, scope: dict[str, str]) -> set[QueryLevel]:
    """Levels whose attributes each result carries (PS3.18 10.6.3.3).

    A search for all series also returns study attributes; a search for all instances returns
    study and series attributes, and one for a study's instances returns series attributes.
    """
    levels = {level}
    if level is QueryLevel.SERIES and "StudyInstanceUID" not in scope:
        levels.add(QueryLevel.STUDY)
    if level is QueryLevel.INSTANCE:
        if "SeriesInstanceUID" not in scope:
            levels.add(QueryLevel.SERIES)
        if "StudyInstanceUID" not in scope:
            levels.add(QueryLevel.STUDY)
    return levels


def _result_dataset(
    result: SearchResult, query: SearchQuery, levels: set[QueryLevel], root: str
) -> dict[str, Any]:
    stored: dict[str, Any] = {}
    for level, attributes in (
        (QueryLevel.STUDY, result.study_attributes),
        (QueryLevel.SERIES, result.series_attributes),
        (QueryLevel.INSTANCE, result.instance_attributes),
    ):
        if level in levels:
            stored.update({key: value for key, value in attributes.items() if not _is_bulk(value)})

    wanted = {tag for level in levels for tag in RETURN_TAGS[level]}
    wanted |= {tag for tag in query.include_tags if level_of_tag(tag) in levels}
    if query.include_all:
        wanted |= {int(key, 16) for key in stored}

    computed = _computed(result, query.level, levels, root)
    dataset: dict[str, Any] = {}
    for tag in sorted(wanted):
        key = f"{tag:08X}"
        if tag in COMPUTED_TAGS:
            if key in computed:
                dataset[key] = computed[key]
        elif key in stored:
            dataset[key] = stored[key]
        else:
            empty = _empty_element(tag)
            if empty is not None:
                dataset[key] = empty
    return dataset


def _is_bulk(value: Any) -> bool:
    return isinstance(value, dict) and ("BulkDataURI" in value or "InlineBinary" in value)


def _empty_element(tag: int) -> dict[str, Any] | None:
    try:
        vr = dictionary_VR(tag)
    except KeyError:
        return None
    return element(vr.split(" or ")[0])


def _computed(result: SearchResult, level: QueryLevel, levels: set[QueryLevel], root: str) -> dict[str, Any]:
    """Compute the attributes the index does not store, for every level the result carries.

    RetrieveURL is the URL of the searched entity, also where parent attributes are repeated.
    """
    computed: dict[str, Any] = {
        "00080056": element("CS", "ONLINE"),
        "00081190": _retrieve_url(result, level, root),
    }
    if QueryLevel.STUDY in levels:
        computed["00080061"] = element("CS", *result.modalities_in_study)
        if result.number_of_study_related_series is not None:
            computed["00201206"] = element("IS", result.number_of_study_related_series)
        if result.number_of_study_related_instances is not None:
            computed["00201208"] = element("IS", result.number_of_study_related_instances)
    if QueryLevel.SERIES in levels and result.number_of_series_related_instances is not None:
        computed["00201209"] = element("IS", result.number_of_series_related_instances)
    return computed


def _retrieve_url(result: SearchResult, level: QueryLevel, root: str) -> dict[str, Any]:
    if level is QueryLevel.STUDY:
        return element("UR", study_url(root, result.study_instance_uid))
    assert result.series_instance_uid is not None
    if level is QueryLevel.SERIES:
        return element("UR", series_url(root, result.study_instance_uid, result.series_instance_uid))
    assert result.sop_instance_uid is not None
    return element(
        "UR",
        instance_url(root, result.study_instance_uid, result.series_instance_uid, result.sop_instance_uid),
    )
