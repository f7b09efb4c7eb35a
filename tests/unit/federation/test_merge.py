"""Labelling federated results with their source and merging them into one page."""

from __future__ import annotations

from typing import Any

from dicomweb_server.dicom.attributes import QueryLevel
from dicomweb_server.federation.search import (
    PRIVATE_CREATOR,
    SourceResults,
    label,
    merge,
    private_block,
    source_of,
)


def study(uid: str, date: str | None = None, time: str | None = None) -> dict[str, Any]:
    dataset: dict[str, Any] = {"0020000D": {"vr": "UI", "Value": [uid]}}
    if date is not None:
        dataset["00080020"] = {"vr": "DA", "Value": [date]}
    if time is not None:
        dataset["00080030"] = {"vr": "TM", "Value": [time]}
    return dataset


def instance(study_uid: str, series_uid: str, sop_uid: str, number: int | None) -> dict[str, Any]:
    dataset: dict[str, Any] = {
        "0020000D": {"vr": "UI", "Value": [study_uid]},
        "0020000E": {"vr": "UI", "Value": [series_uid]},
        "00080018": {"vr": "UI", "Value": [sop_uid]},
    }
    if number is not None:
        dataset["00200013"] = {"vr": "IS", "Value": [number]}
    return dataset


def uids(page: list[dict[str, Any]], key: str = "0020000D") -> list[str]:
    return [dataset[key]["Value"][0] for dataset in page]


def url_builder(root: str):  # type: ignore[no-untyped-def]
    def build(study_uid: str, series_uid: str | None, sop_uid: str | None) -> str:
        parts = [root, "studies", study_uid]
        if series_uid:
            parts += ["series", series_uid]
        if sop_uid:
            parts += ["instances", sop_uid]
        return "/".join(parts)

    return build


def test_merge_studies_newest_first() -> None:
    local = SourceResults("local", [study("1.1", "20240101"), study("1.3", "20240301")])
    peer = SourceResults("mercy", [study("1.2", "20240201"), study("1.4")])

    page, more = merge(QueryLevel.STUDY, [local, peer], offset=0, limit=10)

    assert uids(page) == ["1.3", "1.2", "1.1", "1.4"]
    assert more is False


def test_merge_studies_time_breaks_tie() -> None:
    local = SourceResults("local", [study("1.1", "20240101", "0800"), study("1.2", "20240101", "093000.5")])

    page, _ = merge(QueryLevel.STUDY, [local], offset=0, limit=10)

    assert uids(page) == ["1.2", "1.1"]


def test_merge_same_study_kept_per_source() -> None:
    local = SourceResults("local", [study("1.1", "20240101")])
    peer = SourceResults("mercy", [study("1.1", "20240101")])
    label(local.datasets, "local", QueryLevel.STUDY, url_builder("http://us/dicom-web"))
    label(peer.datasets, "mercy", QueryLevel.STUDY, url_builder("http://us/federation/dicom-web/peers/mercy"))

    page, _ = merge(QueryLevel.STUDY, [peer, local], offset=0, limit=10)

    assert [source_of(dataset) for dataset in page] == ["local", "mercy"]


def test_merge_pages_over_union() -> None:
    local = SourceResults("local", [study("1.1", "20240101"), study("1.3", "20240301")])
    peer = SourceResults("mercy", [study("1.2", "20240201"), study("1.4", "20240401")])

    first, first_more = merge(QueryLevel.STUDY, [local, peer], offset=0, limit=3)
    second, second_more = merge(QueryLevel.STUDY, [local, peer], offset=3, limit=3)

    assert uids(first) == ["1.4", "1.3", "1.2"]
    assert first_more is True
    assert uids(second) == ["1.1"]
    assert second_more is False


def test_merge_source_with_more() -> None:
    local = SourceResults("local", [study("1.1", "20240101")], more=True)

    _, more = merge(QueryLevel.STUDY, [local], offset=0, limit=10)

    assert more is True


def test_merge_instances_by_number() -> None:
    local = SourceResults(
        "local",
        [
            instance("1", "1.1", "1.1.3", 3),
            instance("1", "1.1", "1.1.9", None),
            instance("1", "1.1", "1.1.1", 10),
            instance("1", "1.0", "1.0.1", 2),
        ],
    )

    page, _ = merge(QueryLevel.INSTANCE, [local], offset=0, limit=10)

    assert uids(page, "00080018") == ["1.0.1", "1.1.3", "1.1.1", "1.1.9"]


def test_label_points_retrieve_url_through_archive() -> None:
    datasets = [study("1.2.3", "20240101")]
    datasets[0]["00081190"] = {"vr": "UR", "Value": ["http://peer/dicom-web/studies/1.2.3"]}

    label(datasets, "mercy", QueryLevel.STUDY, url_builder("http://us/federation/dicom-web/peers/mercy"))

    labelled = datasets[0]
    assert labelled["00081190"]["Value"] == ["http://us/federation/dicom-web/peers/mercy/studies/1.2.3"]
    assert labelled["00110010"] == {"vr": "LO", "Value": [PRIVATE_CREATOR]}
    assert labelled["00111001"] == {"vr": "LO", "Value": ["mercy"]}
    assert labelled["00111002"] == {"vr": "UR", "Value": ["http://peer/dicom-web/studies/1.2.3"]}
    assert list(labelled) == sorted(labelled)


def test_label_series_uses_path_study() -> None:
    datasets = [{"0020000E": {"vr": "UI", "Value": ["1.2.3.4"]}}]

    label(datasets, "mercy", QueryLevel.SERIES, url_builder("http://us/p"), ("1.2.3", None))

    assert datasets[0]["00081190"]["Value"] == ["http://us/p/studies/1.2.3/series/1.2.3.4"]


def test_private_block_skips_other_creator() -> None:
    dataset: dict[str, Any] = {
        "00110010": {"vr": "LO", "Value": ["ANOTHER VENDOR"]},
        "00111001": {"vr": "LO", "Value": ["their value"]},
    }

    block = private_block(dataset)
    label([dataset], "mercy", QueryLevel.STUDY, url_builder("http://us"))

    assert block == 0x11
    assert dataset["00111001"] == {"vr": "LO", "Value": ["their value"]}
    assert dataset["00111101"] == {"vr": "LO", "Value": ["mercy"]}
    assert source_of(dataset) == "mercy"


def test_private_block_reused() -> None:
    dataset: dict[str, Any] = {}

    first = private_block(dataset)
    second = private_block(dataset)

    assert first == second == 0x10


def test_private_block_full_group_dropped() -> None:
    dataset: dict[str, Any] = {
        f"0011{block:04X}": {"vr": "LO", "Value": [f"VENDOR {block}"]} for block in range(0x10, 0x100)
    }
    dataset["00111001"] = {"vr": "LO", "Value": ["their value"]}

    label([dataset], "mercy", QueryLevel.STUDY, url_builder("http://us"))

    assert source_of(dataset) == "mercy"
    assert [key for key in dataset if key.startswith("0011")] == ["00110010", "00111001"]
