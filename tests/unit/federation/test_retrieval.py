"""The WADO-RS paths relayed to peers, and the streamed rewriting of the peer's root URL."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from dicomweb_server.federation.retrieval import is_retrieval_path, replace_prefix

STUDY = "studies/1.2.840.113619.2.55"
SERIES = STUDY + "/series/1.2.3.4"
INSTANCE = SERIES + "/instances/1.2.3.4.5"

RELAYED = [
    STUDY,
    STUDY + "/metadata",
    STUDY + "/rendered",
    STUDY + "/thumbnail",
    SERIES,
    SERIES + "/metadata",
    INSTANCE,
    INSTANCE + "/metadata",
    INSTANCE + "/frames/1",
    INSTANCE + "/frames/1,2,3",
    INSTANCE + "/frames/2/rendered",
    INSTANCE + "/bulkdata/7FE00010",
    INSTANCE + "/bulkdata/00431029/0/00080100",
    INSTANCE + "/bulk/7fe00010",
]

REFUSED = [
    "",
    "studies",
    "studies/",
    "series/1.2.3",
    STUDY + "/../admin",
    STUDY + "/series",
    STUDY + "/instances",
    "studies/1.2.3;drop",
    "studies/1.2.3%2F..",
    INSTANCE + "/frames/",
    INSTANCE + "/frames/a",
    INSTANCE + "/bulkdata/..",
    INSTANCE + "/bulkdata/7FE00010/../../x",
    "admin/api/peers",
]


@pytest.mark.parametrize("path", RELAYED)
def test_retrieval_path_relayed(path: str) -> None:
    assert is_retrieval_path(path)


@pytest.mark.parametrize("path", REFUSED)
def test_retrieval_path_refused(path: str) -> None:
    assert not is_retrieval_path(path)


async def chunks_of(parts: list[bytes]) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def rewritten(parts: list[bytes], old: bytes, new: bytes) -> bytes:
    return b"".join([chunk async for chunk in replace_prefix(chunks_of(parts), old, new)])


OLD = b"http://peer:8042/dicom-web/"
NEW = b"http://us/federation/dicom-web/peers/p/"
BODY = b'[{"7FE00010":{"vr":"OW","BulkDataURI":"http://peer:8042/dicom-web/studies/1/bulkdata/7FE00010"}}]'


async def test_replace_prefix_whole_body() -> None:
    assert await rewritten([BODY], OLD, NEW) == BODY.replace(OLD, NEW)


@pytest.mark.parametrize("size", [1, 2, 5, 13, 27, 64])
async def test_replace_prefix_split_chunks(size: int) -> None:
    parts = [BODY[start : start + size] for start in range(0, len(BODY), size)]

    assert await rewritten(parts, OLD, NEW) == BODY.replace(OLD, NEW)


async def test_replace_prefix_partial_match_at_end() -> None:
    assert await rewritten([b"abc http://peer:80"], OLD, NEW) == b"abc http://peer:80"
