"""Small helpers for response headers shared by the transactions."""

from __future__ import annotations

WARN_AGENT = "dicomweb-server"


def warning_header(texts: list[str]) -> str:
    """Build a Warning header (RFC 7234 5.5) with code 299, one value per text.

    PS3.18 uses code 299 for every warning it defines, such as truncated search results.
    """
    values = []
    for text in texts:
        escaped = text.replace("\\", "\\\\").replace('"', '\\"')
        values.append(f'299 {WARN_AGENT} "{escaped}"')
    return ", ".join(values)
