"""QIDO-RS against a live server: resource paths, matching, returned attributes, paging and errors.

The studies of this module share a PatientID prefix no other test uses, and every search that
could reach other tests' studies is narrowed by ``PatientID={prefix}*``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from tests.e2e.dicomweb_http import DICOM_JSON, get, store
from tests.services import ServerProcess
from tests.testdata import synthetic_ct

STUDY_INSTANCE_UID = "0020000D"
SERIES_INSTANCE_UID = "0020000E"
SOP_INSTANCE_UID = "00080018"
RETRIEVE_URL = "00081190"

STUDY_RETURN_KEYS = {
    "00080020": "StudyDate",
    "00080030": "StudyTime",
    "00080050": "AccessionNumber",
    "00080056": "InstanceAvailability",
    "00080061": "ModalitiesInStudy",
    "00080090": "ReferringPhysicianName",
    "00081190": "RetrieveURL",
    "00100010": "PatientName",
    "00100020": "PatientID",
    "00100030": "PatientBirthDate",
    "00100040": "PatientSex",
    "0020000D": "StudyInstanceUID",
    "00200010": "StudyID",
    "00201206": "NumberOfStudyRelatedSeries",
    "00201208": "NumberOfStudyRelatedInstances",
}
SERIES_RETURN_KEYS = {
    "00080060": "Modality",
    "0008103E": "SeriesDescription",
    "00081190": "RetrieveURL",
    "0020000E": "SeriesInstanceUID",
    "00200011": "SeriesNumber",
    "00201209": "NumberOfSeriesRelatedInstances",
    "00400244": "PerformedProcedureStepStartDate",
    "00400245": "PerformedProcedureStepStartTime",
    "00400275": "RequestAttributesSequence",
}
INSTANCE_RETURN_KEYS = {
    "00080016": "SOPClassUID",
    "00080018": "SOPInstanceUID",
    "00080056": "InstanceAvailability",
    "00081190": "RetrieveURL",
    "00200013": "InstanceNumber",
    "00280010": "Rows",
    "00280011": "Columns",
    "00280100": "BitsAllocated",
    "00280008": "NumberOfFrames",
}


@dataclass
class Study:
    number: int
    uid: str
    instances: list[Dataset] = field(default_factory=list)

    @property
    def series_uids(self) -> list[str]:
        return list(dict.fromkeys(str(dataset.SeriesInstanceUID) for dataset in self.instances))


@dataclass
class Corpus:
    prefix: str
    studies: dict[int, Study]

    def study_number(self, uid: str) -> int:
        return next(number for number, study in self.studies.items() if study.uid == uid)


def _study(
    prefix: str,
    number: int,
    series: list[tuple[str, int]],
    *,
    patient_name: str,
    study_date: str,
    study_time: str,
    accession_number: str,
    description: str,
    charset: str | None = None,
) -> Study:
    """Make a study of synthetic CT instances: ``series`` lists (Modality, instance count)."""
    study = Study(number, generate_uid())
    for series_number, (modality, count) in enumerate(series, start=1):
        series_uid = generate_uid()
        for instance_number in range(1, count + 1):
            dataset = synthetic_ct(
                f"{prefix}{number}",
                patient_name=patient_name,
                study_instance_uid=study.uid,
                series_instance_uid=series_uid,
                study_date=study_date,
                study_time=study_time,
                modality=modality,
                accession_number=accession_number,
                instance_number=instance_number,
                series_number=series_number,
            )
            if charset:
                dataset.SpecificCharacterSet = charset
            dataset.StudyDescription = description
            dataset.SeriesDescription = f"series {series_number} of study {number}"
            dataset.ReferringPhysicianName = "Smith^John"
            dataset.PatientBirthDate = "19700101"
            dataset.AcquisitionDateTime = f"{study_date}{10 + instance_number:02d}3000"
            study.instances.append(dataset)
    return study


@pytest.fixture(scope="module")
def corpus(server: ServerProcess) -> Corpus:
    prefix = f"QIDO-{uuid.uuid4().hex[:10]}-"
    studies = [
        _study(
            prefix,
            1,
            [("CT", 2), ("MR", 1)],
            patient_name="Müller^Hans",
            study_date="20240115",
            study_time="101500",
            accession_number="A_1",
            description="100% done",
        ),
        _study(
            prefix,
            2,
            [("CT", 1)],
            patient_name="MULLER^HANNA",
            study_date="20230601",
            study_time="083000",
            accession_number="AB1",
            description="1000 done",
        ),
        _study(
            prefix,
            3,
            [("MR", 1)],
            patient_name="Yamada^Tarou=山田^太郎=やまだ^たろう",
            study_date="20221231",
            study_time="235959",
            accession_number="ACC3",
            description="Kopf",
            charset="ISO_IR 192",
        ),
        _study(
            prefix,
            4,
            [("CT", 1)],
            patient_name="Dupont^Jean-Pierre^^Dr",
            study_date="20240301",
            study_time="120000",
            accession_number="ACC4",
            description="Thorax",
        ),
        _study(
            prefix,
            5,
            [("SR", 1)],
            patient_name="O'Neil^Mary",
            study_date="",
            study_time="",
            accession_number="ACC5",
            description="no date",
        ),
    ]
    for study in studies:
        response = store(server, study.instances)
        assert response.status_code == 200, response.text
    return Corpus(prefix, {study.number: study for study in studies})


def _search(
    server: ServerProcess, path: str, params: list[tuple[str, str]] | dict[str, str]
) -> httpx.Response:
    return get(server, path, params=params, headers={"Accept": DICOM_JSON})


def _ok(server: ServerProcess, path: str, params: list[tuple[str, str]] | dict[str, str]) -> list[Any]:
    response = _search(server, path, params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith(DICOM_JSON)
    return list(response.json())


def _uids(results: list[dict[str, Any]], tag: str) -> list[str]:
    return [result[tag]["Value"][0] for result in results]


def _numbers(corpus: Corpus, results: list[dict[str, Any]]) -> set[int]:
    return {corpus.study_number(uid) for uid in _uids(results, STUDY_INSTANCE_UID)}


def _studies(server: ServerProcess, corpus: Corpus, **filters: str) -> set[int]:
    params = {"PatientID": f"{corpus.prefix}*", **filters}
    return _numbers(corpus, _ok(server, "/studies", params))


def _value(result: dict[str, Any], tag: str) -> Any:
    return result[tag].get("Value")


def test_search_resource_paths(server: ServerProcess, corpus: Corpus) -> None:
    study = corpus.studies[1]
    first_series = study.series_uids[0]
    own = {"PatientID": f"{corpus.prefix}*"}
    assert len(_ok(server, "/studies", own)) == 5
    assert len(_ok(server, "/series", own)) == 6
    assert len(_ok(server, "/instances", own)) == 7
    assert _uids(_ok(server, f"/studies/{study.uid}/series", {}), SERIES_INSTANCE_UID) == study.series_uids
    assert _uids(_ok(server, f"/studies/{study.uid}/instances", {}), SOP_INSTANCE_UID) == [
        str(dataset.SOPInstanceUID) for dataset in study.instances
    ]
    instances = _ok(server, f"/studies/{study.uid}/series/{first_series}/instances", {})
    assert _uids(instances, SOP_INSTANCE_UID) == [
        str(dataset.SOPInstanceUID) for dataset in study.instances[:2]
    ]


def test_search_series_not_in_study_path_is_empty(server: ServerProcess, corpus: Corpus) -> None:
    other_series = corpus.studies[2].series_uids[0]
    assert _ok(server, f"/studies/{corpus.studies[1].uid}/series/{other_series}/instances", {}) == []


def test_search_keyword_and_tag(server: ServerProcess, corpus: Corpus) -> None:
    patient_id = f"{corpus.prefix}2"
    assert _numbers(corpus, _ok(server, "/studies", {"PatientID": patient_id})) == {2}
    assert _numbers(corpus, _ok(server, "/studies", {"00100020": patient_id})) == {2}
    assert _numbers(corpus, _ok(server, "/studies", {"00100020": patient_id.lower()})) == set()


def test_search_single_value(server: ServerProcess, corpus: Corpus) -> None:
    assert _studies(server, corpus, AccessionNumber="A_1") == {1}
    assert _studies(server, corpus, StudyDate="20230601") == {2}
    assert _studies(server, corpus, ModalitiesInStudy="MR") == {1, 3}
    assert _studies(server, corpus, StudyDescription="Kopf") == {3}


def test_search_uid_lists(server: ServerProcess, corpus: Corpus) -> None:
    first, second = corpus.studies[1].uid, corpus.studies[2].uid
    assert _studies(server, corpus, StudyInstanceUID=f"{first},{second}") == {1, 2}
    assert _studies(server, corpus, StudyInstanceUID=f"{first}\\{second}") == {1, 2}
    assert _studies(server, corpus, StudyInstanceUID=f"{first}") == {1}
    series = corpus.studies[1].series_uids
    found = _ok(server, "/series", {"SeriesInstanceUID": "\\".join(series)})
    assert sorted(_uids(found, SERIES_INSTANCE_UID)) == sorted(series)


def test_search_code_string_lists(server: ServerProcess, corpus: Corpus) -> None:
    assert _studies(server, corpus, ModalitiesInStudy="SR,MR") == {1, 3, 5}
    assert _studies(server, corpus, ModalitiesInStudy="SR\\MR") == {1, 3, 5}
    found = _ok(server, "/series", {"PatientID": f"{corpus.prefix}*", "Modality": "CT,SR"})
    assert len(found) == 4


def test_search_wildcards(server: ServerProcess, corpus: Corpus) -> None:
    assert _studies(server, corpus, AccessionNumber="ACC*") == {3, 4, 5}
    assert _studies(server, corpus, AccessionNumber="*1") == {1, 2}
    assert _studies(server, corpus, AccessionNumber="?CC4") == {4}
    assert _studies(server, corpus, AccessionNumber="A?1") == {1, 2}
    assert _studies(server, corpus, AccessionNumber="*") == {1, 2, 3, 4, 5}
    assert _studies(server, corpus, StudyDescription="*done") == {1, 2}
    assert _numbers(corpus, _ok(server, "/studies", {"PatientID": f"*{corpus.prefix[5:]}3"})) == {3}
    assert _studies(server, corpus, PatientName="*tarou*") == {3}
    assert _studies(server, corpus, PatientName="?uller*") == {1, 2}


def test_search_wildcard_is_case_sensitive_outside_names(server: ServerProcess, corpus: Corpus) -> None:
    assert _studies(server, corpus, AccessionNumber="acc*") == set()
    assert _studies(server, corpus, StudyDescription="kopf") == set()
    assert _studies(server, corpus, StudyDescription="k*") == set()


def test_search_like_characters_match_literally(server: ServerProcess, corpus: Corpus) -> None:
    assert _studies(server, corpus, AccessionNumber="A_*") == {1}
    assert _studies(server, corpus, AccessionNumber="A_1") == {1}
    assert _studies(server, corpus, StudyDescription="100%*") == {1}
    assert _studies(server, corpus, StudyDescription="100% done") == {1}
    assert _studies(server, corpus, StudyDescription="%") == set()
    assert _studies(server, corpus, StudyDescription="*%*") == {1}
    assert _studies(server, corpus, StudyDescription="100\\%*") == set()
    assert _studies(server, corpus, AccessionNumber="*\\*") == set()


def test_search_person_name_folding(server: ServerProcess, corpus: Corpus) -> None:
    assert _studies(server, corpus, PatientName="muller^hans") == {1}
    assert _studies(server, corpus, PatientName="MÜLLER^HANS") == {1}
    assert _studies(server, corpus, PatientName="Muller^Hanna") == {2}
    assert _studies(server, corpus, PatientName="müller*") == {1, 2}
    assert _studies(server, corpus, PatientName="dupont^jean-pierre^^dr") == {4}
    assert _studies(server, corpus, PatientName="o'neil^mary") == {5}


def test_search_person_name_component_groups(server: ServerProcess, corpus: Corpus) -> None:
    assert _studies(server, corpus, PatientName="山田^太郎") == {3}
    assert _studies(server, corpus, PatientName="やまだ^たろう") == {3}
    assert _studies(server, corpus, PatientName="YAMADA^TAROU=山田^太郎") == {3}
    assert _studies(server, corpus, PatientName="Yamada^Tarou=山田^一郎") == set()
    assert _studies(server, corpus, PatientName="=山田*") == {3}


def test_search_fuzzy_person_name(server: ServerProcess, corpus: Corpus) -> None:
    def fuzzy(name: str) -> set[int]:
        return _studies(server, corpus, PatientName=name, fuzzymatching="true")

    assert fuzzy("han") == {1, 2}
    assert fuzzy("HANS") == {1}
    assert fuzzy("mül") == {1, 2}
    assert fuzzy("Mul^Hann") == {2}
    assert fuzzy("pierre") == {4}
    assert fuzzy("tar") == {3}
    assert fuzzy("山") == {3}
    assert fuzzy("ller") == set()
    assert _studies(server, corpus, PatientName="han", fuzzymatching="false") == set()


def test_search_date_ranges(server: ServerProcess, corpus: Corpus) -> None:
    assert _studies(server, corpus, StudyDate="20230101-20231231") == {2}
    assert _studies(server, corpus, StudyDate="20240101-") == {1, 4}
    assert _studies(server, corpus, StudyDate="-20221231") == {3}
    assert _studies(server, corpus, StudyDate="20221231-20240115") == {1, 2, 3}
    assert _studies(server, corpus, StudyDate="19000101-") == {1, 2, 3, 4}


def test_search_time_ranges(server: ServerProcess, corpus: Corpus) -> None:
    assert _studies(server, corpus, StudyTime="080000-090000") == {2}
    assert _studies(server, corpus, StudyTime="2359-") == {3}
    assert _studies(server, corpus, StudyTime="-0830") == {2}
    assert _studies(server, corpus, StudyTime="10-12") == {1, 4}
    assert _studies(server, corpus, StudyTime="101500") == {1}


def test_search_datetime_ranges(server: ServerProcess, corpus: Corpus) -> None:
    study = corpus.studies[1]
    path = f"/studies/{study.uid}/instances"

    def matching(value: str) -> list[str]:
        return _uids(_ok(server, path, {"AcquisitionDateTime": value}), SOP_INSTANCE_UID)

    first, second, third = (str(dataset.SOPInstanceUID) for dataset in study.instances)
    assert matching("20240115110000-20240115114000") == [first, third]
    assert matching("20240115120000-") == [second]
    assert matching("-20240115113000") == [first, third]
    assert matching("2024") == [first, second, third]
    assert matching("-2023") == []


def test_search_includefield(server: ServerProcess, corpus: Corpus) -> None:
    patient = {"PatientID": f"{corpus.prefix}1"}
    default = _ok(server, "/studies", patient)[0]
    assert "00081030" not in default
    assert "00100030" in default

    repeated = _ok(
        server,
        "/studies",
        [*patient.items(), ("includefield", "StudyDescription"), ("includefield", "00080090")],
    )[0]
    assert _value(repeated, "00081030") == ["100% done"]

    listed = _ok(server, "/studies", {**patient, "includefield": "StudyDescription,00200010"})[0]
    assert _value(listed, "00081030") == ["100% done"]

    by_tag = _ok(server, "/studies", {**patient, "includefield": "00081030"})[0]
    assert _value(by_tag, "00081030") == ["100% done"]

    everything = _ok(server, "/studies", {**patient, "includefield": "all"})[0]
    assert _value(everything, "00081030") == ["100% done"]
    assert _value(everything, "00200010") == ["1CT1"]

    series = _ok(server, f"/studies/{corpus.studies[1].uid}/series", {"includefield": "SeriesDate,00180050"})
    assert _value(series[0], "00080021") == ["19970430"]

    instances = _ok(server, f"/studies/{corpus.studies[1].uid}/instances", {"includefield": "ImageComments"})
    assert _value(instances[0], "00204000") == ["Uncompressed"]


def test_search_paging(server: ServerProcess, corpus: Corpus) -> None:
    own = {"PatientID": f"{corpus.prefix}*"}
    everything = _uids(_ok(server, "/studies", own), STUDY_INSTANCE_UID)
    assert _uids(_ok(server, "/studies", own), STUDY_INSTANCE_UID) == everything
    # Studies are ordered newest first; the study without a date comes last.
    assert [corpus.study_number(uid) for uid in everything] == [4, 1, 2, 3, 5]

    pages = []
    for offset in (0, 2, 4):
        response = _search(server, "/studies", {**own, "limit": "2", "offset": str(offset)})
        assert response.status_code == 200
        pages.append(_uids(response.json(), STUDY_INSTANCE_UID))
        if offset < 4:
            assert response.headers["warning"].startswith("299 ")
            assert "additional results" in response.headers["warning"].lower()
        else:
            assert "warning" not in response.headers
    assert [uid for page in pages for uid in page] == everything
    assert _ok(server, "/studies", {**own, "limit": "2", "offset": "5"}) == []

    instances = _uids(_ok(server, "/instances", own), SOP_INSTANCE_UID)
    paged = []
    for offset in range(0, len(instances), 3):
        paged += _uids(
            _ok(server, "/instances", {**own, "limit": "3", "offset": str(offset)}), SOP_INSTANCE_UID
        )
    assert paged == instances


def test_search_limit_exact_has_no_warning(server: ServerProcess, corpus: Corpus) -> None:
    response = _search(server, "/studies", {"PatientID": f"{corpus.prefix}*", "limit": "5"})
    assert len(response.json()) == 5
    assert "warning" not in response.headers


def test_search_no_match_is_empty_array(server: ServerProcess, corpus: Corpus) -> None:
    response = _search(server, "/studies", {"PatientID": f"{corpus.prefix}none"})
    assert response.status_code == 200
    assert response.content.strip() == b"[]"
    response = _search(server, f"/studies/{generate_uid()}/series", {})
    assert response.status_code == 200
    assert response.json() == []


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"foo": "bar"}, "'foo'"),
        ({"PatientNam": "x"}, "'PatientNam'"),
        ({"includefield": "NotAKeyword"}, "'NotAKeyword'"),
        ({"StudyDate": "20241345"}, "StudyDate value '20241345'"),
        ({"StudyDate": "2024-13-45"}, "StudyDate range '2024-13-45'"),
        ({"StudyDate": "yesterday"}, "StudyDate value 'yesterday'"),
        ({"StudyDate": "20240201-20240101"}, "StudyDate range '20240201-20240101'"),
        ({"StudyTime": "250000"}, "StudyTime value '250000'"),
        ({"StudyInstanceUID": "1.2.abc"}, "StudyInstanceUID value '1.2.abc'"),
        ({"StudyInstanceUID": "1.2.3,"}, "StudyInstanceUID value '1.2.3,'"),
        ({"limit": "-1"}, "limit value '-1'"),
        ({"limit": "ten"}, "limit value 'ten'"),
        ({"offset": "-5"}, "offset value '-5'"),
        ({"fuzzymatching": "maybe"}, "fuzzymatching value 'maybe'"),
        ({"SeriesNumber": "two"}, "SeriesNumber value 'two'"),
    ],
)
def test_search_invalid_parameter_is_400(server: ServerProcess, params: dict[str, str], named: str) -> None:
    response = _search(server, "/series", params)
    assert response.status_code == 400, response.text
    assert named in response.json()["message"]


def test_search_unmatchable_attribute_is_400(server: ServerProcess) -> None:
    response = _search(server, "/studies", {"SeriesInstanceUID": generate_uid()})
    assert response.status_code == 400
    assert "SeriesInstanceUID" in response.json()["message"]


def test_search_multiple_value_matching_false_warns(server: ServerProcess, corpus: Corpus) -> None:
    response = _search(
        server, "/studies", {"PatientID": f"{corpus.prefix}*", "multiplevaluematching": "false"}
    )
    assert response.status_code == 200
    assert len(response.json()) == 5
    assert response.headers["warning"].startswith("299 ")
    assert "multiplevaluematching" in response.headers["warning"]


def test_search_study_attributes(server: ServerProcess, corpus: Corpus) -> None:
    (result,) = _ok(server, "/studies", {"PatientID": f"{corpus.prefix}1"})
    for tag, keyword in STUDY_RETURN_KEYS.items():
        assert tag in result, keyword
    study = corpus.studies[1]
    assert _value(result, "00080061") == ["CT", "MR"]
    assert _value(result, "00201206") == [2]
    assert _value(result, "00201208") == [3]
    assert _value(result, "00080056") == ["ONLINE"]
    assert _value(result, RETRIEVE_URL) == [f"{server.dicomweb}/studies/{study.uid}"]
    assert _value(result, "00100010") == [{"Alphabetic": "Müller^Hans"}]
    assert _value(result, "00080020") == ["20240115"]
    assert _value(result, "00100030") == ["19700101"]


def test_search_series_attributes(server: ServerProcess, corpus: Corpus) -> None:
    study = corpus.studies[1]
    results = _ok(server, f"/studies/{study.uid}/series", {})
    for result in results:
        for tag, keyword in SERIES_RETURN_KEYS.items():
            assert tag in result, keyword
        # The study is fixed by the path, so study attributes are not repeated.
        assert "00100010" not in result
    assert [_value(result, "00080060") for result in results] == [["CT"], ["MR"]]
    assert [_value(result, "00201209") for result in results] == [[2], [1]]
    assert _value(results[0], RETRIEVE_URL) == [
        f"{server.dicomweb}/studies/{study.uid}/series/{study.series_uids[0]}"
    ]


def test_search_all_series_carry_study_attributes(server: ServerProcess, corpus: Corpus) -> None:
    results = _ok(server, "/series", {"PatientID": f"{corpus.prefix}1"})
    assert len(results) == 2
    for result in results:
        for tag, keyword in {**STUDY_RETURN_KEYS, **SERIES_RETURN_KEYS}.items():
            assert tag in result, keyword
        assert _value(result, "00080061") == ["CT", "MR"]
        assert _value(result, "00201206") == [2]
        assert _value(result, "00201208") == [3]
        assert _value(result, RETRIEVE_URL)[0].endswith(f"/series/{_value(result, SERIES_INSTANCE_UID)[0]}")


def test_search_instance_attributes(server: ServerProcess, corpus: Corpus) -> None:
    study = corpus.studies[1]
    series_uid = study.series_uids[0]
    results = _ok(server, f"/studies/{study.uid}/series/{series_uid}/instances", {})
    for result, dataset in zip(results, study.instances, strict=False):
        for tag, keyword in INSTANCE_RETURN_KEYS.items():
            assert tag in result, keyword
        assert _value(result, "00080016") == [dataset.SOPClassUID]
        assert _value(result, "00280010") == [128]
        assert _value(result, "00200013") == [dataset.InstanceNumber]
        assert _value(result, RETRIEVE_URL) == [
            f"{server.dicomweb}/studies/{study.uid}/series/{series_uid}/instances/{dataset.SOPInstanceUID}"
        ]
        assert "00100010" not in result
        assert "00080060" not in result


def test_search_study_instances_carry_series_attributes(server: ServerProcess, corpus: Corpus) -> None:
    study = corpus.studies[1]
    results = _ok(server, f"/studies/{study.uid}/instances", {})
    assert len(results) == 3
    for result in results:
        for tag, keyword in {**SERIES_RETURN_KEYS, **INSTANCE_RETURN_KEYS}.items():
            assert tag in result, keyword
        assert "00100010" not in result
    assert [_value(result, "00201209") for result in results] == [[2], [2], [1]]


def test_search_all_instances_carry_parent_attributes(server: ServerProcess, corpus: Corpus) -> None:
    results = _ok(server, "/instances", {"PatientID": f"{corpus.prefix}2"})
    (result,) = results
    for tag, keyword in {**STUDY_RETURN_KEYS, **SERIES_RETURN_KEYS, **INSTANCE_RETURN_KEYS}.items():
        assert tag in result, keyword
    assert _value(result, "00080061") == ["CT"]
    assert _value(result, "00201208") == [1]
    assert _value(result, "00201209") == [1]
    assert _value(result, "00100010") == [{"Alphabetic": "MULLER^HANNA"}]


@pytest.mark.parametrize(
    "accept",
    [
        'application/dicom+json, multipart/related; type="application/dicom+xml"',
        "*/*",
        "application/json",
        "text/html;q=0.9, application/dicom+json;q=0.8",
        "",
    ],
)
def test_search_accept_forms(server: ServerProcess, corpus: Corpus, accept: str) -> None:
    response = get(server, "/studies", params={"PatientID": f"{corpus.prefix}1"}, headers={"Accept": accept})
    assert response.status_code == 200, response.text
    assert len(response.json()) == 1
    expected = "application/json" if accept == "application/json" else DICOM_JSON
    assert response.headers["content-type"].startswith(expected)


def test_search_accept_query_parameter(server: ServerProcess, corpus: Corpus) -> None:
    params = {"PatientID": f"{corpus.prefix}1", "accept": DICOM_JSON}
    response = get(server, "/studies", params=params, headers={"Accept": "text/html"})
    assert response.status_code == 200, response.text
    assert len(response.json()) == 1
    refused = get(
        server, "/studies", params={"PatientID": f"{corpus.prefix}1"}, headers={"Accept": "text/html"}
    )
    assert refused.status_code == 406
    assert "application/dicom+json" in refused.json()["message"]
