"""An authorization as a FHIR R4 Consent resource (http://hl7.org/fhir/R4/consent.html), for export.

A revoked or ended authorization is ``inactive``, any other is ``active``. The patient is an
identifier whose assigner is the IssuerOfPatientID, and the signed form is ``sourceReference``.
The one ``permit`` provision carries the period, the purpose, and the recipients as actors in
the role IRCP (no actor means any external organisation). A StudyDate range becomes
``dataPeriod``, and listed studies become ``data`` items naming their StudyInstanceUIDs.
"""

from __future__ import annotations

import datetime
from typing import Any

from dicomweb_server.consent import periods
from dicomweb_server.consent.authorizations import Authorization

CONSENT_SCOPE = "http://terminology.hl7.org/CodeSystem/consentscope"
CONSENT_CATEGORY = "http://loinc.org"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
PARTICIPATION_TYPE = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
DICOM_UID = "urn:dicom:uid"


def _date(study_date: str) -> str:
    return f"{study_date[:4]}-{study_date[4:6]}-{study_date[6:]}"


def to_fhir_consent(authorization: Authorization, now: datetime.datetime) -> dict[str, Any]:
    """Return the authorization as a FHIR R4 Consent resource (JSON)."""
    provision: dict[str, Any] = {
        "type": "permit",
        "period": {
            "start": periods.format_utc(authorization.starts_at),
            "end": periods.format_utc(authorization.ends_at),
        },
        "purpose": [{"display": authorization.purpose}],
    }
    if authorization.organisations:
        provision["actor"] = [
            {
                "role": {"coding": [{"system": PARTICIPATION_TYPE, "code": "IRCP"}]},
                "reference": {"display": name},
            }
            for name in authorization.organisations
        ]
    if authorization.coverage == "date_range":
        assert authorization.study_date_from is not None
        assert authorization.study_date_to is not None
        provision["dataPeriod"] = {
            "start": _date(authorization.study_date_from),
            "end": _date(authorization.study_date_to),
        }
    elif authorization.coverage == "studies":
        provision["data"] = [
            {
                "meaning": "instance",
                "reference": {"identifier": {"system": DICOM_UID, "value": f"urn:oid:{uid}"}},
            }
            for uid in authorization.study_instance_uids
        ]

    patient: dict[str, Any] = {"value": authorization.patient_id}
    if authorization.issuer_of_patient_id:
        patient["assigner"] = {"display": authorization.issuer_of_patient_id}
    return {
        "resourceType": "Consent",
        "id": authorization.authorization_id,
        "status": "active" if authorization.state(now) in ("active", "not started") else "inactive",
        "scope": {"coding": [{"system": CONSENT_SCOPE, "code": "patient-privacy"}]},
        "category": [
            {"coding": [{"system": CONSENT_CATEGORY, "code": "59284-0", "display": "Patient Consent"}]}
        ],
        "patient": {"identifier": patient},
        "dateTime": periods.format_utc(authorization.recorded_at),
        "sourceReference": {"display": authorization.reference},
        "policyRule": {"coding": [{"system": ACT_CODE, "code": "OPTIN"}]},
        "provision": provision,
    }
