"""`dicomweb-server import`: folders and zip archives stored through the STOW-RS ingest path."""

from __future__ import annotations

import asyncio
import zipfile
from pathlib import Path

import httpx
from pydicom.dataset import Dataset

from dicomweb_server.config import load_settings
from dicomweb_server.storage.store import open_store
from tests.services import Archive, ServerProcess
from tests.testdata import synthetic_ct, to_bytes

DUPLICATE_SOP_INSTANCE = "Failure Reason 0x0111"
CANNOT_UNDERSTAND = "Failure Reason 0xC000"


def object_keys(archive: Archive) -> set[str]:
    store = open_store(load_settings(environ=archive.settings_environment()))

    async def collect() -> set[str]:
        return {stored.key async for stored in store.list()}

    return asyncio.run(collect())


def search_instances(server: ServerProcess, patient_id: str) -> list[dict[str, object]]:
    response = httpx.get(
        f"{server.dicomweb}/instances",
        params={"PatientID": patient_id},
        headers={**server.headers, "Accept": "application/dicom+json"},
        timeout=60,
    )
    assert response.status_code in (200, 204), response.text
    return response.json() if response.status_code == 200 else []


def write_instance(path: Path, dataset: Dataset) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(to_bytes(dataset))


def make_import_folder(folder: Path, patient_id: str) -> None:
    """Two instances in nested folders, a text file, and a zip with two instances and a text member."""
    study = synthetic_ct(patient_id)
    write_instance(folder / "series-1" / "one.dcm", study)
    write_instance(
        folder / "series-1" / "deeper" / "two",
        synthetic_ct(patient_id, study_instance_uid=study.StudyInstanceUID, instance_number=2),
    )
    (folder / "notes.txt").write_text("not a DICOM file\n")
    with zipfile.ZipFile(folder / "more.zip", "w") as archive:
        for number in (3, 4):
            dataset = synthetic_ct(
                patient_id, study_instance_uid=study.StudyInstanceUID, instance_number=number
            )
            archive.writestr(f"zipped/{number}.dcm", to_bytes(dataset))
        archive.writestr("zipped/readme.txt", "also not DICOM")


def test_import_twice_stores_once(archive: Archive, patient_id: str, tmp_path: Path) -> None:
    folder = tmp_path / "to-import"
    make_import_folder(folder, patient_id)
    server = archive.start()

    first = archive.run(["import", str(folder)])
    stored_keys = object_keys(archive)
    found = search_instances(server, patient_id)
    second = archive.run(["import", str(folder)])

    assert first.returncode == 1, first.stderr
    assert "Stored 4 new instances, 0 already stored, 2 failed." in first.stdout
    assert f"{folder / 'notes.txt'}: " in first.stdout
    assert f"{folder / 'more.zip'}:zipped/readme.txt: " in first.stdout
    assert first.stdout.count(CANNOT_UNDERSTAND) == 2
    assert "it/s" in first.stderr or "file/s" in first.stderr, "no progress bar on stderr"
    assert len(stored_keys) == 4
    assert len(found) == 4
    assert second.returncode == 1, second.stderr
    assert "Stored 0 new instances, 4 already stored, 2 failed." in second.stdout
    assert object_keys(archive) == stored_keys
    assert len(search_instances(server, patient_id)) == 4


def test_import_zip_file(archive: Archive, patient_id: str, tmp_path: Path) -> None:
    zip_path = tmp_path / "study.zip"
    with zipfile.ZipFile(zip_path, "w", compression=zipfile.ZIP_DEFLATED) as archive_file:
        for number in (1, 2, 3):
            archive_file.writestr(f"{number}.dcm", to_bytes(synthetic_ct(patient_id, instance_number=number)))

    result = archive.run(["import", "--no-progress", str(zip_path)])

    assert result.returncode == 0, result.stderr
    assert "Stored 3 new instances, 0 already stored, 0 failed." in result.stdout
    assert len(object_keys(archive)) == 3


def test_import_conflicting_instance_fails(archive: Archive, patient_id: str, tmp_path: Path) -> None:
    original = synthetic_ct(patient_id)
    changed = synthetic_ct(patient_id)
    changed.SOPInstanceUID = original.SOPInstanceUID
    changed.file_meta.MediaStorageSOPInstanceUID = original.SOPInstanceUID
    changed.StudyInstanceUID = original.StudyInstanceUID
    changed.SeriesInstanceUID = original.SeriesInstanceUID
    changed.SeriesDescription = "changed after the first store"
    write_instance(tmp_path / "first" / "original.dcm", original)
    write_instance(tmp_path / "second" / "changed.dcm", changed)

    first = archive.run(["import", str(tmp_path / "first")])
    second = archive.run(["import", str(tmp_path / "second")])

    assert first.returncode == 0, first.stderr
    assert second.returncode == 1, second.stderr
    assert "Stored 0 new instances, 0 already stored, 1 failed." in second.stdout
    assert f"{tmp_path / 'second' / 'changed.dcm'}: " in second.stdout
    assert DUPLICATE_SOP_INSTANCE in second.stdout
    assert len(object_keys(archive)) == 1


def test_import_missing_path(archive: Archive, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-folder"

    result = archive.run(["import", str(missing)])

    assert result.returncode == 2
    assert str(missing) in result.stderr
    assert "no such file or folder" in result.stderr


def test_import_names_files_and_damaged_archives(archive: Archive, tmp_path: Path) -> None:
    folder = tmp_path / "damaged"
    folder.mkdir()
    (folder / "notes.txt").write_text("not a DICOM file\n")
    (folder / "broken.zip").write_bytes(b"PK\x03\x04" + b"\0" * 200)

    result = archive.run(["import", "--no-progress", str(folder)])

    assert result.returncode == 1, result.stderr
    assert "Stored 0 new instances, 0 already stored, 2 failed." in result.stdout
    assert f"{folder / 'broken.zip'}: the file is a damaged zip archive" in result.stdout
    assert f"{folder / 'notes.txt'}: the file is not a DICOM" in result.stdout
    assert "the part" not in result.stdout
