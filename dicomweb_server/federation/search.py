"""The federated search: one QIDO-RS search sent to every peer at once, labelled by source and merged.

Every result carries where it came from in a private block of group 0011, with the private
creator ``DICOMWEB-SERVER FEDERATION``. Element xx01 (LO) is the source: the peer's name, or
``local`` for this archive. Element xx02 (UR) is the result's RetrieveURL at its source. RetrieveURL
(0008,1190) itself points where the requester can retrieve the entity through this archive:
``/dicom-web/...`` for local results, ``/federation/dicom-web/peers/NAME/...`` for a peer's.

Results are never merged across sources: the same study held by two archives, or the same
person under two PatientIDs, appears once per source, each with its own PatientID and
IssuerOfPatientID.

Paging: each source is asked for its first ``offset + limit`` results. Their union is sorted in
the merge order of the level (see :func:`merge`), and ``offset`` and ``limit`` are applied to
the sorted union. A source that contains more than it was asked for is reported as having more
results.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from dicomweb_server.dicom.attributes import QueryLevel
from dicomweb_server.federation.client import PeerSearch, search_peer
from dicomweb_server.federation.credentials import PeerAccess
from dicomweb_server.federation.errors import PeerError

PRIVATE_GROUP = 0x0011
PRIVATE_CREATOR = "DICOMWEB-SERVER FEDERATION"
SOURCE_ELEMENT = 0x01
SOURCE_RETRIEVE_URL_ELEMENT = 0x02

RETRIEVE_URL = "00081190"
STUDY_INSTANCE_UID = "0020000D"
SERIES_INSTANCE_UID = "0020000E"
SOP_INSTANCE_UID = "00080018"


@dataclass
class SourceResults:
    """The results of one source: its data sets, whether it may contain more, or why it failed."""

    source: str
    datasets: list[dict[str, Any]] = field(default_factory=list)
    more: bool = False
    failure: PeerError | None = None
    elapsed: float = 0.0


async def search_peers(
    accesses: Sequence[PeerAccess], search: PeerSearch, window: int
) -> list[SourceResults]:
    """Send ``search`` to every peer at once, requesting at most ``window`` results of each.

    A peer that fails or times out yields a ``SourceResults`` with its failure, because
    ``search_peer`` raises only ``PeerError``, which ``_search_one`` catches.
    """
    parameters = tuple(
        (name, value) for name, value in search.parameters if name not in ("limit", "offset")
    ) + (("limit", str(window)),)
    bounded = PeerSearch(search.level, search.study_instance_uid, search.series_instance_uid, parameters)
    return list(await asyncio.gather(*(_search_one(access, bounded, window) for access in accesses)))


async def _search_one(access: PeerAccess, search: PeerSearch, window: int) -> SourceResults:
    started = time.perf_counter()
    try:
        datasets = await search_peer(access, search)
    except PeerError as error:
        return SourceResults(access.peer.name, failure=error, elapsed=time.perf_counter() - started)
    # A peer that ignores limit may send more than asked; the rest counts as "more results".
    return SourceResults(
        access.peer.name,
        datasets[:window],
        more=len(datasets) >= window,
        elapsed=time.perf_counter() - started,
    )


def label(
    datasets: list[dict[str, Any]],
    source: str,
    level: QueryLevel,
    retrieve_url: Callable[[str, str | None, str | None], str],
    path_uids: tuple[str | None, str | None] = (None, None),
) -> None:
    """Mark each data set with its source and point its RetrieveURL at this archive, in place.

    ``retrieve_url(study, series, instance)`` builds the URL through this archive; the UIDs
    missing from a nested search's results are taken from ``path_uids`` (study, series).
    """
    for dataset in datasets:
        _mark_source(dataset, source)
        url = _url_through_archive(dataset, level, retrieve_url, path_uids)
        if url is not None:
            dataset[RETRIEVE_URL] = {"vr": "UR", "Value": [url]}
        _sort_by_tag(dataset)


def _mark_source(dataset: dict[str, Any], source: str) -> None:
    block = private_block(dataset)
    dataset[f"{PRIVATE_GROUP:04X}{block:02X}{SOURCE_ELEMENT:02X}"] = {"vr": "LO", "Value": [source]}
    at_source = _values(dataset.get(RETRIEVE_URL))
    if at_source:
        key = f"{PRIVATE_GROUP:04X}{block:02X}{SOURCE_RETRIEVE_URL_ELEMENT:02X}"
        dataset[key] = {"vr": "UR", "Value": at_source[:1]}


def _url_through_archive(
    dataset: dict[str, Any],
    level: QueryLevel,
    retrieve_url: Callable[[str, str | None, str | None], str],
    path_uids: tuple[str | None, str | None],
) -> str | None:
    """Return the URL that retrieves the result through this archive, or None when a UID is missing."""
    study = _text(dataset, STUDY_INSTANCE_UID) or path_uids[0]
    series = _text(dataset, SERIES_INSTANCE_UID) or path_uids[1]
    instance = _text(dataset, SOP_INSTANCE_UID)
    if study is None:
        return None
    if level is QueryLevel.STUDY:
        return retrieve_url(study, None, None)
    if series is None:
        return None
    if level is QueryLevel.SERIES:
        return retrieve_url(study, series, None)
    return retrieve_url(study, series, instance) if instance is not None else None


def _sort_by_tag(dataset: dict[str, Any]) -> None:
    """Put the attributes of a data set back in ascending tag order, as this archive's own results are."""
    ordered = sorted(dataset.items())
    dataset.clear()
    dataset.update(ordered)


def private_block(dataset: dict[str, Any]) -> int:
    """Reserve the private block of our creator in group 0011 and return its number (0x10 to 0xFF).

    A peer's result may already use group 0011 for its own private data (PS3.5 7.8.1), so the
    creator takes the first free slot, or the slot it already holds. When all 240 slots are
    taken, the peer's group 0011 is dropped from the result, so that labelling never fails.
    """
    free = None
    for block in range(0x10, 0x100):
        key = f"{PRIVATE_GROUP:04X}00{block:02X}"
        element = dataset.get(key)
        if element is None:
            free = block if free is None else free
            continue
        if _values(element)[:1] == [PRIVATE_CREATOR]:
            return block
    if free is None:
        for key in [key for key in dataset if key.startswith(f"{PRIVATE_GROUP:04X}")]:
            del dataset[key]
        free = 0x10
    dataset[f"{PRIVATE_GROUP:04X}00{free:02X}"] = {"vr": "LO", "Value": [PRIVATE_CREATOR]}
    return free


def source_of(dataset: dict[str, Any]) -> str | None:
    """Return the source a labelled data set came from."""
    for block in range(0x10, 0x100):
        creator = dataset.get(f"{PRIVATE_GROUP:04X}00{block:02X}")
        if creator is not None and _values(creator)[:1] == [PRIVATE_CREATOR]:
            return _text(dataset, f"{PRIVATE_GROUP:04X}{block:02X}{SOURCE_ELEMENT:02X}")
    return None


def merge(
    level: QueryLevel, sources: Sequence[SourceResults], offset: int, limit: int
) -> tuple[list[dict[str, Any]], bool]:
    """Sort the results of every source in the merge order and return one page and whether more exist.

    Merge order: studies by StudyDate and StudyTime, newest first (missing ones last), then
    StudyInstanceUID; series by StudyInstanceUID, SeriesNumber (missing last) and
    SeriesInstanceUID; instances by StudyInstanceUID, SeriesInstanceUID, InstanceNumber (missing
    last) and SOPInstanceUID; ties by source name. The order is total, so the same results give
    the same pages.
    """
    # The list is sorted by each key in turn, the last key first. Python's sort is stable also in
    # reverse, so each sort keeps the order of the later keys among its ties. The source name,
    # sorted first, breaks the remaining ties.
    tagged = [(source.source, dataset) for source in sources for dataset in source.datasets]
    tagged.sort(key=lambda item: item[0])
    for sort_key, descending in reversed(_ORDER[level]):
        tagged.sort(key=lambda item, sort_key=sort_key: sort_key(item[1]), reverse=descending)
    ordered = [dataset for _, dataset in tagged]
    page = ordered[offset : offset + limit]
    more = len(ordered) > offset + limit or any(source.more for source in sources)
    return page, more


def _values(element: Any) -> list[Any]:
    if not isinstance(element, dict):
        return []
    values = element.get("Value")
    return values if isinstance(values, list) else []


def _text(dataset: dict[str, Any], key: str) -> str | None:
    values = _values(dataset.get(key))
    if not values or not isinstance(values[0], str | int | float):
        return None
    return str(values[0])


def _digits(dataset: dict[str, Any], key: str, width: int) -> tuple[int, str]:
    """Return a sort key for a DA or TM value, missing values last in a descending sort."""
    text = _text(dataset, key)
    if not text:
        return (0, "")
    whole, _, fraction = text.partition(".")
    digits = "".join(character for character in whole if character.isdigit()).ljust(width, "0")
    return (1, digits + fraction.ljust(6, "0"))


def _number(dataset: dict[str, Any], key: str) -> tuple[int, int]:
    """Return a sort key for an IS value, missing or malformed values last in an ascending sort."""
    text = _text(dataset, key)
    try:
        return (0, int(float(text))) if text else (1, 0)
    except ValueError:
        return (1, 0)


def _uid(key: str) -> Callable[[dict[str, Any]], str]:
    return lambda dataset: _text(dataset, key) or ""


_ORDER: dict[QueryLevel, list[tuple[Callable[[dict[str, Any]], Any], bool]]] = {
    QueryLevel.STUDY: [
        (lambda dataset: _digits(dataset, "00080020", 8), True),
        (lambda dataset: _digits(dataset, "00080030", 6), True),
        (_uid(STUDY_INSTANCE_UID), False),
    ],
    QueryLevel.SERIES: [
        (_uid(STUDY_INSTANCE_UID), False),
        (lambda dataset: _number(dataset, "00200011"), False),
        (_uid(SERIES_INSTANCE_UID), False),
    ],
    QueryLevel.INSTANCE: [
        (_uid(STUDY_INSTANCE_UID), False),
        (_uid(SERIES_INSTANCE_UID), False),
        (lambda dataset: _number(dataset, "00200013"), False),
        (_uid(SOP_INSTANCE_UID), False),
    ],
}
