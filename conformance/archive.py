"""The archive under test, reached over HTTP only, and readers for its responses."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from conformance import media
from conformance.multipart import MultipartError, Part, build_multipart, new_boundary, parse_multipart
from conformance.registry import CheckFailed

QueryParameters = Sequence[tuple[str, str]]

DICOM_MULTIPART = f'{media.MULTIPART_RELATED}; type="{media.DICOM}"'
STORED_SYNTAX = f"{DICOM_MULTIPART}; transfer-syntax=*"

_RFC_WARNING = re.compile(r'(\d{3})\s+(\S+)\s+"((?:[^"\\]|\\.)*)"')
_LOOSE_WARNING = re.compile(r"^\s*(\d{3})\s+(.*)$")


class Archive:
    """A DICOMweb base URL ("https://pacs.example.org/dicom-web") and an HTTP client for it.

    ``headers`` go with every request, for credentials such as "Authorization: Bearer ...".
    Redirects are not followed, so every response is checked as the archive sent it.
    """

    def __init__(self, base_url: str, headers: Mapping[str, str], timeout: float) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = httpx.Client(headers=dict(headers), timeout=timeout)

    def url(self, path: str) -> str:
        return self.base_url + path

    def close(self) -> None:
        self.http.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        accept: str | None = None,
        params: QueryParameters | None = None,
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
    ) -> httpx.Response:
        """Send one request to ``path`` under the base URL, or to ``path`` itself when it is absolute."""
        url = path if path.startswith(("http://", "https://")) else self.url(path)
        all_headers = dict(headers or {})
        if accept is not None:
            all_headers["Accept"] = accept
        # An empty params list would replace a query string written into the path.
        query = list(params) if params else None
        return self.http.request(method, url, params=query, headers=all_headers, content=content)

    def get_without_accept(self, path: str) -> httpx.Response:
        """Send a GET with no Accept header at all (httpx adds "Accept: */*" unless removed)."""
        request = self.http.build_request("GET", self.url(path))
        del request.headers["accept"]
        return self.http.send(request)

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", path, **kwargs)

    def search(self, path: str, params: QueryParameters = ()) -> httpx.Response:
        return self.get(path, accept=media.DICOM_JSON, params=params)

    def store(
        self,
        instances: Sequence[bytes],
        study_instance_uid: str | None = None,
        *,
        boundary: str | None = None,
        content_type: str | None = None,
    ) -> httpx.Response:
        """Store instances with one STOW-RS request, one application/dicom part each.

        ``content_type`` replaces the request's Content-Type; it must name ``boundary``.
        """
        boundary = boundary or new_boundary()
        body = build_multipart([(media.DICOM, data) for data in instances], boundary)
        path = f"/studies/{study_instance_uid}" if study_instance_uid else "/studies"
        return self.request(
            "POST",
            path,
            accept=media.DICOM_JSON,
            headers={"Content-Type": content_type or f'{DICOM_MULTIPART}; boundary="{boundary}"'},
            content=body,
        )


def describe(response: httpx.Response) -> str:
    """Summarize a response for a failure message: status, media type and the start of the body."""
    content_type = response.headers.get("content-type", "no Content-Type")
    summary = f"{response.status_code} ({content_type})"
    if response.content and not content_type.startswith(("multipart/", media.DICOM + ";")):
        text = response.content[:200].decode("utf-8", "replace").replace("\n", " ")
        summary += f" {text}"
    return summary


def media_type_of(response: httpx.Response) -> str:
    return media.parse_media_type(response.headers.get("content-type")).type


def json_body(response: httpx.Response) -> Any:
    """Return the JSON body, or raise CheckFailed saying what came back instead."""
    try:
        return response.json()
    except ValueError as error:
        raise CheckFailed(f"expected a JSON body; got {describe(response)} ({error})") from error


def datasets(response: httpx.Response) -> list[dict[str, Any]]:
    """Return a DICOM JSON array of data sets (PS3.18 Annex F); an empty body counts as []."""
    if response.status_code == 200 and not response.content.strip():
        return []
    body = json_body(response)
    if not isinstance(body, list) or not all(isinstance(item, dict) for item in body):
        raise CheckFailed(f"expected a DICOM JSON array of data sets; got {describe(response)}")
    return body


def parts(response: httpx.Response) -> list[Part]:
    """Return the parts of a multipart/related response, or raise CheckFailed."""
    if media_type_of(response) != media.MULTIPART_RELATED:
        raise CheckFailed(f"expected a multipart/related body; got {describe(response)}")
    try:
        return parse_multipart(response.headers.get("content-type"), response.content)
    except MultipartError as error:
        raise CheckFailed(f"the multipart/related body cannot be read: {error}") from error


def warnings(response: httpx.Response) -> list[tuple[int, str]]:
    """Return the (code, text) pairs of every Warning header value.

    RFC 7234 writes a value as ``299 agent "text"``; PS3.18 shows ``299 <service>: text``
    without quotes, and archives send both, so both are read.
    """
    found = []
    for value in response.headers.get_list("warning"):
        matches = _RFC_WARNING.findall(value)
        if matches:
            found += [(int(code), text) for code, _agent, text in matches]
            continue
        loose = _LOOSE_WARNING.match(value)
        if loose:
            found.append((int(loose.group(1)), loose.group(2)))
    return found
