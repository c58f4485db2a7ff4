"""SIGTERM and SIGINT: stop promptly, but never between Exact's token answer and its save.

Airflow, Kubernetes and systemd stop a job with SIGTERM. Arriving while a refresh POST is in
flight, an immediate exit would lose the answer: Exact has already spent the old refresh token,
and the new one would reach neither the token store nor the state. So the refresh holds
termination (`GUARD.hold()`) from the POST until the answer is saved; a signal that arrives
meanwhile is kept and acted on right after. Either way the run ends with a non-zero exit code,
because it did not finish.
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
        self._pending: int | None = None
        self._stop: Callable[[int], None] | None = None

    def install(self, stop: Callable[[int], None]) -> None:
        """`stop(signum)` ends the run (writes the state, raises SystemExit)."""
        self._stop = stop

    def handle(self, signum: int) -> None:
        """Called from the signal handler."""
        if self._holds:
            if self._pending is None:
                LOGGER.warning(
                    "%s received while a refreshed Exact token is being saved: stopping right "
                    "after the save.",
                    signal.Signals(signum).name,
                )
            self._pending = signum
            return
        self._stop_now(signum)

    @contextmanager
    def hold(self) -> Iterator[None]:
        self._holds += 1
        try:
            yield
        finally:
            self._holds -= 1
            if not self._holds and self._pending is not None:
                signum, self._pending = self._pending, None
                self._stop_now(signum)

    def _stop_now(self, signum: int) -> None:
        if self._stop is None:
            raise SystemExit(128 + signum)
        self._stop(signum)


GUARD = TerminationGuard()
