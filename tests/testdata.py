"""The shared DICOM test files (see shared/testdata/MANIFEST.md) and synthetic instances made from them."""

from __future__ import annotations

import io
import json
import os
from functools import cache
from pathlib import Path
from typing import Any

import pydicom
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

ROOT = Path(__file__).resolve().parents[1]
TESTDATA = Path(os.environ.get("DICOM_TESTDATA", ROOT.parent / "shared" / "testdata"))


@cache
def manifest() -> list[dict[str, Any]]:
    return list(json.loads((TESTDATA / "manifest.json").read_text(encoding="utf-8"))["files"])


def entries(*, broken: bool | None = False, **where: Any) -> list[dict[str, Any]]:
    """Manifest entries whose keys equal the given values; broken files only when asked."""
    return [
        entry
        for entry in manifest()
        if (broken is None or entry["broken"] is broken)
        and all(entry.get(key) == value for key, value in where.items())
    ]


def path_of(entry: dict[str, Any]) -> Path:
    return TESTDATA / entry["path"]


def read(relative: str) -> Dataset:
    return pydicom.dcmread(TESTDATA / "dicom" / relative)


def synthetic_ct(
    patient_id: str,
    *,
    patient_name: str = "Test^Patient",
    study_instance_uid: str | None = None,
    series_instance_uid: str | None = None,
    study_date: str = "20240115",
    study_time: str = "101500",
    modality: str = "CT",
    accession_number: str = "ACC1",
    instance_number: int = 1,
    series_number: int = 1,
    issuer_of_patient_id: str | None = None,
) -> Dataset:
    """A real CT instance (CT_small.dcm) given new UIDs and the patient and study attributes asked for."""
    dataset = read("modalities/ct/CT_small.dcm")
    dataset.PatientID = patient_id
    dataset.PatientName = patient_name
    if issuer_of_patient_id is not None:
        dataset.IssuerOfPatientID = issuer_of_patient_id
    dataset.StudyInstanceUID = study_instance_uid or generate_uid()
    dataset.SeriesInstanceUID = series_instance_uid or generate_uid()
    dataset.SOPInstanceUID = generate_uid()
    dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
    dataset.StudyDate = study_date
    dataset.StudyTime = study_time
    dataset.Modality = modality
    dataset.AccessionNumber = accession_number
    dataset.InstanceNumber = instance_number
    dataset.SeriesNumber = series_number
    return dataset


def to_bytes(dataset: Dataset) -> bytes:
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()
