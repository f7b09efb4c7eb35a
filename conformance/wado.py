"""WADO-RS checks: the Retrieve transaction of the Studies Service (PS3.18 10.4) for instances,
metadata, bulk data and frames, and the transfer syntax rules of PS3.18 8.7.3."""

from __future__ import annotations

from typing import Any
from urllib.parse import urljoin

from pydicom.dataset import Dataset
from pydicom.encaps import generate_frames

from conformance import dicom_json, media
from conformance.archive import DICOM_MULTIPART, STORED_SYNTAX, describe, json_body, media_type_of, parts
from conformance.context import Context
from conformance.fixtures import RetrieveStudy, retrieve_study
from conformance.multipart import Part
from conformance.registry import Level, NotApplicable, check, expect
from conformance.testdata import Instance, new_uid, read_dataset

OCTET_STREAM_MULTIPART = f'{media.MULTIPART_RELATED}; type="{media.OCTET_STREAM}"'
FRAMES_AS_STORED = f"{OCTET_STREAM_MULTIPART}; transfer-syntax=*"


def _study(context: Context) -> RetrieveStudy:
    return context.fixture(retrieve_study)


def _retrieve(context: Context, path: str, accept: str) -> list[Part]:
    response = context.archive.get(path, accept=accept)
    expect(response.status_code == 200, f"200 (OK) for GET {path} with Accept: {accept}", describe(response))
    return parts(response)


def _sop_instance_uids(found: list[Part]) -> list[str]:
    return sorted(str(read_dataset(part.content).get("SOPInstanceUID", "")) for part in found)


def _expect_instances(found: list[Part], expected: list[Instance]) -> None:
    expect(
        _sop_instance_uids(found) == sorted(instance.sop_instance_uid for instance in expected),
        f"one part for each of {len(expected)} instances",
        _sop_instance_uids(found),
    )


def _frame_size(dataset: Dataset) -> int:
    samples = int(dataset.get("SamplesPerPixel") or 1)
    return int(dataset.Rows) * int(dataset.Columns) * samples * int(dataset.BitsAllocated) // 8


def _native_frame(instance: Instance, number: int) -> bytes:
    size = _frame_size(instance.dataset)
    return bytes(instance.dataset.PixelData[(number - 1) * size : number * size])


def _stored_frame(instance: Instance, number: int) -> bytes:
    frames = generate_frames(
        instance.dataset.PixelData, number_of_frames=int(instance.dataset.NumberOfFrames)
    )
    return list(frames)[number - 1]


@check("10.4.1.1.1/instance", "Retrieve an instance as multipart/related application/dicom")
def retrieve_instance(context: Context) -> None:
    ct = _study(context).ct
    found = _retrieve(context, ct.path, STORED_SYNTAX)
    expect(len(found) == 1, "one part", f"{len(found)} parts")
    expect(found[0].media_type.type == media.DICOM, "a part of type application/dicom", found[0].headers)
    _expect_instances(found, [ct])


@check("10.4.1.1.1/series", "Retrieve a series: one part per instance")
def retrieve_series(context: Context) -> None:
    study = _study(context)
    series = study.ct.series_instance_uid
    found = _retrieve(context, f"/studies/{study.study_instance_uid}/series/{series}", STORED_SYNTAX)
    _expect_instances(found, study.instances_of(series))


@check("10.4.1.1.1/study", "Retrieve a study: one part per instance")
def retrieve_whole_study(context: Context) -> None:
    study = _study(context)
    found = _retrieve(context, f"/studies/{study.study_instance_uid}", STORED_SYNTAX)
    _expect_instances(found, study.instances_of())


@check("10.4.1.1.1/not-found-404", "Retrieving a study the archive does not hold returns 404")
def retrieve_not_found(context: Context) -> None:
    response = context.archive.get(f"/studies/{new_uid()}", accept=STORED_SYNTAX)
    expect(response.status_code == 404, "404 (Not Found)", describe(response))


@check(
    "8.7.3.5.2/any-transfer-syntax-unchanged",
    "transfer-syntax=* returns each instance byte for byte as stored",
    Level.RECOMMENDED,
)
def any_transfer_syntax_unchanged(context: Context) -> str:
    study = _study(context)
    checked = []
    for role in ("ct", "compressed"):
        if role not in study.stored:
            continue
        instance = study.stored[role]
        (part,) = _retrieve(context, instance.path, STORED_SYNTAX)
        expect(
            part.content == instance.data,
            f"the {len(instance.data)} bytes stored for the {role} instance",
            f"{len(part.content)} bytes that differ",
        )
        syntax = part.media_type.param("transfer-syntax")
        expect(
            syntax in (None, instance.transfer_syntax_uid),
            f"the part labelled with the stored transfer syntax {instance.transfer_syntax_uid}",
            syntax,
        )
        checked.append(role)
    return f"checked: {', '.join(checked)}"


def _default_syntax_part(context: Context, instance: Instance) -> tuple[Part, Dataset]:
    found = _retrieve(context, instance.path, DICOM_MULTIPART)
    expect(len(found) == 1, "one part", f"{len(found)} parts")
    dataset = read_dataset(found[0].content)
    syntax = str(dataset.file_meta.get("TransferSyntaxUID", ""))
    expect(
        syntax == media.EXPLICIT_VR_LITTLE_ENDIAN,
        f"Explicit VR Little Endian ({media.EXPLICIT_VR_LITTLE_ENDIAN}) when no transfer syntax is asked for",
        syntax or "no TransferSyntaxUID in the File Meta Information",
    )
    expect(
        dataset.original_encoding == (False, True),
        "an explicit VR little endian data set",
        dataset.original_encoding,
    )
    label = found[0].media_type.param("transfer-syntax")
    expect(label in (None, media.EXPLICIT_VR_LITTLE_ENDIAN), "the part labelled with that syntax", label)
    return found[0], dataset


@check(
    "8.7.3.5.2/default-explicit-vr-little-endian",
    "Without transfer-syntax, an Implicit VR instance comes back in Explicit VR Little Endian",
)
def default_explicit_vr_little_endian(context: Context) -> None:
    instance = _study(context).instance("implicit")
    _, dataset = _default_syntax_part(context, instance)
    expect(
        bytes(dataset.PixelData) == bytes(instance.dataset.PixelData),
        "the same pixel data",
        "different pixel data",
    )


@check(
    "8.7.3.5.2/default-decompresses-lossless",
    "Without transfer-syntax, a JPEG 2000 lossless instance comes back decompressed",
)
def default_decompresses_lossless(context: Context) -> str:
    instance = _study(context).instance("compressed")
    _, dataset = _default_syntax_part(context, instance)
    frames = int(instance.dataset.NumberOfFrames)
    size = _frame_size(instance.dataset) * frames
    expect(
        len(dataset.PixelData) in (size, size + 1),
        f"{size} bytes of native pixel data",
        len(dataset.PixelData),
    )
    try:
        original = instance.dataset.pixel_array
    except Exception:  # noqa: BLE001 - without a local JPEG 2000 decoder only the size can be compared
        return "compared the size only: no JPEG 2000 decoder is installed here"
    expect((dataset.pixel_array == original).all(), "the pixel values of the original", "other pixel values")
    return "pixel values equal the original's"


@check(
    "8.7.7/transfer-syntax-unavailable",
    "A transfer syntax the archive cannot produce returns 406, or the default Explicit VR Little Endian",
)
def transfer_syntax_unavailable(context: Context) -> str:
    ct = _study(context).ct
    accept = f"{DICOM_MULTIPART}; transfer-syntax={media.MPEG2_MAIN_PROFILE}"
    response = context.archive.get(ct.path, accept=accept)
    if response.status_code == 406:
        return "returned 406"
    expect(response.status_code == 200, "406 (Not Acceptable) or 200 with the default", describe(response))
    (part,) = parts(response)
    syntax = str(read_dataset(part.content).file_meta.get("TransferSyntaxUID", ""))
    expect(syntax == media.EXPLICIT_VR_LITTLE_ENDIAN, "the default Explicit VR Little Endian", syntax)
    return "returned 200 with the default transfer syntax"


@check(
    "8.7.7/media-type-unsupported",
    "An Accept the instance resource cannot meet returns 406, or the default media type",
)
def media_type_unsupported(context: Context) -> str:
    ct = _study(context).ct
    response = context.archive.get(ct.path, accept="text/html")
    if response.status_code == 406:
        return "returned 406"
    expect(response.status_code == 200, "406 (Not Acceptable) or 200 with the default", describe(response))
    expect(
        media_type_of(response) == media.MULTIPART_RELATED,
        "the default multipart/related",
        describe(response),
    )
    return "returned 200 with the default media type"


def _metadata(context: Context, path: str) -> list[dict[str, Any]]:
    response = context.archive.get(path + "/metadata", accept=media.DICOM_JSON)
    expect(response.status_code == 200, f"200 (OK) for GET {path}/metadata", describe(response))
    expect(media_type_of(response) == media.DICOM_JSON, "application/dicom+json", describe(response))
    body = json_body(response)
    expect(isinstance(body, list), "a DICOM JSON array", describe(response))
    return body  # type: ignore[no-any-return]


def _expect_metadata(found: list[dict[str, Any]], expected: list[Instance]) -> None:
    uids = sorted(dicom_json.uids(found, dicom_json.SOP_INSTANCE_UID))
    expect(uids == sorted(i.sop_instance_uid for i in expected), "one data set per instance", uids)
    for dataset in found:
        patient_id = dicom_json.text(dataset, "00100020")
        expect(patient_id == expected[0].dataset.PatientID, "the PatientID stored", patient_id)


@check("10.4.1.1.2/instance-metadata", "Retrieve the metadata of an instance as DICOM JSON")
def instance_metadata(context: Context) -> None:
    ct = _study(context).ct
    _expect_metadata(_metadata(context, ct.path), [ct])


@check("10.4.1.1.2/series-metadata", "Retrieve the metadata of a series: one data set per instance")
def series_metadata(context: Context) -> None:
    study = _study(context)
    series = study.ct.series_instance_uid
    found = _metadata(context, f"/studies/{study.study_instance_uid}/series/{series}")
    _expect_metadata(found, study.instances_of(series))


@check("10.4.1.1.2/study-metadata", "Retrieve the metadata of a study: one data set per instance")
def study_metadata(context: Context) -> None:
    study = _study(context)
    _expect_metadata(_metadata(context, f"/studies/{study.study_instance_uid}"), study.instances_of())


@check("10.4.1.1.2/metadata-not-found-404", "Metadata of a study the archive does not hold returns 404")
def metadata_not_found(context: Context) -> None:
    response = context.archive.get(f"/studies/{new_uid()}/metadata", accept=media.DICOM_JSON)
    expect(response.status_code == 404, "404 (Not Found)", describe(response))


def _pixel_data_element(context: Context) -> tuple[str, dict[str, Any]]:
    ct = _study(context).ct
    (dataset,) = _metadata(context, ct.path)
    element = dataset.get(dicom_json.PIXEL_DATA)
    expect(isinstance(element, dict), "PixelData (7FE0,0010) in the metadata", "no PixelData")
    return context.archive.url(ct.path + "/metadata"), element  # type: ignore[return-value]


@check("10.4.1.1.2/pixel-data-bulkdata-uri", "Metadata gives PixelData as a BulkDataURI", Level.RECOMMENDED)
def pixel_data_bulkdata_uri(context: Context) -> None:
    _, element = _pixel_data_element(context)
    expect("BulkDataURI" in element, "a BulkDataURI for PixelData", sorted(element))


@check("10.4.1.1.1/bulkdata", "The BulkDataURI of PixelData retrieves the pixel data")
def bulkdata(context: Context) -> None:
    metadata_url, element = _pixel_data_element(context)
    if "BulkDataURI" not in element:
        raise NotApplicable("the metadata gives PixelData without a BulkDataURI")
    # A relative BulkDataURI is resolved against the URL of the metadata that contains it.
    url = urljoin(metadata_url, str(element["BulkDataURI"]))
    found = _retrieve(context, url, OCTET_STREAM_MULTIPART)
    expected = bytes(_study(context).ct.dataset.PixelData)
    expect(len(found) >= 1, "at least one part", "none")
    expect(
        found[0].content == expected,
        f"the {len(expected)} bytes of PixelData",
        f"{len(found[0].content)} bytes",
    )


def _frames_path(instance: Instance, numbers: str) -> str:
    return f"{instance.path}/frames/{numbers}"


@check("10.4.1.1.1/frames-uncompressed", "Retrieve frames 1 and 3 of an uncompressed multi-frame instance")
def frames_uncompressed(context: Context) -> None:
    instance = _study(context).instance("multiframe")
    found = _retrieve(context, _frames_path(instance, "1,3"), OCTET_STREAM_MULTIPART)
    expect(len(found) == 2, "two parts", f"{len(found)} parts")
    for part, number in zip(found, (1, 3), strict=True):
        expected = _native_frame(instance, number)
        expect(
            part.content == expected,
            f"the {len(expected)} bytes of frame {number}",
            f"{len(part.content)} bytes",
        )


@check("10.4.1.1.1/frames-order", "Frames come back in the order asked: 3,1", Level.RECOMMENDED)
def frames_order(context: Context) -> None:
    instance = _study(context).instance("multiframe")
    found = _retrieve(context, _frames_path(instance, "3,1"), OCTET_STREAM_MULTIPART)
    contents = [part.content for part in found]
    expect(
        contents == [_native_frame(instance, 3), _native_frame(instance, 1)],
        "frame 3, then frame 1",
        f"{len(found)} parts in another order",
    )


@check("10.4.1.1.1/frames-out-of-range", "A frame number past the last frame returns 400 or 404")
def frames_out_of_range(context: Context) -> None:
    instance = _study(context).instance("multiframe")
    number = int(instance.dataset.NumberOfFrames) + 1
    response = context.archive.get(_frames_path(instance, str(number)), accept=OCTET_STREAM_MULTIPART)
    expect(response.status_code in (400, 404), f"400 or 404 for frame {number}", describe(response))


@check(
    "10.4.1.1.1/frames-any-transfer-syntax",
    "Frames of a compressed instance with transfer-syntax=*, as OHIF asks for them",
)
def frames_any_transfer_syntax(context: Context) -> None:
    instance = _study(context).instance("compressed")
    found = _retrieve(context, _frames_path(instance, "2"), FRAMES_AS_STORED)
    expect(len(found) == 1, "one part", f"{len(found)} parts")
    expect(bool(found[0].content), "a frame", "an empty part")
    expect(bool(found[0].media_type.type), "a Content-Type on the part", found[0].headers)


@check(
    "10.4.1.1.1/frames-compressed-as-stored",
    "With transfer-syntax=*, a compressed frame comes back as stored and labelled with its syntax",
    Level.RECOMMENDED,
)
def frames_compressed_as_stored(context: Context) -> str:
    instance = _study(context).instance("compressed")
    (part,) = _retrieve(context, _frames_path(instance, "2"), FRAMES_AS_STORED)
    expected = _stored_frame(instance, 2)
    # A frame's last fragment may carry one byte of padding to an even length.
    expect(
        part.content == expected or part.content.rstrip(b"\0") == expected.rstrip(b"\0"),
        f"the {len(expected)} bytes of frame 2 as stored",
        f"{len(part.content)} bytes",
    )
    syntax = part.media_type.param("transfer-syntax")
    expect(
        syntax == instance.transfer_syntax_uid,
        f"transfer-syntax={instance.transfer_syntax_uid} on the part",
        part.headers,
    )
    return f"part Content-Type: {part.headers.get('content-type')}"


@check(
    "10.4.1.1.1/frames-decompressed",
    "Without transfer-syntax, a compressed frame comes back as native pixels",
    Level.RECOMMENDED,
)
def frames_decompressed(context: Context) -> None:
    instance = _study(context).instance("compressed")
    (part,) = _retrieve(context, _frames_path(instance, "2"), OCTET_STREAM_MULTIPART)
    size = _frame_size(instance.dataset)
    expect(len(part.content) == size, f"{size} bytes of native pixels", f"{len(part.content)} bytes")
