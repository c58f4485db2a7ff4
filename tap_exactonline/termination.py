"""SIGTERM and SIGINT: stop promptly, but never in the middle of something that must be whole.

Airflow, Kubernetes and systemd stop a job with SIGTERM. Two moments must not be cut short:
- a refresh POST in flight: Exact has already spent the old refresh token as it answers, and an
  immediate exit would save the new one neither in the token store nor in the state;
- a write of output lines: with a loader slower than the tap the write blocks on a full pipe,
  and a stop that wrote its STATE then would follow half a line the target cannot parse.
Both hold termination (`GUARD.hold(...)`); a signal that arrives meanwhile is kept and acted on
right after. Either way the run ends with a non-zero exit code, because it did not finish.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager

LOGGER = logging.getLogger("tap_exactonline.termination")


class TerminationGuard:
    def __init__(self) -> None:
        self._holds = 0
        self._why = ""
        self._pending: int | None = None
        self._stop: Callable[[int], None] | None = None

    def install(self, stop: Callable[[int], None]) -> None:
        """`stop(signum)` ends the run (writes the state, raises SystemExit)."""
        self._stop = stop

    def handle(self, signum: int) -> None:
        """Called from the signal handler."""
        if self._holds:
            if self._pending is None and self._why:
                LOGGER.warning(
                    "%s received while %s: stopping right after.",
                    signal.Signals(signum).name,
                    self._why,
                )
            self._pending = signum
            return
        self._stop_now(signum)

    @contextmanager
    def hold(self, why: str = "") -> Iterator[None]:
        """Signals wait until the block ends; `why`, when given, is logged if one does."""
        self._holds += 1
        outer_why, self._why = self._why, why or self._why
        try:
            yield
        finally:
            self._why = outer_why
            self._holds -= 1
            if not self._holds and self._pending is not None:
                signum, self._pending = self._pending, None
                self._stop_now(signum)

    def _stop_now(self, signum: int) -> None:
        if self._stop is None:
            raise SystemExit(128 + signum)
        self._stop(signum)


GUARD = TerminationGuard()
