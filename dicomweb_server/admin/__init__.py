"""The JSON admin API under /admin/api/.

It manages organisations, tokens, authorizations, quarantined instances and emergency access.
"""
