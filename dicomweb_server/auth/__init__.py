"""Who is asking: organisations, API tokens and OAuth 2.0 / OIDC bearer tokens."""
