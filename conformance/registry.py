"""The checks of the suite: identifiers, levels, outcomes, and how one check is run.

A check is a function that takes the run's :class:`~conformance.context.Context`, sends its
requests, and either returns (pass, with an optional note) or raises :class:`CheckFailed` or
:class:`NotApplicable`. Its identifier starts with the PS3.18 section it tests
("10.5.3/partial-202"), so a reader can look the rule up and ``--select 10.5*`` picks a section.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

import httpx

if TYPE_CHECKING:
    from conformance.context import Context


class Level(StrEnum):
    """The strength of a check.

    A REQUIRED check tests a "shall" of PS3.18, or of HTTP where PS3.18 relies on it; only a
    failed required check makes the run fail. A RECOMMENDED check tests behaviour that the
    standard allows but does not demand, or that viewers and other archives rely on.
    """

    REQUIRED = "required"
    RECOMMENDED = "recommended"


class Outcome(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    NOT_APPLICABLE = "n/a"


class CheckFailed(Exception):
    """The response differs from what the check expects; the message gives both."""


class NotApplicable(Exception):
    """The check does not apply to this run, for the reason given (no --origin, no test file)."""


class SetupFailed(Exception):
    """The data a check needs could not be stored in the archive."""


CheckFunction = Callable[["Context"], "str | None"]


@dataclass(frozen=True)
class Check:
    """One check: ``id`` is "<PS3.18 section>/<slug>", ``name`` describes what is checked."""

    id: str
    name: str
    level: Level
    function: CheckFunction

    @property
    def section(self) -> str:
        return self.id.split("/", 1)[0]


@dataclass(frozen=True)
class Result:
    check: Check
    outcome: Outcome
    detail: str = ""

    @property
    def failed_required(self) -> bool:
        return self.outcome is Outcome.FAIL and self.check.level is Level.REQUIRED


CHECKS: list[Check] = []
"""Every registered check, in the order the modules register them."""


def check(
    check_id: str, name: str, level: Level = Level.REQUIRED
) -> Callable[[CheckFunction], CheckFunction]:
    """Register the decorated function as a check."""

    def register(function: CheckFunction) -> CheckFunction:
        if any(existing.id == check_id for existing in CHECKS):
            raise ValueError(f"two checks have the id {check_id!r}; give each check its own id")
        CHECKS.append(Check(check_id, name, level, function))
        return function

    return register


def expect(condition: bool, expected: str, got: object) -> None:
    """Raise :class:`CheckFailed` saying what was expected and what came back, unless ``condition``."""
    if not condition:
        raise CheckFailed(f"expected {expected}; got {got}")


def run_check(check: Check, context: Context) -> Result:
    """Run one check and turn what it raises into a result, so that no check stops the run."""
    try:
        note = check.function(context)
    except CheckFailed as failure:
        return Result(check, Outcome.FAIL, str(failure))
    except NotApplicable as reason:
        return Result(check, Outcome.NOT_APPLICABLE, str(reason))
    except SetupFailed as failure:
        return Result(check, Outcome.FAIL, f"could not prepare the data for this check: {failure}")
    except httpx.HTTPError as error:
        return Result(check, Outcome.FAIL, f"the request failed: {type(error).__name__}: {error}")
    except Exception as error:  # noqa: BLE001 - an odd response must not stop the remaining checks
        return Result(
            check, Outcome.FAIL, f"the check could not read the response: {type(error).__name__}: {error}"
        )
    return Result(check, Outcome.PASS, note or "")
