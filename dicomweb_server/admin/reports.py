"""Admin API for the reports: accounting of disclosures, CT availability, sharing status of a study.

- ``GET /admin/api/reports/disclosures?patient_id=ID[&issuer_of_patient_id=I]&from=DATE&to=DATE``
- ``GET /admin/api/reports/availability?from=DATE&to=DATE``
- ``GET /admin/api/studies/{study_instance_uid}/sharing``

Dates are days (YYYY-MM-DD) in the configured time zone, both included. The first two respond
with JSON, or CSV with ``format=csv``, and reject any other query parameter. Building a report
is recorded as an ``audit-log-used`` entry.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from dicomweb_server.admin.requests import check_query_parameters, json_response, now_of, time_zone_of
from dicomweb_server.audit import EventType, request_audit
from dicomweb_server.audit.availability import Period, availability_report, parse_period
from dicomweb_server.audit.disclosures import account_disclosures
from dicomweb_server.audit.sharing import sharing_status
from dicomweb_server.errors import InvalidRequest
from dicomweb_server.federation.peers import list_peers
from dicomweb_server.web.context import state

CSV = "text/csv; charset=utf-8"
FORMATS = ("json", "csv")
DISCLOSURE_PARAMETERS = ("patient_id", "issuer_of_patient_id", "from", "to", "format")
AVAILABILITY_PARAMETERS = ("from", "to", "format")
SHARING_PARAMETERS = ("format",)
OTHER_PARAMETER_NAMES = {"issuer": "issuer_of_patient_id"}


def period_of(request: Request) -> Period:
    """Read ``from`` and ``to`` from the query string; the error names the parameter."""
    query = request.query_params
    missing = [name for name in ("from", "to") if not query.get(name)]
    if missing:
        raise InvalidRequest(f"missing query parameter {' and '.join(missing)}: give days as YYYY-MM-DD")
    try:
        return parse_period(query["from"], query["to"], time_zone_of(request))
    except ValueError as error:
        raise InvalidRequest(str(error)) from None


def format_of(request: Request) -> str:
    chosen = request.query_params.get("format", "json")
    if chosen not in FORMATS:
        raise InvalidRequest(f"invalid format {chosen!r}; use json or csv")
    return chosen


async def disclosures_route(request: Request) -> Response:
    """Account for the disclosures of one patient's data over a period."""
    audit = request_audit(request)
    audit.describe(EventType.AUDIT_LOG_USED, "report.disclosures")
    check_query_parameters(request, DISCLOSURE_PARAMETERS, OTHER_PARAMETER_NAMES)
    patient_id = request.query_params.get("patient_id", "").strip()
    if not patient_id:
        raise InvalidRequest("missing query parameter patient_id; the accounting is made per patient")
    issuer = request.query_params.get("issuer_of_patient_id")
    period, chosen = period_of(request), format_of(request)
    audit.detail.update(patient_id=patient_id, issuer_of_patient_id=issuer)
    async with state(request).index.read() as connection:
        accounting = await account_disclosures(connection, patient_id, issuer, period, now_of(request))
    if chosen == "csv":
        return Response(accounting.to_csv(), media_type=CSV)
    return json_response(accounting.to_json())


async def availability_route(request: Request) -> Response:
    """Report which CT studies of a period were made available for twelve months (G9340 or G9329)."""
    request_audit(request).describe(EventType.AUDIT_LOG_USED, "report.availability")
    check_query_parameters(request, AVAILABILITY_PARAMETERS)
    period, chosen = period_of(request), format_of(request)
    async with state(request).index.read() as connection:
        peers = {peer.name: peer.organisation for peer in await list_peers(connection)}
        report = await availability_report(connection, period, now_of(request), peers)
    if chosen == "csv":
        return Response(report.to_csv(), media_type=CSV)
    return json_response(report.to_json())


async def sharing_route(request: Request) -> Response:
    """Show whether a study is available to external facilities now, and the statement for its report."""
    audit = request_audit(request)
    audit.describe(EventType.AUDIT_LOG_USED, "report.sharing", level="study")
    check_query_parameters(request, SHARING_PARAMETERS)
    chosen = request.query_params.get("format", "json")
    if chosen != "json":
        raise InvalidRequest(f"invalid format {chosen!r}; the sharing status is available as json only")
    uid = request.path_params["study_instance_uid"]
    audit.involve(uid)
    async with state(request).index.read() as connection:
        status = await sharing_status(connection, uid, time_zone_of(request), now_of(request))
    return json_response(status.to_json())
