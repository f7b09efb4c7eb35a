"""Admin API for patient authorizations: record, list by patient, show and revoke."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from dicomweb_server.admin.requests import (
    acting,
    bool_field,
    instant_field,
    json_body,
    json_response,
    now_of,
    text_field,
    text_list_field,
    time_zone_of,
)
from dicomweb_server.consent.authorizations import (
    NewAuthorization,
    get_authorization,
    list_authorizations,
    record_authorization,
    revoke_authorization,
)
from dicomweb_server.consent.fhir import to_fhir_consent
from dicomweb_server.errors import InvalidRequest
from dicomweb_server.web.context import state

AUTHORIZATION_FIELDS = (
    "patient_id",
    "issuer_of_patient_id",
    "organisations",
    "any_external",
    "study_instance_uids",
    "study_date_from",
    "study_date_to",
    "starts_at",
    "ends_at",
    "purpose",
    "reference",
)


def new_authorization(body: dict[str, Any], request: Request) -> NewAuthorization:
    """Read a new authorization from a JSON body; the record checks the values."""
    zone = time_zone_of(request)
    return NewAuthorization(
        patient_id=text_field(body, "patient_id") or "",
        issuer_of_patient_id=text_field(body, "issuer_of_patient_id", required=False) or "",
        organisations=text_list_field(body, "organisations"),
        any_external=bool_field(body, "any_external"),
        study_instance_uids=text_list_field(body, "study_instance_uids"),
        study_date_from=text_field(body, "study_date_from", required=False),
        study_date_to=text_field(body, "study_date_to", required=False),
        starts_at=instant_field(body, "starts_at", zone, end_of_day=False),
        ends_at=instant_field(body, "ends_at", zone, end_of_day=True),
        purpose=text_field(body, "purpose") or "",
        reference=text_field(body, "reference") or "",
    )


async def record_authorization_route(request: Request) -> Response:
    """Record an authorization; the response shows it with its computed end."""
    body = await json_body(request, fields=AUTHORIZATION_FIELDS)
    new = new_authorization(body, request)
    now = now_of(request)
    async with state(request).index.write() as connection:
        recorded = await record_authorization(
            connection, new, time_zone=time_zone_of(request), by=acting(request).describe(), now=now
        )
    return json_response(recorded.to_json(now), 201)


async def list_authorizations_route(request: Request) -> Response:
    patient_id = request.query_params.get("patient_id")
    if not patient_id:
        raise InvalidRequest("missing query parameter patient_id; authorizations are listed per patient")
    issuer = request.query_params.get("issuer_of_patient_id")
    now = now_of(request)
    async with state(request).index.read() as connection:
        found = await list_authorizations(connection, patient_id, issuer)
    return json_response([item.to_json(now) for item in found])


async def show_authorization_route(request: Request) -> Response:
    async with state(request).index.read() as connection:
        found = await get_authorization(connection, request.path_params["authorization_id"])
    return json_response(found.to_json(now_of(request)))


async def revoke_authorization_route(request: Request) -> Response:
    """Revoke an authorization: ``{"reason": "..."}``; it hides the studies from the next request on."""
    body = await json_body(request, fields=("reason",))
    now = now_of(request)
    async with state(request).index.write() as connection:
        revoked = await revoke_authorization(
            connection,
            request.path_params["authorization_id"],
            reason=text_field(body, "reason") or "",
            by=acting(request).describe(),
            now=now,
        )
    return json_response(revoked.to_json(now))


async def show_fhir_consent_route(request: Request) -> Response:
    """Show an authorization as a FHIR R4 Consent resource."""
    async with state(request).index.read() as connection:
        found = await get_authorization(connection, request.path_params["authorization_id"])
    return Response(orjson.dumps(to_fhir_consent(found, now_of(request))), media_type="application/fhir+json")
