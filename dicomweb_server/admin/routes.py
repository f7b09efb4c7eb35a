"""The admin API paths, all under /admin/api (the authentication middleware requires their scopes)."""

from __future__ import annotations

from starlette.routing import BaseRoute, Mount, Route

from dicomweb_server.admin import (
    audit,
    authorizations,
    emergency,
    organisations,
    peers,
    quarantine,
    refusals,
    reports,
    tokens,
)

ADMIN_PREFIX = "/admin/api"

ADMIN_ROUTES: list[BaseRoute] = [
    Route("/organisations", organisations.list_organisations_route, methods=["GET"]),
    Route("/organisations", organisations.add_organisation_route, methods=["POST"]),
    Route("/organisations/{name:path}", organisations.show_organisation_route, methods=["GET"]),
    Route("/organisations/{name:path}", organisations.delete_organisation_route, methods=["DELETE"]),
    Route("/tokens", tokens.list_tokens_route, methods=["GET"]),
    Route("/tokens", tokens.create_token_route, methods=["POST"]),
    Route("/tokens/{token_id}", tokens.revoke_token_route, methods=["DELETE"]),
    Route("/authorizations", authorizations.list_authorizations_route, methods=["GET"]),
    Route("/authorizations", authorizations.record_authorization_route, methods=["POST"]),
    Route("/authorizations/{authorization_id}", authorizations.show_authorization_route, methods=["GET"]),
    Route("/authorizations/{authorization_id}/fhir", authorizations.show_fhir_consent_route, methods=["GET"]),
    Route(
        "/authorizations/{authorization_id}/revoke",
        authorizations.revoke_authorization_route,
        methods=["POST"],
    ),
    Route("/quarantine", quarantine.list_quarantine_route, methods=["GET"]),
    Route("/quarantine/{quarantine_id}", quarantine.show_quarantined_route, methods=["GET"]),
    Route("/quarantine/{quarantine_id}/accept", quarantine.accept_quarantined_route, methods=["POST"]),
    Route("/quarantine/{quarantine_id}/reject", quarantine.reject_quarantined_route, methods=["POST"]),
    Route("/emergency-access", emergency.list_emergency_access_route, methods=["GET"]),
    Route("/emergency-access", emergency.open_emergency_access_route, methods=["POST"]),
    Route("/emergency-access/{access_id}", emergency.close_emergency_access_route, methods=["DELETE"]),
    Route("/refusals", refusals.list_refusals_route, methods=["GET"]),
    Route("/refusals", refusals.record_refusal_route, methods=["POST"]),
    Route("/refusals/{refusal_id}", refusals.show_refusal_route, methods=["GET"]),
    Route("/audit/entries", audit.list_entries_route, methods=["GET"]),
    Route("/audit/entries/{event_id}", audit.show_entry_route, methods=["GET"]),
    Route("/audit/entries/{event_id}/dicom", audit.show_dicom_entry_route, methods=["GET"]),
    Route("/audit/entries/{event_id}/fhir", audit.show_fhir_entry_route, methods=["GET"]),
    Route("/audit/export", audit.export_entries_route, methods=["GET"]),
    Route("/audit/verify", audit.verify_route, methods=["GET"]),
    Route("/reports/disclosures", reports.disclosures_route, methods=["GET"]),
    Route("/reports/availability", reports.availability_route, methods=["GET"]),
    Route("/studies/{study_instance_uid}/sharing", reports.sharing_route, methods=["GET"]),
    Route("/peers", peers.list_peers_route, methods=["GET"]),
    Route("/peers", peers.add_peer_route, methods=["POST"]),
    Route("/peers/{name}", peers.show_peer_route, methods=["GET"]),
    Route("/peers/{name}", peers.remove_peer_route, methods=["DELETE"]),
    Route("/peers/{name}/test", peers.test_peer_route, methods=["POST"]),
]


def admin_mount() -> Mount:
    return Mount(ADMIN_PREFIX, routes=ADMIN_ROUTES)
