"""The peer table: other DICOMweb archives this archive searches and retrieves from.

It shares ``index.schema.metadata``, so one migration history covers the whole database. The
bearer token or OAuth 2.0 client secret of a peer is kept only sealed (see
``federation.sealing``), so a dump of the database alone does not reveal it.
"""

from __future__ import annotations

from sqlalchemy import Column, Float, ForeignKey, String, Table, Text

from dicomweb_server.index.schema import SurrogateKey, UtcDateTime, metadata

peer = Table(
    "peer",
    metadata,
    Column("peer_key", SurrogateKey, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, unique=True, comment="letters, digits, '.', '_' and '-'"),
    Column("url", Text, nullable=False, comment="DICOMweb root URL of the peer, without a trailing slash"),
    Column("authentication", String(32), nullable=False, comment="bearer or client_credentials"),
    Column(
        "sealed_secret",
        Text,
        nullable=False,
        comment="the bearer token or the OAuth 2.0 client secret, encrypted",
    ),
    Column("token_url", Text, comment="OAuth 2.0 token endpoint, for client_credentials"),
    Column("client_id", Text, comment="OAuth 2.0 client id, for client_credentials"),
    Column("oauth_scopes", Text, comment="space-separated scopes requested with client_credentials"),
    Column("ca_bundle", Text, comment="file of CA certificates that verify the peer's TLS certificate"),
    Column("client_certificate", Text, comment="file of the TLS client certificate sent to the peer"),
    Column("client_key", Text, comment="file of the private key of the TLS client certificate"),
    Column("timeout", Float, nullable=False, comment="seconds one request to the peer may take"),
    Column(
        "organisation_key",
        SurrogateKey,
        ForeignKey("organisation.organisation_key"),
        comment="the external organisation the peer acts as when it queries this archive",
    ),
    Column("created_at", UtcDateTime, nullable=False),
    Column("created_by", Text, nullable=False),
)
