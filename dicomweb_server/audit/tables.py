"""Tables of the audit trail: the entries, the studies each names, and the head of the hash chain.

They share ``index.schema.metadata``. ``audit_event.content`` is the entry as canonical JSON,
which the hash covers. The other columns of ``audit_event`` and the rows of ``audit_event_study``
repeat parts of it so that searches use indexes, and ``audit verify`` checks that they still
agree with the content. Migration 0004 adds triggers that reject UPDATE
and DELETE on both tables, so entries can only be appended through SQL the archive runs.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, Index, Integer, SmallInteger, String, Table, Text

from dicomweb_server.index.schema import SurrogateKey, UtcDateTime, metadata

GENESIS_HASH = "0" * 64
"""The previous hash of the first entry."""

CHAIN_KEY = 1
"""The one row of ``audit_chain``."""

audit_event = Table(
    "audit_event",
    metadata,
    Column("sequence", SurrogateKey, primary_key=True, autoincrement=False, comment="position in the chain"),
    Column("event_id", String(36), nullable=False, unique=True, comment="public id, a UUID"),
    Column("request_id", String(36), comment="shared by the entries of one HTTP request"),
    Column("event_time", UtcDateTime, nullable=False),
    Column("event_type", String(40), nullable=False),
    Column("action", String(64), nullable=False, comment="the operation, such as RetrieveStudy"),
    Column("outcome", SmallInteger, nullable=False, comment="EventOutcomeIndicator: 0, 4, 8 or 12"),
    Column("subject", Text, nullable=False, comment="token id, OIDC subject, CLI user or the archive"),
    Column("organisation", Text),
    Column("external", Boolean, nullable=False, comment="the requester's organisation is not affiliated"),
    Column("content", Text, nullable=False, comment="the entry as canonical JSON, covered by the hash"),
    Column("previous_hash", String(64), nullable=False, comment="hash of the entry before, hex"),
    Column("hash", String(64), nullable=False, comment="SHA-256 of previous_hash, sequence and content, hex"),
)
Index(None, audit_event.c.event_time)
Index(None, audit_event.c.event_type, audit_event.c.event_time)
Index(None, audit_event.c.request_id)
Index(None, audit_event.c.subject, audit_event.c.event_time)

audit_event_study = Table(
    "audit_event_study",
    metadata,
    Column("sequence", SurrogateKey, primary_key=True, autoincrement=False),
    Column(
        "study_instance_uid",
        String(64),
        primary_key=True,
        comment="(0020,000D) UI, empty for an entry that names the patient alone",
    ),
    Column("patient_id", Text, comment="(0010,0020) LO"),
    Column("issuer_of_patient_id", Text, nullable=False, comment="(0010,0021) LO, empty when none"),
)
Index(None, audit_event_study.c.patient_id, audit_event_study.c.issuer_of_patient_id)
Index(None, audit_event_study.c.study_instance_uid)

audit_chain = Table(
    "audit_chain",
    metadata,
    Column("chain_key", Integer, primary_key=True, autoincrement=False),
    Column("sequence", BigInteger, nullable=False, comment="sequence of the last entry, 0 when none"),
    Column("hash", String(64), nullable=False, comment="hash of the last entry"),
)
