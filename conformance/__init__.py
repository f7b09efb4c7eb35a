"""A DICOMweb conformance suite that runs against the base URL of any archive.

``python -m conformance --base-url URL`` stores real DICOM files with fresh UIDs through
STOW-RS, then checks STOW-RS, QIDO-RS, WADO-RS, content negotiation, CORS and Retrieve
Capabilities against DICOM PS3.18 over plain HTTP. Each check carries the PS3.18 section it
tests. The suite never deletes anything, so it can run against an archive that contains other data.
"""

__version__ = "0.1.0"
