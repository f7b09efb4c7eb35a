"""Data stored once per run and shared by the QIDO-RS and WADO-RS checks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx

from conformance import dicom_json
from conformance.archive import describe, json_body
from conformance.context import Context
from conformance.registry import CheckFailed, NotApplicable, SetupFailed
from conformance.testdata import Instance, Patient, new_uid


def referenced_uids(response: httpx.Response) -> set[str]:
    """Return the SOP Instance UIDs in the Referenced SOP Sequence of a Store response."""
    try:
        body = json_body(response)
    except CheckFailed:
        return set()
    if not isinstance(body, dict):
        return set()
    return {
        dicom_json.text(item, dicom_json.REFERENCED_SOP_INSTANCE_UID) or ""
        for item in dicom_json.items(body, dicom_json.REFERENCED_SOP_SEQUENCE)
    }


def store_all(context: Context, instances: list[Instance], description: str) -> None:
    """Store instances in one request, or raise SetupFailed naming what could not be stored."""
    response = context.archive.store([instance.data for instance in instances])
    missing = {instance.sop_instance_uid for instance in instances} - referenced_uids(response)
    if response.status_code != 200 or missing:
        raise SetupFailed(f"storing {description} ({len(instances)} instances) returned {describe(response)}")


@dataclass(frozen=True)
class SearchStudies:
    """Two studies of one patient, for the QIDO-RS checks.

    Study A (2024-03-15 10:15) has a CT series of two instances and an MR series of one.
    Study B (2023-06-01 14:30) has a CT series of one instance. Accession numbers end in "A1"
    and "B1" after the same run-specific prefix, for the wildcard checks.
    """

    patient: Patient
    study_a: str
    study_b: str
    series_a_ct: str
    series_a_mr: str
    series_b_ct: str
    accession_a: str
    accession_b: str
    instances: tuple[Instance, ...]

    def instances_of(self, study: str | None = None, series: str | None = None) -> list[Instance]:
        return [
            instance
            for instance in self.instances
            if (study is None or instance.study_instance_uid == study)
            and (series is None or instance.series_instance_uid == series)
        ]


STUDY_A = {
    "StudyDate": "20240315",
    "StudyTime": "101500",
    "StudyID": "CONF-A",
    "StudyDescription": "Conformance study A",
    "ReferringPhysicianName": "Referrer^Anna",
    "PatientAge": "054Y",
}
STUDY_B = {
    "StudyDate": "20230601",
    "StudyTime": "143000",
    "StudyID": "CONF-B",
    "StudyDescription": "Conformance study B",
    "ReferringPhysicianName": "Referrer^Ben",
    "PatientAge": "053Y",
}


def search_studies(context: Context) -> SearchStudies:
    """Store the two studies of :class:`SearchStudies`."""
    patient = context.patient("Q")
    prefix = context.run_id[:8]
    study_a, study_b = new_uid(), new_uid()
    series_a_ct, series_a_mr, series_b_ct = new_uid(), new_uid(), new_uid()
    accession_a, accession_b = f"{prefix}A1", f"{prefix}B1"

    def make(role: str, study: str, series: str, attributes: dict[str, Any]) -> Instance:
        return context.files.instance(
            role, patient, study_instance_uid=study, series_instance_uid=series, attributes=attributes
        )

    a = {**STUDY_A, "AccessionNumber": accession_a}
    b = {**STUDY_B, "AccessionNumber": accession_b}
    instances = (
        make("ct", study_a, series_a_ct, {**a, "Modality": "CT", "SeriesNumber": 1, "InstanceNumber": 1}),
        make("ct", study_a, series_a_ct, {**a, "Modality": "CT", "SeriesNumber": 1, "InstanceNumber": 2}),
        make("mr", study_a, series_a_mr, {**a, "Modality": "MR", "SeriesNumber": 2, "InstanceNumber": 1}),
        make("ct", study_b, series_b_ct, {**b, "Modality": "CT", "SeriesNumber": 1, "InstanceNumber": 1}),
    )
    store_all(context, list(instances), "the studies for the search checks")
    return SearchStudies(
        patient, study_a, study_b, series_a_ct, series_a_mr, series_b_ct, accession_a, accession_b, instances
    )


@dataclass(frozen=True)
class RetrieveStudy:
    """One study for the WADO-RS checks: a CT and an implicit VR image in one series, and an
    uncompressed and a JPEG 2000 multi-frame image in another.

    Only the CT is required. ``missing`` gives the reason another role has no instance: its
    file is not in the test data folder, or the archive did not store it.
    """

    patient: Patient
    study_instance_uid: str
    ct: Instance
    stored: dict[str, Instance]
    missing: dict[str, Exception] = field(default_factory=dict)

    def instance(self, role: str) -> Instance:
        """Return the stored instance of ``role``, or raise why there is none."""
        if role in self.stored:
            return self.stored[role]
        raise self.missing[role]

    def instances_of(self, series: str | None = None) -> list[Instance]:
        return [
            instance
            for instance in self.stored.values()
            if series is None or instance.series_instance_uid == series
        ]


def retrieve_study(context: Context) -> RetrieveStudy:
    """Store the instances of :class:`RetrieveStudy`, one request each, the CT first."""
    patient = context.patient("W")
    study = new_uid()
    series_single, series_multi = new_uid(), new_uid()
    series_of = {
        "ct": series_single,
        "implicit": series_single,
        "multiframe": series_multi,
        "compressed": series_multi,
    }

    stored: dict[str, Instance] = {}
    missing: dict[str, Exception] = {}
    for number, (role, series) in enumerate(series_of.items(), start=1):
        attributes = {
            "StudyDate": "20220101",
            "AccessionNumber": f"{context.run_id[:8]}W1",
            "InstanceNumber": number,
        }
        try:
            instance = context.files.instance(
                role, patient, study_instance_uid=study, series_instance_uid=series, attributes=attributes
            )
            store_all(context, [instance], f"the {role} instance for the retrieve checks")
        except (NotApplicable, SetupFailed) as reason:
            if role == "ct":
                raise
            missing[role] = reason
            continue
        stored[role] = instance
    return RetrieveStudy(patient, study, stored["ct"], stored, missing)
