"""DICOM JSON of common data elements straight from their encoded bytes.

pydicom turns a raw element into a DataElement (value conversion, validation hooks, private
creator lookup) and then into DICOM JSON. For the plain cases of the common VRs,
:func:`raw_element_json` builds the same JSON from the bytes directly. Parsing the benchmark CT
instance (185 elements) took 3.9 ms of CPU with pydicom's conversion and 1.6 ms with this module
(pydicom 3.0.2, Python 3.11, one core of a 2-core Intel Xeon). The function returns None for every
other case: another VR, implicit VR or big endian encoding, escape sequences, a value pydicom
would warn about or reject, or pydicom options other than the server's. The caller then asks
pydicom.

Each rule below repeats what pydicom 3.0.2 does for that VR in ``pydicom.values`` and
``DataElement.to_json_dict``. ``tests/unit/dicom/test_raw_json.py`` compares the two on every
readable file of the shared test files and on edge cases, so a pydicom upgrade that changes a
rule fails there.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable, MutableSequence
from typing import Any

import pydicom.config
import pydicom.hooks
import pydicom.valuerep
from pydicom.charset import default_encoding
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import _LUT_DESCRIPTOR_TAGS

ESCAPE = 0x1B
"""ESC, which starts an ISO 2022 code extension that switches the character set inside a value."""

_NUMBER_FORMATS = {"US": "H", "SS": "h", "UL": "L", "SL": "l", "UV": "Q", "SV": "q", "FL": "f", "FD": "d"}
_INTEGER_STRING = re.compile(r" *[+-]?[0-9]{1,15} *")
"""IS values read exactly as an int; longer digit strings may not survive pydicom's float check."""
_DECIMAL_STRING = re.compile(r" *[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)? *")
"""DS values that Python's float() reads as pydicom's DSfloat does; no NaN, Infinity or '_'."""


def fast_path_applies() -> bool:
    """Return whether pydicom runs with the options :func:`raw_element_json` reproduces.

    These are the server's options (``configure_pydicom``): no validation, no element callback,
    the default conversion hooks, and strings (not numpy, Decimal or datetime) for DS, IS, DA,
    DT and TM values.
    """
    config = pydicom.config
    hooks = pydicom.hooks.hooks
    return (
        config.settings.reading_validation_mode == config.IGNORE
        and config.data_element_callback is None
        and not config.datetime_conversion
        and not config.use_DS_numpy
        and not config.use_IS_numpy
        and pydicom.valuerep.DSclass is pydicom.valuerep.DSfloat
        and hooks.raw_element_vr is pydicom.hooks.raw_element_vr
        and hooks.raw_element_value is pydicom.hooks.raw_element_value
        and not hooks.raw_element_kwargs
    )


def dataset_encodings(dataset: Dataset) -> list[str]:
    """Return the Python encodings pydicom decodes the text values of ``dataset`` with."""
    encodings: str | MutableSequence[str] = dataset.original_character_set or dataset._character_set
    if isinstance(encodings, str):
        return [encodings]
    return list(encodings) or [default_encoding]


def raw_element_json(raw: RawDataElement, encodings: list[str]) -> dict[str, Any] | None:
    """Return the DICOM JSON of an explicit VR little endian element, or None to leave it to pydicom.

    ``encodings`` is :func:`dataset_encodings` of the element's data set. The caller must have
    checked :func:`fast_path_applies`.
    """
    vr = raw.VR
    value = raw.value
    if value is None or raw.is_implicit_VR or not raw.is_little_endian or vr is None:
        return None
    if raw.tag in _LUT_DESCRIPTOR_TAGS:
        # pydicom adds 65536 to a negative first value of a LUT Descriptor.
        return None

    convert = _CONVERTERS.get(vr)
    if convert is None:
        return None
    if not value:
        return {"vr": vr}
    values = convert(value, vr, encodings)
    if values is None:
        return None
    if not values:
        return {"vr": vr}
    return {"vr": vr, "Value": values}


def _numbers(value: bytes, vr: str, _encodings: list[str]) -> list[Any] | None:
    code = _NUMBER_FORMATS[vr]
    size = struct.calcsize(f"={code}")
    if len(value) % size:
        # pydicom raises, or converts the element to UN when configured to.
        return None
    return list(struct.unpack(f"<{len(value) // size}{code}", value))


def _split(text: str) -> list[str]:
    """Return the values of a multi-valued string; one empty value counts as none, as in pydicom."""
    items = text.split("\\")
    if len(items) == 1 and not items[0]:
        return []
    return items


def _code_string(value: bytes, _vr: str, _encodings: list[str]) -> list[Any] | None:
    # AS, CS, DA, DT and TM: trailing spaces and NULs of the whole value are dropped.
    return _split(value.decode(default_encoding).rstrip(" \x00"))


def _application_entity(value: bytes, _vr: str, _encodings: list[str]) -> list[Any] | None:
    items = [item.strip() for item in value.decode(default_encoding).split("\\")]
    if len(items) == 1 and not items[0]:
        return []
    return items


def _unique_identifier(value: bytes, _vr: str, _encodings: list[str]) -> list[Any] | None:
    items = [item.strip() for item in value.decode(default_encoding).rstrip(" \x00").split("\\")]
    if len(items) == 1 and not items[0]:
        return []
    return items


def _universal_resource(value: bytes, _vr: str, _encodings: list[str]) -> list[Any] | None:
    text = value.decode(default_encoding).rstrip()
    return [text] if text else []


def _integer_string(value: bytes, _vr: str, _encodings: list[str]) -> list[Any] | None:
    items = _split(value.decode(default_encoding).rstrip(" \x00"))
    if not all(_INTEGER_STRING.fullmatch(item) for item in items):
        return None
    return [int(item) for item in items]


def _decimal_string(value: bytes, _vr: str, _encodings: list[str]) -> list[Any] | None:
    items = _split(value.decode(default_encoding).strip().rstrip(" \x00"))
    if not all(_DECIMAL_STRING.fullmatch(item) for item in items):
        return None
    return [float(item) for item in items]


def _decode_text(value: bytes, encodings: list[str]) -> str | None:
    """Decode a value of a VR that follows Specific Character Set, or None where pydicom would warn."""
    if ESCAPE in value:
        return None
    try:
        return value.decode(encodings[0])
    except (LookupError, UnicodeError):
        return None


def _text(value: bytes, _vr: str, encodings: list[str]) -> list[Any] | None:
    # SH, LO and UC: each value loses its trailing spaces and NULs.
    text = _decode_text(value, encodings)
    if text is None:
        return None
    items = [item.rstrip("\x00 ") for item in text.split("\\")]
    if len(items) == 1 and not items[0]:
        return []
    return items


def _single_text(value: bytes, _vr: str, encodings: list[str]) -> list[Any] | None:
    # ST, LT and UT hold one value, in which a backslash is an ordinary character.
    text = _decode_text(value, encodings)
    if text is None:
        return None
    text = text.rstrip("\x00 ")
    return [text] if text else []


_Converter = Callable[[bytes, str, list[str]], list[Any] | None]

_CONVERTERS: dict[str, _Converter] = {
    **dict.fromkeys(_NUMBER_FORMATS, _numbers),
    **dict.fromkeys(("AS", "CS", "DA", "DT", "TM"), _code_string),
    "AE": _application_entity,
    "UI": _unique_identifier,
    "UR": _universal_resource,
    "IS": _integer_string,
    "DS": _decimal_string,
    **dict.fromkeys(("SH", "LO", "UC"), _text),
    **dict.fromkeys(("ST", "LT", "UT"), _single_text),
}
