"""The one door every read goes through: which studies a requester may see.

:func:`visible_studies` returns a predicate on the ``study`` table. QIDO AND-s it into its
search statement and WADO into its look-up. The decision is therefore taken from committed
state inside the same SQL statement that finds the data, and no query finds a study the
requester may not see. Nothing is cached between requests: a revocation recorded on one replica
hides the study from the next statement on every replica.

An external organisation sees a study when, at ``now``:

- the organisation is not deleted, and
- an authorization names the study's patient (PatientID and IssuerOfPatientID, exactly), is not
  revoked, has started (``starts_at <= now``) and has not ended (``now < ends_at``), names the
  organisation or any external organisation, and covers the study (all the patient's studies,
  the study's StudyInstanceUID among those listed, or its StudyDate within the date range),
- or the requester holds the emergency scope and has opened emergency access to the patient
  that is not closed and has not expired.

Studies held in quarantine are not in the ``study`` table, so no predicate can show them.
"""

from __future__ import annotations

import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, exists, false, func, or_, select, true

from dicomweb_server.auth.identity import Requester, Scope
from dicomweb_server.auth.tables import organisation
from dicomweb_server.consent.tables import (
    authorization_recipient,
    authorization_study,
    emergency_access,
    patient_authorization,
)
from dicomweb_server.index.schema import study


def visible_studies(requester: Requester, now: datetime.datetime) -> ColumnElement[bool]:
    """Return the SQL predicate, on ``index.schema.study``, of the studies ``requester`` may see at ``now``.

    Affiliated requesters see every study. ``now`` must be timezone-aware; it is compared with
    the stored UTC instants without leeway.

    NOTE: ``now`` is the clock of the replica that received the request, not the database's, so
    replicas must keep their clocks synchronised (NTP) for boundaries to agree between them.
    """
    if requester.affiliated:
        return true()
    if requester.organisation_key is None:
        return false()

    granted = [authorized_studies(requester.organisation_key, now)]
    if requester.has_scope(Scope.EMERGENCY):
        granted.append(emergency_studies(requester, now))
    active = (
        exists()
        .where(
            organisation.c.organisation_key == requester.organisation_key, organisation.c.deleted_at.is_(None)
        )
        .correlate_except(organisation)
    )
    return and_(active, or_(*granted))


# Every subquery names the one table it reads (correlate_except): the others, such as ``study``,
# are those of the statement the predicate goes into, however deeply it is nested. Without it a
# nested EXISTS would read ``study`` on its own and match any study, not the one being decided.


def _issuer_matches(issuer_column: ColumnElement[str]) -> ColumnElement[bool]:
    # Authorizations keep an absent issuer as "", the index keeps it as NULL or "".
    return issuer_column == func.coalesce(study.c.issuer_of_patient_id, "")


def covers_study() -> ColumnElement[bool]:
    """Return the predicate, on ``patient_authorization`` and ``study``, that an authorization covers a study.

    It compares the patient exactly and the coverage (all studies, listed StudyInstanceUIDs or a
    StudyDate range), and nothing about time, recipients or revocation.
    """
    authorization = patient_authorization.c
    return and_(
        authorization.patient_id == study.c.patient_id,
        _issuer_matches(authorization.issuer_of_patient_id),
        or_(
            authorization.coverage == "all",
            and_(
                authorization.coverage == "studies",
                exists()
                .where(
                    authorization_study.c.authorization_key == authorization.authorization_key,
                    authorization_study.c.study_instance_uid == study.c.study_instance_uid,
                )
                .correlate_except(authorization_study),
            ),
            and_(
                authorization.coverage == "date_range",
                study.c.study_date >= authorization.study_date_from,
                study.c.study_date <= authorization.study_date_to,
            ),
        ),
    )


def _names_recipient(organisation_key: int) -> ColumnElement[bool]:
    """Return the predicate, on ``patient_authorization``, that an authorization names an organisation."""
    authorization = patient_authorization.c
    return or_(
        authorization.any_external,
        exists()
        .where(
            authorization_recipient.c.authorization_key == authorization.authorization_key,
            authorization_recipient.c.organisation_key == organisation_key,
        )
        .correlate_except(authorization_recipient),
    )


def authorized_studies(organisation_key: int, now: datetime.datetime) -> ColumnElement[bool]:
    """Return the predicate of the studies an active authorization covers for one external organisation."""
    authorization = patient_authorization.c
    return (
        exists()
        .where(
            covers_study(),
            authorization.revoked_at.is_(None),
            authorization.starts_at <= now,
            authorization.ends_at > now,
            _names_recipient(organisation_key),
        )
        .correlate_except(patient_authorization)
    )


def authorizations_in_force(organisation_key: int, at: datetime.datetime) -> Select[Any]:
    """Select (StudyInstanceUID, authorization id, purpose) of what let an organisation see studies at ``at``.

    The audit trail names these authorizations on each disclosure. An authorization revoked after
    ``at`` was still in force at ``at``, so this also answers for a moment that has passed. The
    caller adds the condition on ``study`` that picks the studies.
    """
    authorization = patient_authorization.c
    return (
        select(study.c.study_instance_uid, authorization.authorization_id, authorization.purpose)
        .select_from(patient_authorization.join(study, covers_study()))
        .where(
            or_(authorization.revoked_at.is_(None), authorization.revoked_at > at),
            authorization.starts_at <= at,
            authorization.ends_at > at,
            _names_recipient(organisation_key),
        )
    )


def emergency_studies(requester: Requester, now: datetime.datetime) -> ColumnElement[bool]:
    """Return the predicate of the studies of patients the requester opened emergency access to."""
    access = emergency_access.c
    return (
        exists()
        .where(
            access.organisation_key == requester.organisation_key,
            access.subject == requester.subject,
            access.patient_id == study.c.patient_id,
            _issuer_matches(access.issuer_of_patient_id),
            access.closed_at.is_(None),
            access.opened_at <= now,
            access.expires_at > now,
        )
        .correlate_except(emergency_access)
    )
