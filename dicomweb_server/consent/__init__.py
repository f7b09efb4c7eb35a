"""Consent: patient authorizations and the one visibility policy applied on every read."""
