"""The DICOMweb resource paths (PS3.18 Annex H), composed along the Study, Series, Instance hierarchy."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route

from dicomweb_server.dicom.uids import check_uid
from dicomweb_server.errors import InvalidRequest
from dicomweb_server.web import capabilities, frames, qido, rendered, stow, wado
from dicomweb_server.web.urls import DICOMWEB_PREFIX

STUDIES = "/studies"
STUDY = STUDIES + "/{study_instance_uid}"
STUDY_SERIES = STUDY + "/series"
SERIES = STUDY_SERIES + "/{series_instance_uid}"
SERIES_INSTANCES = SERIES + "/instances"
INSTANCE = SERIES_INSTANCES + "/{sop_instance_uid}"
STUDY_INSTANCES = STUDY + "/instances"
FRAMES = INSTANCE + "/frames/{frame_list}"
BULKDATA = INSTANCE + "/bulkdata/{attribute_path:path}"
METADATA = "/metadata"
RENDERED = "/rendered"
THUMBNAIL = "/thumbnail"
ALL_SERIES = "/series"
ALL_INSTANCES = "/instances"

DICOMWEB_ROUTES: list[BaseRoute] = [
    Route("/", capabilities.retrieve_capabilities, methods=["OPTIONS"], name="RetrieveCapabilities"),
    Route(STUDIES, qido.search_for_studies, methods=["GET"], name="SearchForStudies"),
    Route(STUDIES, stow.store_instances, methods=["POST"], name="StoreInstances"),
    Route(ALL_SERIES, qido.search_for_series, methods=["GET"], name="SearchForSeries"),
    Route(ALL_INSTANCES, qido.search_for_instances, methods=["GET"], name="SearchForInstances"),
    Route(STUDY, wado.retrieve_study, methods=["GET"], name="RetrieveStudy"),
    Route(STUDY, stow.store_instances, methods=["POST"], name="StoreStudyInstances"),
    Route(STUDY + METADATA, wado.retrieve_study_metadata, methods=["GET"], name="RetrieveStudyMetadata"),
    Route(STUDY_SERIES, qido.search_for_series, methods=["GET"], name="SearchForStudySeries"),
    Route(STUDY_INSTANCES, qido.search_for_instances, methods=["GET"], name="SearchForStudyInstances"),
    Route(SERIES, wado.retrieve_series, methods=["GET"], name="RetrieveSeries"),
    Route(SERIES + METADATA, wado.retrieve_series_metadata, methods=["GET"], name="RetrieveSeriesMetadata"),
    Route(SERIES_INSTANCES, qido.search_for_instances, methods=["GET"], name="SearchForSeriesInstances"),
    Route(INSTANCE, wado.retrieve_instance, methods=["GET"], name="RetrieveInstance"),
    Route(
        INSTANCE + METADATA, wado.retrieve_instance_metadata, methods=["GET"], name="RetrieveInstanceMetadata"
    ),
    Route(FRAMES, frames.retrieve_frames, methods=["GET"], name="RetrieveFrames"),
    Route(BULKDATA, frames.retrieve_bulkdata, methods=["GET"], name="RetrieveBulkdata"),
    Route(STUDY + RENDERED, rendered.retrieve_study_rendered, methods=["GET"], name="RetrieveStudyRendered"),
    Route(
        SERIES + RENDERED, rendered.retrieve_series_rendered, methods=["GET"], name="RetrieveSeriesRendered"
    ),
    Route(
        INSTANCE + RENDERED,
        rendered.retrieve_instance_rendered,
        methods=["GET"],
        name="RetrieveInstanceRendered",
    ),
    Route(
        FRAMES + RENDERED, rendered.retrieve_frames_rendered, methods=["GET"], name="RetrieveFramesRendered"
    ),
    Route(
        STUDY + THUMBNAIL, rendered.retrieve_study_thumbnail, methods=["GET"], name="RetrieveStudyThumbnail"
    ),
    Route(
        SERIES + THUMBNAIL,
        rendered.retrieve_series_thumbnail,
        methods=["GET"],
        name="RetrieveSeriesThumbnail",
    ),
    Route(
        INSTANCE + THUMBNAIL,
        rendered.retrieve_instance_thumbnail,
        methods=["GET"],
        name="RetrieveInstanceThumbnail",
    ),
    Route(
        FRAMES + THUMBNAIL,
        rendered.retrieve_frames_thumbnail,
        methods=["GET"],
        name="RetrieveFramesThumbnail",
    ),
]


UID_PATH_PARAMETERS = {
    "study_instance_uid": "StudyInstanceUID",
    "series_instance_uid": "SeriesInstanceUID",
    "sop_instance_uid": "SOPInstanceUID",
}
"""Path parameters that contain UIDs, with the keyword of each."""

Endpoint = Callable[[Request], Awaitable[Response]]


def dicomweb_mount() -> Mount:
    return Mount(DICOMWEB_PREFIX, routes=_one_route_per_path(_with_uid_checks(DICOMWEB_ROUTES)))


def _with_uid_checks(routes: list[BaseRoute]) -> list[BaseRoute]:
    checked: list[BaseRoute] = []
    for route in routes:
        if isinstance(route, Route) and any(f"{{{name}}}" in route.path for name in UID_PATH_PARAMETERS):
            route = Route(route.path, _checking_uids(route.endpoint), methods=route.methods, name=route.name)
        checked.append(route)
    return checked


def _checking_uids(endpoint: Endpoint) -> Endpoint:
    """Wrap an endpoint so that it first rejects a UID in the path that breaks PS3.5 9.1.

    The check looks at the syntax alone, before any look-up, so a hidden study and an absent one
    still get the same responses.
    """

    @functools.wraps(endpoint)
    async def checked(request: Request) -> Response:
        for name, keyword in UID_PATH_PARAMETERS.items():
            value = request.path_params.get(name)
            if value is None:
                continue
            check = check_uid(value)
            if not check.usable:
                raise InvalidRequest(
                    f"invalid {keyword} {value!r} in the request path: {check.reason}; a UID is digits and "
                    "dots, at most 64 characters, without empty components (PS3.5 9.1)"
                )
        return await endpoint(request)

    return checked


def _one_route_per_path(routes: list[BaseRoute]) -> list[BaseRoute]:
    """Join the routes of one path into one route that dispatches by method.

    Starlette answers a method no route of the path serves with the methods of the first route
    only; a joined route makes the Allow header of a 405 list every method of the resource, as
    PS3.18 8.5 requires (POST and GET on /studies, for instance).
    """
    by_path: dict[str, list[Route]] = {}
    joined: list[BaseRoute] = []
    for route in routes:
        if isinstance(route, Route):
            if route.path not in by_path:
                joined.append(route)
            by_path.setdefault(route.path, []).append(route)
        else:
            joined.append(route)
    return [_join(by_path[route.path]) if isinstance(route, Route) else route for route in joined]


def _join(routes: list[Route]) -> Route:
    if len(routes) == 1:
        return routes[0]
    endpoints = {method: route.endpoint for route in routes for method in route.methods or ()}

    async def dispatch(request: Request) -> Response:
        return await endpoints[request.method](request)  # type: ignore[no-any-return]

    dispatch.__name__ = "_or_".join(route.endpoint.__name__ for route in routes)
    return Route(routes[0].path, dispatch, methods=sorted(endpoints), name=" ".join(r.name for r in routes))
