"""Raw HTTP helpers for the STOW-RS, QIDO-RS and WADO-RS tests: multipart bodies, parsing, the store.

The tests speak HTTP themselves where dicomweb-client would hide what they check: boundaries,
preambles, chunked bodies, part headers and exact status codes.
"""

from __future__ import annotations

import io
import re
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from pathlib import Path
from typing import Any

import httpx
import obstore
import pydicom
from obstore.store import S3Store
from pydicom.dataset import Dataset

from tests.services import Backend, ServerProcess
from tests.testdata import entries, path_of, to_bytes

DICOM_JSON = "application/dicom+json"
OBJECT_PREFIX = "instances/"
TIMEOUT = 120.0


def multipart_body(
    parts: Iterable[bytes | Dataset],
    boundary: str,
    *,
    part_type: str = "application/dicom",
    preamble: bytes = b"",
    close: bool = True,
) -> bytes:
    """Build a multipart/related body; datasets are written as Part 10 files."""
    body = bytearray(preamble)
    for part in parts:
        data = to_bytes(part) if isinstance(part, Dataset) else part
        body += f"--{boundary}\r\nContent-Type: {part_type}\r\n\r\n".encode() + data + b"\r\n"
    if close:
        body += f"--{boundary}--\r\n".encode()
    return bytes(body)


def stow_content_type(boundary: str, *, quoted: bool = True) -> str:
    """Build a STOW-RS Content-Type, with the type and boundary parameters quoted or bare."""
    if quoted:
        return f'multipart/related; type="application/dicom"; boundary="{boundary}"'
    return f"multipart/related; type=application/dicom; boundary={boundary}"


def new_boundary() -> str:
    return f"test-{uuid.uuid4().hex}"


def store(
    server: ServerProcess,
    parts: Iterable[bytes | Dataset],
    *,
    study_instance_uid: str | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """POST the parts as one STOW-RS request, to /studies or to /studies/{study_instance_uid}."""
    boundary = new_boundary()
    url = f"{server.dicomweb}/studies"
    if study_instance_uid is not None:
        url += f"/{study_instance_uid}"
    request_headers = {
        **server.headers,
        "Content-Type": stow_content_type(boundary),
        "Accept": DICOM_JSON,
        **(headers or {}),
    }
    return httpx.post(url, content=multipart_body(parts, boundary), headers=request_headers, timeout=TIMEOUT)


def get(server: ServerProcess, path: str, **kwargs: Any) -> httpx.Response:
    """GET a path under the DICOMweb root with the server's credentials merged into the headers."""
    headers = {**server.headers, **kwargs.pop("headers", {})}
    return httpx.get(f"{server.dicomweb}{path}", headers=headers, timeout=TIMEOUT, **kwargs)


@dataclass
class BodyPart:
    headers: dict[str, str]
    content: bytes

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")


def boundary_of(content_type: str) -> str:
    for parameter in content_type.split(";")[1:]:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "boundary":
            return value.strip().strip('"')
    raise AssertionError(f"no boundary in {content_type!r}")


def parse_multipart(response: httpx.Response) -> list[BodyPart]:
    """Split a multipart/related response into its parts, headers in lower case."""
    content_type = response.headers["content-type"]
    assert content_type.startswith("multipart/related"), content_type
    delimiter = b"--" + boundary_of(content_type).encode()
    body = response.content
    assert body.startswith(delimiter), body[:80]
    parts = []
    for chunk in body.split(b"\r\n" + delimiter)[:-1]:
        chunk = chunk.removeprefix(delimiter).removeprefix(b"\r\n")
        head, _, content = chunk.partition(b"\r\n\r\n")
        message = BytesHeaderParser().parsebytes(head + b"\r\n\r\n")
        parts.append(BodyPart({name.lower(): value for name, value in message.items()}, content))
    assert body.split(b"\r\n" + delimiter)[-1].startswith(b"--"), "no closing boundary"
    return parts


def sequence_items(body: dict[str, Any], tag: str) -> list[dict[str, Any]]:
    return list(body.get(tag, {}).get("Value", []))


def first(element: dict[str, Any] | None) -> Any:
    assert element is not None
    return element["Value"][0]


def object_keys(server: ServerProcess, backend: Backend) -> set[str]:
    """List the instance objects in the server's store: its objects folder or its S3 prefix."""
    store_url = backend.environment.get("DICOMWEB_STORE_URL")
    if not store_url:
        root = server.data_dir / "objects"
        return {path.relative_to(root).as_posix() for path in root.rglob("*.dcm") if path.is_file()}

    bucket, _, prefix = store_url.removeprefix("s3://").partition("/")
    s3 = S3Store(
        bucket,
        prefix=prefix or None,
        config={
            "endpoint": backend.environment["DICOMWEB_S3_ENDPOINT"],
            "region": backend.environment["DICOMWEB_S3_REGION"],
            "access_key_id": backend.environment["DICOMWEB_S3_ACCESS_KEY_ID"],
            "secret_access_key": backend.environment["DICOMWEB_S3_SECRET_ACCESS_KEY"],
        },
        client_options={"allow_http": True},
        virtual_hosted_style_request=False,
    )
    return {meta["path"] for batch in obstore.list(s3, prefix=OBJECT_PREFIX) for meta in batch}


def spool_files(server: ServerProcess) -> list[Path]:
    """List the files in the server's spool folder, leaving out the lock files of live processes."""
    spool = server.data_dir / "tmp"
    if not spool.exists():
        return []
    return sorted(path for path in spool.rglob("*") if path.is_file() and path.suffix != ".lock")


def chunks(data: bytes, size: int) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def new_uid_like(old: str) -> str:
    """Make a fresh UID of the same length as ``old``, so it can replace ``old`` byte for byte."""
    digits = uuid.uuid4().int
    body = str(digits) * 3
    uid = "2.25." + body[: max(len(old) - 5, 1)]
    assert len(uid) == len(old), (old, uid)
    return uid


def restamp(raw: bytes, mapping: dict[str, str], old_uids: Iterable[str]) -> bytes:
    """Replace each whole UID value in the bytes of a file by a fresh one of the same length.

    The file keeps every other byte, so its transfer syntax and encoding stay as they were. The
    files of one study share ``mapping``, so references between them still hold.
    Deflated and big endian files are rewritten by pydicom instead (see :func:`fresh_copy`).
    """
    for old in sorted(set(old_uids), key=len, reverse=True):
        new = mapping.setdefault(old, new_uid_like(old))
        pattern = rb"(?<![0-9.])" + re.escape(old.encode()) + rb"(?![0-9.])"
        raw = re.sub(pattern, new.encode(), raw)
    return raw


REWRITTEN_SYNTAXES = {"1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.2"}
"""Syntaxes whose files pydicom rewrites instead of :func:`restamp`.

Deflated files hide their UIDs in the compressed stream. In big endian files the length before a
UID value can be a digit or a dot, so a UID cannot be found by the bytes around it."""
IDENTITY_UIDS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")


@dataclass
class StoredFile:
    """A shared test file given fresh UIDs and stored: the bytes sent and pydicom's reading of them."""

    path: str
    entry: dict[str, Any]
    sent: bytes
    dataset: Dataset

    @property
    def study_instance_uid(self) -> str:
        return str(self.dataset.StudyInstanceUID)

    @property
    def series_instance_uid(self) -> str:
        return str(self.dataset.SeriesInstanceUID)

    @property
    def sop_instance_uid(self) -> str:
        return str(self.dataset.SOPInstanceUID)

    @property
    def instance_path(self) -> str:
        return (
            f"/studies/{self.study_instance_uid}/series/{self.series_instance_uid}"
            f"/instances/{self.sop_instance_uid}"
        )

    @property
    def transfer_syntax_uid(self) -> str:
        return str(self.entry["transfer_syntax_uid"])


def fresh_copy(entry: dict[str, Any], mapping: dict[str, str]) -> bytes:
    """Return the bytes of a shared test file with fresh Study, Series and SOP Instance UIDs."""
    raw = path_of(entry).read_bytes()
    original = pydicom.dcmread(io.BytesIO(raw), force=True)
    old = [str(original[keyword].value) for keyword in IDENTITY_UIDS]
    if entry["transfer_syntax_uid"] not in REWRITTEN_SYNTAXES:
        return restamp(raw, mapping, old)

    for keyword, value in zip(IDENTITY_UIDS, old, strict=True):
        setattr(original, keyword, mapping.setdefault(value, new_uid_like(value)))
    original.file_meta.MediaStorageSOPInstanceUID = original.SOPInstanceUID
    buffer = io.BytesIO()
    original.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def store_testdata(server: ServerProcess, selected: Iterable[dict[str, Any]]) -> dict[str, StoredFile]:
    """Store fresh copies of shared test files, one request each; files of one folder share a study.

    Returns the stored files by their manifest path.
    """
    mappings: dict[str, dict[str, str]] = {}
    stored = {}
    for entry in selected:
        study_folder = "/".join(entry["path"].split("/")[:3])
        mapping = mappings.setdefault(study_folder, {}) if entry["path"].startswith("dicom/series/") else {}
        sent = fresh_copy(entry, mapping)
        response = store(server, [sent])
        assert response.status_code in (200, 202), (entry["path"], response.text)
        assert "00081198" not in response.json(), (entry["path"], response.text)
        stored[entry["path"]] = StoredFile(
            entry["path"], entry, sent, pydicom.dcmread(io.BytesIO(sent), force=True)
        )
    return stored


def storable_entries() -> list[dict[str, Any]]:
    """Non-broken shared test files with File Meta Information and the three identity UIDs."""
    selected = []
    for entry in entries():
        if not entry["file_meta"] or not entry["path"].endswith(".dcm"):
            continue
        dataset = pydicom.dcmread(path_of(entry), stop_before_pixels=True)
        if all(str(dataset.get(keyword, "")).strip() for keyword in (*IDENTITY_UIDS, "SOPClassUID")):
            selected.append(entry)
    return selected
