"""Tables of what external requesters may see: patient authorizations, refusals, emergency access, quarantine.

They share ``index.schema.metadata``. Instants are stored in UTC (``UtcDateTime``); an
authorization is active from ``starts_at`` (inclusive) to ``ends_at`` (exclusive). An empty
``issuer_of_patient_id`` means that the patient's identifier has no issuer. It matches studies
whose (0010,0021) *Issuer of Patient ID* is absent or empty, and no others.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, ForeignKey, Index, String, Table, Text

from dicomweb_server.index.schema import SurrogateKey, UtcDateTime, metadata

patient_authorization = Table(
    "patient_authorization",
    metadata,
    Column("authorization_key", SurrogateKey, primary_key=True, autoincrement=True),
    Column("authorization_id", String(36), nullable=False, unique=True, comment="public id, a UUID"),
    Column("patient_id", Text, nullable=False, comment="(0010,0020) LO"),
    Column("issuer_of_patient_id", Text, nullable=False, comment="(0010,0021) LO, empty when none"),
    Column("coverage", String(16), nullable=False, comment="all, studies or date_range"),
    Column("study_date_from", String(8), comment="first covered StudyDate, YYYYMMDD, for date_range"),
    Column("study_date_to", String(8), comment="last covered StudyDate, YYYYMMDD, for date_range"),
    Column("any_external", Boolean, nullable=False, comment="every external organisation may receive it"),
    Column("purpose", Text, nullable=False),
    Column("reference", Text, nullable=False, comment="where the signed authorization is kept"),
    Column("recorded_by", Text, nullable=False),
    Column("recorded_at", UtcDateTime, nullable=False),
    Column("starts_at", UtcDateTime, nullable=False),
    Column("ends_at", UtcDateTime, nullable=False, comment="exclusive"),
    Column(
        "time_zone",
        Text,
        nullable=False,
        comment="IANA zone in which dates of this authorization and its studies are local days",
    ),
    Column("end_chosen_by_patient", Boolean, nullable=False),
    Column(
        "meets_twelve_months",
        Boolean,
        nullable=False,
        comment="ends_at reaches twelve months after every covered study and after starts_at",
    ),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("revoked_at", UtcDateTime),
    Column("revoked_by", Text),
    Column("revocation_reason", Text),
)
Index(None, patient_authorization.c.patient_id, patient_authorization.c.issuer_of_patient_id)

authorization_study = Table(
    "authorization_study",
    metadata,
    Column(
        "authorization_key",
        SurrogateKey,
        ForeignKey("patient_authorization.authorization_key", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("study_instance_uid", String(64), primary_key=True, comment="(0020,000D) UI"),
)

authorization_recipient = Table(
    "authorization_recipient",
    metadata,
    Column(
        "authorization_key",
        SurrogateKey,
        ForeignKey("patient_authorization.authorization_key", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column(
        "organisation_key",
        SurrogateKey,
        ForeignKey("organisation.organisation_key"),
        primary_key=True,
    ),
)
Index(None, authorization_recipient.c.organisation_key)

emergency_access = Table(
    "emergency_access",
    metadata,
    Column("access_key", SurrogateKey, primary_key=True, autoincrement=True),
    Column("access_id", String(36), nullable=False, unique=True, comment="public id, a UUID"),
    Column(
        "organisation_key",
        SurrogateKey,
        ForeignKey("organisation.organisation_key"),
        nullable=False,
    ),
    Column("subject", Text, nullable=False, comment="the user or token that opened it"),
    Column("patient_id", Text, nullable=False, comment="(0010,0020) LO"),
    Column("issuer_of_patient_id", Text, nullable=False, comment="(0010,0021) LO, empty when none"),
    Column("reason", Text, nullable=False),
    Column("opened_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("closed_at", UtcDateTime),
    Column("closed_by", Text),
)
Index(None, emergency_access.c.organisation_key, emergency_access.c.subject)
Index(None, emergency_access.c.patient_id, emergency_access.c.issuer_of_patient_id)

emergency_access_use = Table(
    "emergency_access_use",
    metadata,
    Column("use_key", SurrogateKey, primary_key=True, autoincrement=True),
    Column(
        "access_key",
        SurrogateKey,
        ForeignKey("emergency_access.access_key", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("used_at", UtcDateTime, nullable=False),
    Column("method", String(16), nullable=False),
    Column("path", Text, nullable=False, comment="request path, kept for the audit, never logged"),
)
Index(None, emergency_access_use.c.access_key)

quarantine_instance = Table(
    "quarantine_instance",
    metadata,
    Column("quarantine_key", SurrogateKey, primary_key=True, autoincrement=True),
    Column("quarantine_id", String(36), nullable=False, unique=True, comment="public id, a UUID"),
    Column(
        "organisation_key",
        SurrogateKey,
        ForeignKey("organisation.organisation_key"),
        nullable=False,
    ),
    Column("submitted_by", Text, nullable=False),
    Column("received_at", UtcDateTime, nullable=False),
    Column("sop_instance_uid", String(64), nullable=False, comment="(0008,0018) UI"),
    Column("sop_class_uid", String(64), nullable=False, comment="(0008,0016) UI"),
    Column("study_instance_uid", String(64), nullable=False, comment="(0020,000D) UI"),
    Column("series_instance_uid", String(64), nullable=False, comment="(0020,000E) UI"),
    Column("patient_id", Text, comment="(0010,0020) LO"),
    Column("issuer_of_patient_id", Text, comment="(0010,0021) LO"),
    Column("patient_name", Text, comment="(0010,0010) PN, as received"),
    Column("study_date", String(8), comment="(0008,0020) DA, YYYYMMDD"),
    Column("modality", Text, comment="(0008,0060) CS"),
    Column("transfer_syntax_uid", String(64), nullable=False, comment="(0002,0010) UI of the stored object"),
    Column("object_key", Text, nullable=False, comment="key of the Part 10 file in the object store"),
    Column("object_size", BigInteger, nullable=False),
    Column("content_digest", String(64), nullable=False, comment="SHA-256 of the stored object, hex"),
    Column("status", String(16), nullable=False, comment="held, accepted or rejected"),
    Column("decided_at", UtcDateTime),
    Column("decided_by", Text),
    Column("decision_note", Text),
)
Index(None, quarantine_instance.c.status, quarantine_instance.c.received_at)
Index(None, quarantine_instance.c.object_key)

patient_refusal = Table(
    "patient_refusal",
    metadata,
    Column("refusal_key", SurrogateKey, primary_key=True, autoincrement=True),
    Column("refusal_id", String(36), nullable=False, unique=True, comment="public id, a UUID"),
    Column("patient_id", Text, nullable=False, comment="(0010,0020) LO"),
    Column("issuer_of_patient_id", Text, nullable=False, comment="(0010,0021) LO, empty when none"),
    Column("declined_at", UtcDateTime, nullable=False, comment="when the patient declined"),
    Column("reference", Text, nullable=False, comment="where the signed refusal or the note of it is kept"),
    Column("note", Text),
    Column("recorded_by", Text, nullable=False),
    Column("recorded_at", UtcDateTime, nullable=False),
)
Index(None, patient_refusal.c.patient_id, patient_refusal.c.issuer_of_patient_id)
