"""DICOM data without HTTP or storage: parsing, validation, DICOM JSON, matching, frames, rendering.

Nothing in this package imports another package of the server.
"""
