"""The QIDO-RS attribute catalogue: which attributes can be matched and returned at each level.

Matching keys are the attributes the index keeps in columns (PS3.18 Table 10.6.1-5 and a few
more that viewers search on). Return keys are the attributes PS3.18 Tables 10.6.3-3, 10.6.3-4 and
10.6.3-5 require in every result of a level.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword

from dicomweb_server.dicom._levels import SERIES_LEVEL_TAGS, STUDY_LEVEL_TAGS


class QueryLevel(StrEnum):
    """Level of the Study Root information model a search or an attribute belongs to."""

    STUDY = "study"
    SERIES = "series"
    INSTANCE = "instance"

    @property
    def depth(self) -> int:
        return {"study": 0, "series": 1, "instance": 2}[self.value]


@dataclass(frozen=True)
class MatchingKey:
    """An attribute the index can match on.

    ``path`` is the keyword path as a query names it ("RequestAttributesSequence.
    ScheduledProcedureStepID"); ``tags`` is the same path as tags. ``vr`` is the VR of the
    last element, which decides the matching types allowed.
    """

    path: str
    tags: tuple[int, ...]
    vr: str
    level: QueryLevel

    @property
    def keyword(self) -> str:
        return self.path.rsplit(".", 1)[-1]


def _key(path: str, level: QueryLevel, vr: str | None = None) -> MatchingKey:
    keywords = path.split(".")
    tags = tuple(tag_for_keyword(keyword) for keyword in keywords)
    assert all(tag is not None for tag in tags), path
    return MatchingKey(path, tags, vr or dictionary_VR(tags[-1]), level)  # type: ignore[arg-type]


_STUDY, _SERIES, _INSTANCE = QueryLevel.STUDY, QueryLevel.SERIES, QueryLevel.INSTANCE

MATCHING_KEYS: dict[str, MatchingKey] = {
    key.path: key
    for key in (
        _key("StudyInstanceUID", _STUDY),
        _key("StudyDate", _STUDY),
        _key("StudyTime", _STUDY),
        _key("AccessionNumber", _STUDY),
        _key("ModalitiesInStudy", _STUDY),
        _key("ReferringPhysicianName", _STUDY),
        _key("PatientName", _STUDY),
        _key("PatientID", _STUDY),
        _key("IssuerOfPatientID", _STUDY),
        _key("PatientBirthDate", _STUDY),
        _key("PatientSex", _STUDY),
        _key("StudyID", _STUDY),
        _key("StudyDescription", _STUDY),
        _key("SeriesInstanceUID", _SERIES),
        _key("Modality", _SERIES),
        _key("SeriesNumber", _SERIES),
        _key("SeriesDescription", _SERIES),
        _key("SeriesDate", _SERIES),
        _key("SeriesTime", _SERIES),
        _key("BodyPartExamined", _SERIES),
        _key("PerformedProcedureStepStartDate", _SERIES),
        _key("PerformedProcedureStepStartTime", _SERIES),
        _key("RequestAttributesSequence.ScheduledProcedureStepID", _SERIES),
        _key("RequestAttributesSequence.RequestedProcedureID", _SERIES),
        _key("SOPInstanceUID", _INSTANCE),
        _key("SOPClassUID", _INSTANCE),
        _key("InstanceNumber", _INSTANCE),
        _key("ContentDate", _INSTANCE),
        _key("ContentTime", _INSTANCE),
        _key("AcquisitionDateTime", _INSTANCE),
    )
}

MATCHING_KEYS_BY_TAG_PATH: dict[tuple[int, ...], MatchingKey] = {
    key.tags: key for key in MATCHING_KEYS.values()
}


def _tags(*keywords: str) -> tuple[int, ...]:
    tags = tuple(tag_for_keyword(keyword) for keyword in keywords)
    assert all(tag is not None for tag in tags), keywords
    return tags  # type: ignore[return-value]


RETURN_TAGS: dict[QueryLevel, tuple[int, ...]] = {
    QueryLevel.STUDY: _tags(
        "StudyDate",
        "StudyTime",
        "AccessionNumber",
        "InstanceAvailability",
        "ModalitiesInStudy",
        "ReferringPhysicianName",
        "TimezoneOffsetFromUTC",
        "RetrieveURL",
        "PatientName",
        "PatientID",
        "IssuerOfPatientID",
        "PatientBirthDate",
        "PatientSex",
        "StudyInstanceUID",
        "StudyID",
        "NumberOfStudyRelatedSeries",
        "NumberOfStudyRelatedInstances",
    ),
    QueryLevel.SERIES: _tags(
        "Modality",
        "TimezoneOffsetFromUTC",
        "SeriesDescription",
        "RetrieveURL",
        "SeriesInstanceUID",
        "SeriesNumber",
        "NumberOfSeriesRelatedInstances",
        "PerformedProcedureStepStartDate",
        "PerformedProcedureStepStartTime",
        "RequestAttributesSequence",
    ),
    QueryLevel.INSTANCE: _tags(
        "SOPClassUID",
        "SOPInstanceUID",
        "InstanceAvailability",
        "TimezoneOffsetFromUTC",
        "RetrieveURL",
        "InstanceNumber",
        "Rows",
        "Columns",
        "BitsAllocated",
        "NumberOfFrames",
    ),
}

COMPUTED_TAGS = frozenset(
    _tags(
        "InstanceAvailability",
        "ModalitiesInStudy",
        "RetrieveURL",
        "NumberOfStudyRelatedSeries",
        "NumberOfStudyRelatedInstances",
        "NumberOfSeriesRelatedInstances",
    )
)
"""Attributes the archive computes for a result instead of copying them from stored data."""

_COMPUTED_LEVELS = {
    tag_for_keyword("ModalitiesInStudy"): QueryLevel.STUDY,
    tag_for_keyword("NumberOfStudyRelatedSeries"): QueryLevel.STUDY,
    tag_for_keyword("NumberOfStudyRelatedInstances"): QueryLevel.STUDY,
    tag_for_keyword("NumberOfSeriesRelatedInstances"): QueryLevel.SERIES,
}

TIMEZONE_OFFSET_TAG = 0x00080201


def level_of_tag(tag: int) -> QueryLevel:
    """Return the query level a top-level attribute belongs to.

    Attributes of the Patient and Study entities are study-level, those of the Series and
    Equipment entities series-level, and all others instance-level. (0008,0201) *Timezone
    Offset From UTC* is returned at every level and is treated here as study-level.
    """
    if tag in _COMPUTED_LEVELS:
        return _COMPUTED_LEVELS[tag]
    if tag in STUDY_LEVEL_TAGS or tag == TIMEZONE_OFFSET_TAG:
        return QueryLevel.STUDY
    if tag in SERIES_LEVEL_TAGS:
        return QueryLevel.SERIES
    return QueryLevel.INSTANCE


def describe(tag: int) -> str:
    """Name an attribute for a message: "PatientName (0010,0010)"."""
    keyword = keyword_for_tag(tag) or "private attribute"
    return f"{keyword} ({tag >> 16:04X},{tag & 0xFFFF:04X})"
