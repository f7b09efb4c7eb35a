"""Part 10 bytes of synthetic instances, made by overwriting fixed-width values of one template.

The template is a real CT instance from the shared test files (a GE LightSpeed head slice with
its private attributes) whose identifying values are replaced by placeholders of the planned
width. Each instance is then a copy of the template bytes with those values overwritten in
place, which takes microseconds instead of the milliseconds pydicom needs to encode a data set.
"""

from __future__ import annotations

import io
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pydicom
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO

from benchmarks.dataset import SENTINEL_NUMBER, DataSetPlan, SeriesPlan, StudyPlan, UidLevel

TESTDATA = Path(os.environ.get("DICOM_TESTDATA", Path(__file__).resolve().parents[2] / "shared" / "testdata"))
TEMPLATE_SOURCE = TESTDATA / "dicom" / "series" / "77654033" / "CT2" / "17106.dcm"

NUMBER_WIDTH = 6
"""Width of SeriesNumber and InstanceNumber, padded with leading spaces as IS allows (PS3.5 6.2)."""

# Tags of the values each instance overwrites.
SOP_CLASS_UID = 0x00080016
SOP_INSTANCE_UID = 0x00080018
STUDY_DATE = 0x00080020
ACCESSION_NUMBER = 0x00080050
MODALITY = 0x00080060
PATIENT_NAME = 0x00100010
PATIENT_ID = 0x00100020
STUDY_INSTANCE_UID = 0x0020000D
SERIES_INSTANCE_UID = 0x0020000E
SERIES_NUMBER = 0x00200011
INSTANCE_NUMBER = 0x00200013
MEDIA_STORAGE_SOP_CLASS_UID = 0x00020002
MEDIA_STORAGE_SOP_INSTANCE_UID = 0x00020003


@dataclass(frozen=True)
class InstanceValues:
    """The values that make one planned instance different from the template."""

    study: StudyPlan
    series: SeriesPlan
    index: int
    sop_instance_uid: str

    def field_values(self) -> dict[int, str]:
        return {
            STUDY_INSTANCE_UID: self.study.study_instance_uid,
            SERIES_INSTANCE_UID: self.series.series_instance_uid,
            SOP_INSTANCE_UID: self.sop_instance_uid,
            MEDIA_STORAGE_SOP_INSTANCE_UID: self.sop_instance_uid,
            SOP_CLASS_UID: self.series.sop_class_uid,
            MEDIA_STORAGE_SOP_CLASS_UID: self.series.sop_class_uid,
            PATIENT_ID: self.study.patient_id,
            PATIENT_NAME: self.study.patient_name,
            STUDY_DATE: self.study.study_date,
            ACCESSION_NUMBER: self.study.accession_number,
            MODALITY: self.series.modality,
            SERIES_NUMBER: f"{self.series.series_number:>{NUMBER_WIDTH}}",
            INSTANCE_NUMBER: f"{self.index + 1:>{NUMBER_WIDTH}}",
        }


def planned_instances(plan: DataSetPlan, study: StudyPlan) -> list[InstanceValues]:
    """List the instances of one study in order: series by series, then by InstanceNumber."""
    return [
        InstanceValues(study, series, index, plan.sop_instance_uid(series, index))
        for series in study.series
        for index in range(series.instance_count)
    ]


class InstanceTemplate:
    """The template instance of a data set, and the byte positions of every value that varies."""

    def __init__(self, plan: DataSetPlan) -> None:
        self.plan = plan
        self.sentinels = _sentinel_values(plan)
        self.data = _template_bytes(plan, self.sentinels)
        self.positions = _value_positions(self.data, self.sentinels)

    def render(self, values: InstanceValues) -> bytes:
        """Return the Part 10 bytes of one planned instance."""
        data = bytearray(self.data)
        for tag, text in values.field_values().items():
            encoded = text.encode("ascii")
            for offset, length in self.positions[tag]:
                if len(encoded) != length:
                    raise ValueError(
                        f"value {text!r} of tag {tag:08X} does not have the planned length {length}"
                    )
                data[offset : offset + length] = encoded
        return bytes(data)


def _sentinel_values(plan: DataSetPlan) -> dict[int, str]:
    """Placeholder values of the planned widths that no planned instance uses."""
    sop_instance_uid = plan.uid(UidLevel.INSTANCE, SENTINEL_NUMBER)
    return {
        STUDY_INSTANCE_UID: plan.uid(UidLevel.STUDY, SENTINEL_NUMBER),
        SERIES_INSTANCE_UID: plan.uid(UidLevel.SERIES, SENTINEL_NUMBER),
        SOP_INSTANCE_UID: sop_instance_uid,
        MEDIA_STORAGE_SOP_INSTANCE_UID: sop_instance_uid,
        SOP_CLASS_UID: "1.2.840.10008.5.1.4.1.1.2",
        MEDIA_STORAGE_SOP_CLASS_UID: "1.2.840.10008.5.1.4.1.1.2",
        PATIENT_ID: plan.patient_id(99_999_999),
        PATIENT_NAME: "Xxxxxx^Xxxxx",
        STUDY_DATE: "19000101",
        ACCESSION_NUMBER: "A" + "9" * 15,
        MODALITY: "CT",
        SERIES_NUMBER: "9" * NUMBER_WIDTH,
        INSTANCE_NUMBER: "9" * NUMBER_WIDTH,
    }


def _template_bytes(plan: DataSetPlan, sentinels: dict[int, str]) -> bytes:
    dataset = pydicom.dcmread(TEMPLATE_SOURCE)
    # ModalitiesInStudy describes the whole study, so it does not belong to a single instance.
    del dataset[0x00080061]

    for tag, value in sentinels.items():
        target = dataset.file_meta if tag >> 16 == 0x0002 else dataset
        target[tag].value = value

    if (plan.rows, plan.columns) != (dataset.Rows, dataset.Columns):
        dataset.Rows = plan.rows
        dataset.Columns = plan.columns
        dataset.PixelData = _phantom_pixels(plan)

    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _phantom_pixels(plan: DataSetPlan) -> bytes:
    """Signed 16-bit CT-like pixels: a water disc in air with noise, the same for every instance."""
    rng = np.random.default_rng(plan.seed)
    y, x = np.mgrid[0 : plan.rows, 0 : plan.columns]
    radius = min(plan.rows, plan.columns) * 0.42
    inside = (y - plan.rows / 2) ** 2 + (x - plan.columns / 2) ** 2 < radius**2
    pixels = np.where(inside, 1024, 0) + rng.normal(0, 20, (plan.rows, plan.columns))
    return pixels.astype("<i2").tobytes()


def _value_positions(data: bytes, sentinels: dict[int, str]) -> dict[int, list[tuple[int, int]]]:
    """Find where the value of each varying element starts in the template bytes, and its length."""
    positions: dict[int, list[tuple[int, int]]] = {}
    meta_end = _file_meta_end(data)
    for tag, sentinel in sentinels.items():
        encoded = sentinel.encode("ascii")
        if tag >> 16 == 0x0002:
            offset = data.find(encoded, 0, meta_end)
        else:
            offset = _dataset_value_offset(data, meta_end, tag)
        if offset < 0 or data[offset : offset + len(encoded)] != encoded:
            raise RuntimeError(f"the template has no value for tag {tag:08X} where expected")
        positions[tag] = [(offset, len(encoded))]
    return positions


def _file_meta_end(data: bytes) -> int:
    group_length = int.from_bytes(data[140:144], "little")
    return 144 + group_length


def _dataset_value_offset(data: bytes, meta_end: int, tag: int) -> int:
    fp = DicomBytesIO(data[meta_end:])
    fp.is_little_endian = True
    fp.is_implicit_VR = False
    dataset = pydicom.filereader.read_dataset(fp, is_implicit_VR=False, is_little_endian=True)
    raw: Any = dataset.get_item(tag)
    return meta_end + int(raw.value_tell)


class ParsedTemplate:
    """The archive parser's result for the template, rewritten for each planned instance.

    The index loader records instances without parsing each one; :func:`check_parsed` compares
    the result with the real parser on sampled instances, so the shortcut cannot drift silently.
    """

    def __init__(self, template: InstanceTemplate) -> None:
        from dicomweb_server.dicom.parse import read_instance

        self.template = template
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "template.dcm"
            path.write_bytes(template.data)
            self.parsed = read_instance(path)
        self.metadata_text = orjson.dumps(self.parsed.metadata).decode()
        self.replaced_uids = {
            template.sentinels[tag]: tag
            for tag in (STUDY_INSTANCE_UID, SERIES_INSTANCE_UID, SOP_INSTANCE_UID)
        }

    def parsed_instance(self, values: InstanceValues) -> Any:
        from dicomweb_server.dicom.parse import ParsedInstance

        fields = values.field_values()
        text = self.metadata_text
        for sentinel, tag in self.replaced_uids.items():
            text = text.replace(sentinel, fields[tag])
        metadata = orjson.loads(text)
        for tag in (SOP_CLASS_UID, PATIENT_ID, STUDY_DATE, ACCESSION_NUMBER, MODALITY):
            metadata[f"{tag:08X}"]["Value"] = [fields[tag]]
        metadata[f"{PATIENT_NAME:08X}"]["Value"] = [{"Alphabetic": fields[PATIENT_NAME]}]
        metadata[f"{SERIES_NUMBER:08X}"]["Value"] = [values.series.series_number]
        metadata[f"{INSTANCE_NUMBER:08X}"]["Value"] = [values.index + 1]

        return ParsedInstance(
            study_instance_uid=values.study.study_instance_uid,
            series_instance_uid=values.series.series_instance_uid,
            sop_instance_uid=values.sop_instance_uid,
            sop_class_uid=values.series.sop_class_uid,
            transfer_syntax_uid=self.parsed.transfer_syntax_uid,
            metadata=metadata,
            bulkdata=self.parsed.bulkdata,
            pixel_data=self.parsed.pixel_data,
            warnings=self.parsed.warnings,
        )


def check_parsed(parsed_template: ParsedTemplate, values: InstanceValues, folder: Path) -> None:
    """Raise when the rewritten template differs from what the archive's parser reads from the bytes."""
    from dicomweb_server.dicom.parse import read_instance

    path = folder / f"{values.sop_instance_uid}.dcm"
    path.write_bytes(parsed_template.template.render(values))
    expected = read_instance(path)
    path.unlink()
    actual = parsed_template.parsed_instance(values)
    if expected != actual:
        raise RuntimeError(
            f"the synthetic instance {values.sop_instance_uid} differs from what the parser reads; "
            "the template rewrite in benchmarks/instances.py is out of date"
        )


def dataset_of(data: bytes) -> Dataset:
    return pydicom.dcmread(io.BytesIO(data))
