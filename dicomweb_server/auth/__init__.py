"""Identity of requesters: organisations, API tokens and OAuth 2.0 / OIDC bearer tokens."""
