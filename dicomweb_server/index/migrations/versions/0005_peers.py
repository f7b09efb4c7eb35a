"""Add the peer registry: other DICOMweb archives, their URLs and sealed outbound credentials.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

KEY = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "peer",
        sa.Column("peer_key", KEY, autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False, comment="letters, digits, '.', '_' and '-'"),
        sa.Column(
            "url",
            sa.Text(),
            nullable=False,
            comment="DICOMweb root URL of the peer, without a trailing slash",
        ),
        sa.Column(
            "authentication", sa.String(length=32), nullable=False, comment="bearer or client_credentials"
        ),
        sa.Column(
            "sealed_secret",
            sa.Text(),
            nullable=False,
            comment="the bearer token or the OAuth 2.0 client secret, encrypted",
        ),
        sa.Column(
            "token_url", sa.Text(), nullable=True, comment="OAuth 2.0 token endpoint, for client_credentials"
        ),
        sa.Column(
            "client_id", sa.Text(), nullable=True, comment="OAuth 2.0 client id, for client_credentials"
        ),
        sa.Column(
            "oauth_scopes",
            sa.Text(),
            nullable=True,
            comment="space-separated scopes requested with client_credentials",
        ),
        sa.Column(
            "ca_bundle",
            sa.Text(),
            nullable=True,
            comment="file of CA certificates that verify the peer's TLS certificate",
        ),
        sa.Column(
            "client_certificate",
            sa.Text(),
            nullable=True,
            comment="file of the TLS client certificate sent to the peer",
        ),
        sa.Column(
            "client_key",
            sa.Text(),
            nullable=True,
            comment="file of the private key of the TLS client certificate",
        ),
        sa.Column("timeout", sa.Float(), nullable=False, comment="seconds one request to the peer may take"),
        sa.Column(
            "organisation_key",
            KEY,
            nullable=True,
            comment="the external organisation the peer acts as when it queries this archive",
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["organisation_key"],
            ["organisation.organisation_key"],
            name=op.f("fk_peer_organisation_key_organisation"),
        ),
        sa.PrimaryKeyConstraint("peer_key", name=op.f("pk_peer")),
        sa.UniqueConstraint("name", name=op.f("uq_peer_name")),
    )


def downgrade() -> None:
    op.drop_table("peer")
