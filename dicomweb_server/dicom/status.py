"""Failure and warning reasons of the Store Instances Response Module (PS3.18 Annex I).

Values are written in hexadecimal, as the standard tables write them.
"""

from __future__ import annotations

from enum import IntEnum


class FailureReason(IntEnum):
    """Values of (0008,1197) *Failure Reason* used by this archive.

    PS3.18 Table I.2-2 defines the ranges; PS3.7 Annex C defines the general codes that the
    table allows as "additional codes".
    """

    PROCESSING_FAILURE = 0x0110
    """The instance could not be stored because of an error inside the archive."""

    DUPLICATE_SOP_INSTANCE = 0x0111
    """An instance with this SOP Instance UID and other content is already stored (PS3.7 C.4)."""

    SOP_CLASS_NOT_SUPPORTED = 0x0122
    """The SOP Class is one the archive does not store."""

    NOT_AUTHORIZED = 0x0124
    """The requester may not store this instance (PS3.7 C.4, "Refused: Not Authorized")."""

    OUT_OF_RESOURCES = 0xA700
    """The object store or the spool folder has no room, or the part is larger than allowed."""

    DATA_SET_DOES_NOT_MATCH = 0xA900
    """A required attribute is missing, or the instance does not belong where it was sent."""

    CANNOT_UNDERSTAND = 0xC000
    """The part is not a DICOM data set the archive can parse, or a UID cannot be used."""

    TRANSFER_SYNTAX_NOT_SUPPORTED = 0xC122
    """The transfer syntax of the part is not one the archive can read."""


class WarningReason(IntEnum):
    """Values of (0008,1196) *Warning Reason* (PS3.18 Table I.2-1)."""

    COERCION_OF_DATA_ELEMENTS = 0xB000
    DATA_SET_DOES_NOT_MATCH_SOP_CLASS = 0xB007
    ELEMENTS_DISCARDED = 0xB006
