"""Deterministic synthetic data sets: which patients, studies, series and instances exist.

A :class:`DataSetPlan` fixes the whole data set from a seed and a few counts, so the loader, the
STOW-RS scenario and the QIDO-RS query mix all agree on what is stored without sharing state.
Every value that varies between instances has a fixed width: UIDs, PatientID, PatientName,
dates, Modality and the SOP Class UID that goes with it. So :mod:`benchmarks.instances` can make
each instance by overwriting bytes of one template instead of encoding it with pydicom.
"""

from __future__ import annotations

import datetime
import random
from dataclasses import dataclass
from functools import cached_property

from pydicom.uid import PYDICOM_ROOT_UID

UID_NUMBER_DIGITS = 10
"""Digits of the running number at the end of every synthetic UID, so all UIDs have one length."""

SENTINEL_NUMBER = 10**UID_NUMBER_DIGITS - 1
"""The running number of the template's UIDs; no planned instance uses it."""

FIRST_STUDY_DATE = datetime.date(2010, 1, 1)
STUDY_DATE_SPAN_DAYS = 15 * 365

CONSONANTS = "BDFGKLMNPRSTVZ"
VOWELS = "AEIOU"

MODALITIES = (("CT", 5), ("MR", 3), ("CR", 2))
"""Series modalities and their weights. Their SOP Class UIDs have the same length (25 characters)."""

SOP_CLASS_OF_MODALITY = {
    "CT": "1.2.840.10008.5.1.4.1.1.2",
    "MR": "1.2.840.10008.5.1.4.1.1.4",
    "CR": "1.2.840.10008.5.1.4.1.1.1",
}


class UidLevel:
    """The digit that separates study, series and instance UIDs of one data set."""

    STUDY = 1
    SERIES = 2
    INSTANCE = 3


@dataclass(frozen=True)
class SeriesPlan:
    series_instance_uid: str
    series_number: int
    modality: str
    sop_class_uid: str
    first_instance: int
    """Running number of the series' first instance within the data set."""
    instance_count: int


@dataclass(frozen=True)
class StudyPlan:
    number: int
    study_instance_uid: str
    patient_id: str
    patient_name: str
    study_date: str
    accession_number: str
    series: tuple[SeriesPlan, ...]

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(sorted({series.modality for series in self.series}))


@dataclass(frozen=True)
class DataSetPlan:
    """The shape of a synthetic data set; every value in it follows from these fields.

    Parameters
    ----------
    seed
        Changes every UID, name and date, so two data sets with different seeds can share a
        server without duplicates.
    code
        One digit (1-9) in every UID that separates data sets of different purposes made with
        the same seed (the STOW-RS set and the large index).
    studies, series_per_study, instances_per_series
        The hierarchy. The data set contains their product of instances.
    studies_per_patient
        Studies that share one PatientID and PatientName.
    rows, columns
        Size of the 16-bit, single-frame pixel data of every instance.
    """

    seed: int
    code: int
    studies: int
    series_per_study: int
    instances_per_series: int
    studies_per_patient: int
    rows: int
    columns: int

    def __post_init__(self) -> None:
        if not 1 <= self.code <= 9:
            raise ValueError(f"invalid data set code {self.code}; use one digit from 1 to 9")
        if not 0 <= self.seed < 10**6:
            raise ValueError(f"invalid seed {self.seed}; use a number from 0 to 999999")
        if self.studies * self.series_per_study * self.instances_per_series >= SENTINEL_NUMBER:
            raise ValueError("the data set has more instances than its UIDs can number")

    @property
    def instances(self) -> int:
        return self.studies * self.series_per_study * self.instances_per_series

    @property
    def patients(self) -> int:
        return -(-self.studies // self.studies_per_patient)

    @property
    def pixel_data_length(self) -> int:
        return self.rows * self.columns * 2

    def uid(self, level: int, number: int) -> str:
        """Return the UID of one study, series or instance; all have the same length."""
        return f"{PYDICOM_ROOT_UID}{self.code}{self.seed:06d}{level}{number:0{UID_NUMBER_DIGITS}d}"

    def patient_id(self, patient: int) -> str:
        return f"BENCH{self.seed:06d}P{patient:08d}"

    def patient_name(self, patient: int) -> str:
        """Return a PN value "Family^Given" of 12 characters made of pronounceable syllables."""
        rng = random.Random(f"patient-name:{self.seed}:{patient}")
        family = "".join(rng.choice(CONSONANTS) + rng.choice(VOWELS) for _ in range(3))
        given_name = "".join(rng.choice(CONSONANTS) + rng.choice(VOWELS) for _ in range(2))
        given_name += rng.choice(CONSONANTS)
        return f"{family.capitalize()}^{given_name.capitalize()}"

    def study(self, number: int) -> StudyPlan:
        """Return everything planned for the study with this running number."""
        if not 0 <= number < self.studies:
            raise IndexError(f"study {number} is outside the data set of {self.studies} studies")
        rng = random.Random(f"study:{self.seed}:{self.code}:{number}")
        patient = number % self.patients
        study_date = FIRST_STUDY_DATE + datetime.timedelta(days=rng.randrange(STUDY_DATE_SPAN_DAYS))
        series = tuple(self._series(number, index, rng) for index in range(self.series_per_study))
        return StudyPlan(
            number=number,
            study_instance_uid=self.uid(UidLevel.STUDY, number),
            patient_id=self.patient_id(patient),
            patient_name=self.patient_name(patient),
            study_date=study_date.strftime("%Y%m%d"),
            accession_number=f"A{self.seed:06d}{number:09d}",
            series=series,
        )

    def _series(self, study_number: int, index: int, rng: random.Random) -> SeriesPlan:
        number = study_number * self.series_per_study + index
        modality = rng.choices(self._modality_names, weights=self._modality_weights)[0]
        return SeriesPlan(
            series_instance_uid=self.uid(UidLevel.SERIES, number),
            series_number=index + 1,
            modality=modality,
            sop_class_uid=SOP_CLASS_OF_MODALITY[modality],
            first_instance=number * self.instances_per_series,
            instance_count=self.instances_per_series,
        )

    def sop_instance_uid(self, series: SeriesPlan, index: int) -> str:
        return self.uid(UidLevel.INSTANCE, series.first_instance + index)

    @cached_property
    def _modality_names(self) -> list[str]:
        return [name for name, _ in MODALITIES]

    @cached_property
    def _modality_weights(self) -> list[int]:
        return [weight for _, weight in MODALITIES]


def stow_plan(seed: int, studies: int) -> DataSetPlan:
    """Plan the STOW-RS data set: CT-like instances of 0.5 MB (512 x 512 x 16 bits), 45 per study."""
    return DataSetPlan(
        seed=seed,
        code=1,
        studies=studies,
        series_per_study=3,
        instances_per_series=15,
        studies_per_patient=2,
        rows=512,
        columns=512,
    )


def index_plan(seed: int, instances: int) -> DataSetPlan:
    """Plan the large index: studies of 2 series of 25 instances of 16 x 16 pixels, 2 studies per patient."""
    per_study = 2 * 25
    if instances % per_study:
        raise ValueError(f"invalid instance count {instances}; use a multiple of {per_study}")
    return DataSetPlan(
        seed=seed,
        code=2,
        studies=instances // per_study,
        series_per_study=2,
        instances_per_series=25,
        studies_per_patient=2,
        rows=16,
        columns=16,
    )
