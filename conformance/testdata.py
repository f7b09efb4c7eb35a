"""Real DICOM files from a test data folder, given fresh UIDs and the suite's own patient.

Every instance the suite stores is a copy of a real file with new Study, Series and SOP
Instance UIDs and a PatientID unique to the run. The suite's searches therefore find only its
own data, even in an archive that contains other studies.
"""

from __future__ import annotations

import copy
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydicom
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from conformance.media import EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN
from conformance.registry import NotApplicable

JPEG_2000_LOSSLESS = "1.2.840.10008.1.2.4.90"
DEFAULT_FOLDER = Path(__file__).resolve().parents[1].parent / "shared" / "testdata"
"""The shared test data folder beside the project: ../shared/testdata from the project root."""


@dataclass(frozen=True)
class Role:
    """A kind of file the checks need, the files that can play it, and what it must be."""

    description: str
    candidates: tuple[str, ...]
    transfer_syntax_uid: str | None = None
    multiframe: bool = False
    bare: bool = False


ROLES = {
    "ct": Role(
        "single-frame CT image in Explicit VR Little Endian",
        ("dicom/modalities/ct/CT_small.dcm", "dicom/modalities/ct/SignedCT.dcm"),
        EXPLICIT_VR_LITTLE_ENDIAN,
    ),
    "mr": Role(
        "single-frame MR image in Explicit VR Little Endian",
        ("dicom/modalities/mr/MR_small.dcm",),
        EXPLICIT_VR_LITTLE_ENDIAN,
    ),
    "implicit": Role(
        "image in Implicit VR Little Endian",
        ("dicom/transfer-syntaxes/implicit-vr-le/MR_small_implicit.dcm", "dicom/modalities/pt/Issue94.dcm"),
        IMPLICIT_VR_LITTLE_ENDIAN,
    ),
    "multiframe": Role(
        "uncompressed multi-frame image",
        ("dicom/modalities/mr/emri_small.dcm", "dicom/modalities/nm/NM-MONO2-16-13x-heart.dcm"),
        EXPLICIT_VR_LITTLE_ENDIAN,
        multiframe=True,
    ),
    "compressed": Role(
        "JPEG 2000 lossless multi-frame image",
        ("dicom/transfer-syntaxes/jpeg2000-lossless/emri_small_jpeg_2k_lossless.dcm",),
        JPEG_2000_LOSSLESS,
        multiframe=True,
    ),
    "bare": Role(
        "data set without preamble and File Meta Information",
        ("dicom/edge-cases/no-preamble/ExplVR_LitEndNoMeta.dcm",),
        bare=True,
    ),
}


@dataclass(frozen=True)
class Patient:
    patient_id: str
    patient_name: str
    birth_date: str = "19700101"
    sex: str = "O"


@dataclass(frozen=True)
class Instance:
    """A data set with fresh UIDs and the exact bytes the suite sends for it."""

    dataset: Dataset
    data: bytes

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
    def sop_class_uid(self) -> str:
        return str(self.dataset.SOPClassUID)

    @property
    def transfer_syntax_uid(self) -> str:
        return str(self.dataset.file_meta.TransferSyntaxUID)

    @property
    def path(self) -> str:
        """The path of the instance under the DICOMweb base URL."""
        return (
            f"/studies/{self.study_instance_uid}/series/{self.series_instance_uid}"
            f"/instances/{self.sop_instance_uid}"
        )


def new_uid() -> str:
    """Return a new UID under the 2.25 root (a UUID as a decimal number, PS3.5 B.2)."""
    return str(generate_uid(prefix=None))


class DataFolder:
    """A folder of DICOM test files, such as ../shared/testdata."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._sources: dict[str, Dataset] = {}

    def source(self, role: str) -> Dataset:
        """Return the original data set that plays ``role``, read once.

        Raises
        ------
        NotApplicable
            When no candidate file exists or fits the role.
        """
        if role not in self._sources:
            self._sources[role] = self._find(ROLES[role])
        return self._sources[role]

    def _find(self, role: Role) -> Dataset:
        for relative in role.candidates:
            path = self.folder / relative
            if not path.is_file():
                continue
            dataset = pydicom.dcmread(path, force=role.bare)
            if _fits(role, dataset):
                return dataset
        raise NotApplicable(
            f"the test data folder {self.folder} has no {role.description} "
            f"(looked for {', '.join(role.candidates)})"
        )

    def instance(
        self,
        role: str,
        patient: Patient,
        *,
        study_instance_uid: str,
        series_instance_uid: str,
        sop_instance_uid: str | None = None,
        attributes: dict[str, Any] | None = None,
    ) -> Instance:
        """Copy the file of ``role`` with new UIDs, the patient, and ``attributes`` set by keyword.

        An attribute given as None is removed.
        """
        dataset = copy.deepcopy(self.source(role))
        # Names with accents are sent in UTF-8, whatever character set the file had.
        dataset.SpecificCharacterSet = "ISO_IR 192"
        dataset.PatientID = patient.patient_id
        dataset.PatientName = patient.patient_name
        dataset.PatientBirthDate = patient.birth_date
        dataset.PatientSex = patient.sex
        dataset.StudyInstanceUID = study_instance_uid
        dataset.SeriesInstanceUID = series_instance_uid
        dataset.SOPInstanceUID = sop_instance_uid or new_uid()
        for keyword, value in (attributes or {}).items():
            if value is None:
                if keyword in dataset:
                    delattr(dataset, keyword)
            else:
                setattr(dataset, keyword, value)
        return Instance(dataset, _encode(dataset, ROLES[role].bare))


def _fits(role: Role, dataset: Dataset) -> bool:
    if role.bare:
        return "SOPClassUID" in dataset
    if (
        role.transfer_syntax_uid
        and str(dataset.file_meta.get("TransferSyntaxUID")) != role.transfer_syntax_uid
    ):
        return False
    if role.multiframe and int(dataset.get("NumberOfFrames") or 1) < 3:
        return False
    return "PixelData" in dataset


def _encode(dataset: Dataset, bare: bool) -> bytes:
    buffer = io.BytesIO()
    if bare:
        dataset.preamble = None
        dataset.save_as(buffer, implicit_vr=False, little_endian=True, enforce_file_format=False)
        return buffer.getvalue()
    if "SOPInstanceUID" in dataset:
        dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def read_dataset(data: bytes) -> Dataset:
    """Read a retrieved instance; ``force`` also reads a data set without File Meta Information."""
    return pydicom.dcmread(io.BytesIO(data), force=True)
