"""Log lines for stored instances that a retrieval cannot decode, with repeats counted.

A viewer requests the same broken instance again and again, so each server process logs each
(route, instance, error type) once per REPORT_INTERVAL, and the next line gives how many
failures it left out. Beyond MAX_TRACKED distinct failures the oldest is forgotten, and its
next failure is logged again at once. The lines name the internal instance key, not its UIDs,
and the error type, not its message, which may quote values of the data set.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable

logger = logging.getLogger(__name__)

REPORT_INTERVAL = 600.0
"""Seconds during which repeats of one failure are counted instead of logged."""

MAX_TRACKED = 1000
"""Failures whose repeats are counted at one time; the oldest is dropped beyond it."""


class DecodeFailureLog:
    """Logs decode failures at WARNING, once per failure and interval."""

    def __init__(
        self, interval: float = REPORT_INTERVAL, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._interval = interval
        self._clock = clock
        self._seen: OrderedDict[tuple[str, int, str], tuple[float, int]] = OrderedDict()

    def report(self, route: str, instance_key: int, error: BaseException) -> None:
        """Log that ``route`` could not decode the instance ``instance_key``, unless logged lately.

        The type named is that of the error's cause when it has one: the decoder's own error
        rather than the archive's wrapper around it.
        """
        error_type = type(error.__cause__ or error).__name__
        key = (route, instance_key, error_type)
        now = self._clock()
        last = self._seen.get(key)
        if last is not None and now - last[0] < self._interval:
            self._seen[key] = (last[0], last[1] + 1)
            return

        self._seen[key] = (now, 0)
        self._seen.move_to_end(key)
        while len(self._seen) > MAX_TRACKED:
            self._seen.popitem(last=False)
        repeats = last[1] if last is not None else 0
        logger.warning(
            "%s: cannot decode instance %d (%s); %d more failure(s) of it since the previous line",
            route,
            instance_key,
            error_type,
            repeats,
        )


decode_failures = DecodeFailureLog()
"""The log of this process's decode failures."""
