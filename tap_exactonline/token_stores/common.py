"""What every token store shares: waiting for its lock, and one-line reasons."""

from __future__ import annotations

import time
from collections.abc import Callable

from tap_exactonline.tokens import TokenRefreshError

# A run holds the store's lock only for one token call (bounded by request_timeout).
LOCK_WAIT_SECONDS = 180.0
LOCK_POLL_SECONDS = 0.05


def wait_for_lock(try_lock: Callable[[], bool], where: str) -> None:
    """Poll a non-blocking lock; a run holds it only for one token call, so waiting long means
    something is wrong: say so instead of hanging."""
    deadline = time.monotonic() + LOCK_WAIT_SECONDS
    while not try_lock():
        if time.monotonic() > deadline:
            raise TokenRefreshError(
                f"{where}: another run has held its lock for {LOCK_WAIT_SECONDS:.0f} s"
            )
        time.sleep(LOCK_POLL_SECONDS)


def first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
