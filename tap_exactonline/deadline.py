"""An overall deadline for one HTTP exchange, connect to last byte.

requests' `timeout` bounds each wait for the next byte, not the exchange: a token endpoint,
proxy or API that trickles its answer one byte a second keeps a call alive for hours.
`DeadlineSession.send` arms a real-time timer (SIGALRM) for the whole exchange. When it fires
while the call is still waiting on the network, the wait ends with `CallDeadlineExceeded`;
when it fires anywhere else (the answer is complete and being handed back) it waits a moment
and looks again, so an answer that did arrive is never thrown away by the timer.

The tap sends one request at a time from the main thread (Exact requires sequential calls), the
only thread a signal can interrupt. Called from another thread, only requests' per-read
timeout applies.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any

import requests

# Code waiting on the network, where ending the wait loses nothing that had arrived.
_NETWORK_MODULES = ("socket.py", "ssl.py", "http/client.py", "/urllib3/", "selectors.py")
_RECHECK_SECONDS = 0.05


class CallDeadlineExceeded(Exception):
    """No complete answer within the deadline. Deliberately not an OSError: urllib3 would wrap
    one into a connection error and hide what happened."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"no complete answer within {seconds:g} s")
        self.seconds = seconds


def _waiting_on_network(frame: FrameType | None) -> bool:
    filename = frame.f_code.co_filename.replace("\\", "/") if frame is not None else ""
    return any(module in filename for module in _NETWORK_MODULES)


class DeadlineSession(requests.Session):
    """A requests session whose `timeout` is also the limit for the whole exchange."""

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        timeout = kwargs.get("timeout")
        seconds = timeout if isinstance(timeout, (int, float)) else None
        if (
            not seconds
            or seconds <= 0
            or threading.current_thread() is not threading.main_thread()
            or signal.getitimer(signal.ITIMER_REAL)[0] > 0  # an outer deadline is running
        ):
            return super().send(request, **kwargs)
        armed = True

        def expire(signum: int, frame: FrameType | None) -> None:
            if not armed:
                return
            if _waiting_on_network(frame):
                raise CallDeadlineExceeded(seconds)
            signal.setitimer(signal.ITIMER_REAL, _RECHECK_SECONDS)

        previous = signal.signal(signal.SIGALRM, expire)
        signal.setitimer(signal.ITIMER_REAL, seconds)
        try:
            return super().send(request, **kwargs)
        finally:
            armed = False
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
