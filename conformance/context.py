"""The state shared by the checks of one run: the archive, the test files, and data stored once."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from conformance.archive import Archive
from conformance.registry import SetupFailed
from conformance.testdata import DataFolder, Patient

T = TypeVar("T")

PATIENT_NAME = "Müller^Zoë"
"""The name every patient of the suite has; its accents exercise case- and accent-folding."""


@dataclass
class Context:
    """The state of one run.

    ``run_id`` makes the run's PatientIDs unique ("CONF-1a2b3c4d5e-Q"), so that its searches
    match only what it stored. ``origin`` is the browser origin for the CORS checks, or None.
    """

    archive: Archive
    files: DataFolder
    origin: str | None = None
    run_id: str = field(default_factory=lambda: secrets.token_hex(5))
    _fixtures: dict[Callable[..., object], object] = field(default_factory=dict)

    def patient(self, purpose: str) -> Patient:
        """Return the run's patient for one group of checks ("S" for STOW, "Q" for QIDO, ...)."""
        return Patient(f"CONF-{self.run_id}-{purpose}", PATIENT_NAME)

    def fixture(self, build: Callable[[Context], T]) -> T:
        """Build shared data once per run; a failed build is remembered and raised again."""
        if build not in self._fixtures:
            try:
                self._fixtures[build] = build(self)
            except SetupFailed as failure:
                self._fixtures[build] = failure
        found = self._fixtures[build]
        if isinstance(found, SetupFailed):
            raise found
        return found  # type: ignore[return-value]
