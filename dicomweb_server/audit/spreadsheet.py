"""CSV text of the reports that a spreadsheet opens as data, never as formulas.

The cells contain values from DICOM headers and from what administrators typed: PatientID,
IssuerOfPatientID, AccessionNumber, StudyDescription, organisation names and purposes.
Spreadsheet programs evaluate a cell that starts with ``=``, ``+``, ``-`` or ``@`` as a
formula, and some do so after a leading tab or carriage return. A PatientID such as
``=HYPERLINK(...)`` would then run when the report is opened. Such a text cell is written with
a leading apostrophe, which spreadsheets read as "this cell is text" and do not display.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def text_cell(value: object) -> object:
    """Return ``value`` with an apostrophe in front when it is text a spreadsheet would evaluate."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def csv_text(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """Write ``header`` and ``rows`` as CSV, each text cell neutralised by ``text_cell``."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    for row in rows:
        writer.writerow([text_cell(value) for value in row])
    return buffer.getvalue()
