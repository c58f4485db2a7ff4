"""What a run tells a person while it reads and when it ends: per stream and division, rows,
pages, calls, seconds and how the read ended.

- a progress line every `PROGRESS_SECONDS` or `PROGRESS_PAGES` pages of one stream and
  division, with the calls left today and a rate;
- one line when a stream ends in a division (a child stream's when its parent's read ends);
- at the end of every run, a table of stream x division and the calls left per division.

No estimate of what remains: Exact counts rows only with `$count` (a call of its own) or
`$inlinecount` (not documented for the sync and bulk APIs, where the long reads are).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

PROGRESS_SECONDS = 30.0
PROGRESS_PAGES = 10

DONE = "done"
NOT_DUE = "skipped: read recently"  # a full-table stream inside its full_table_interval
SKIPPED_FOR_BUDGET = "skipped: daily budget"
STOPPED_FOR_BUDGET = "stopped: daily budget"
REFUSED = "refused"
INACCESSIBLE = "inaccessible"
FAILED = "failed"  # still failing after its retries: the run went on without it
STOPPED = "stopped"  # the run ended while this read was under way
# When a stream ends differently for different parent rows of one division, the worst is shown.
SEVERITY = (
    DONE,
    NOT_DUE,
    SKIPPED_FOR_BUDGET,
    STOPPED_FOR_BUDGET,
    REFUSED,
    INACCESSIBLE,
    FAILED,
    STOPPED,
)


@dataclass
class Tally:
    """One stream in one division."""

    rows: int = 0
    pages: int = 0
    calls: int = 0
    seconds: float = 0.0
    status: str = DONE
    reading_since: float | None = None  # monotonic time the read under way began
    last_line_at: float = 0.0
    pages_at_last_line: int = 0


Key = tuple[str, "int | None"]


def described(stream: str, division: int | None) -> str:
    """One stream's read in one division, as log lines name it: `journals (division 1001)`."""
    return stream if division is None else f"{stream} (division {division})"


def counted(number: int, noun: str) -> str:
    return f"{number:,} {noun}" + ("" if number == 1 else "s")


class RunReport:
    def __init__(
        self,
        logger: logging.Logger,
        calls_left: Callable[[int | None], int | None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._calls_left = calls_left
        self._clock = clock
        self._tallies: dict[Key, Tally] = {}
        # Divisions in the order the run met them (for the calls-left line).
        self._divisions: dict[int, None] = {}

    def _tally(self, stream: str, division: int | None) -> Tally:
        if division is not None:
            self._divisions.setdefault(division, None)
        return self._tallies.setdefault((stream, division), Tally())

    @staticmethod
    def _what(stream: str, division: int | None) -> str:
        return stream if division is None else f"{stream}, division {division}"

    def _left(self, division: int | None) -> str:
        left = self._calls_left(division) if division is not None else None
        return "" if left is None else f"; {left:,} calls left today"

    def start(self, stream: str, division: int | None) -> None:
        tally = self._tally(stream, division)
        now = self._clock()
        tally.reading_since = now
        if not tally.pages:
            tally.last_line_at = now

    def calls(self, stream: str, division: int | None, count: int) -> None:
        self._tally(stream, division).calls += count

    def page(self, stream: str, division: int | None, rows: int) -> None:
        tally = self._tally(stream, division)
        tally.rows += rows
        tally.pages += 1
        now = self._clock()
        if (
            now - tally.last_line_at >= PROGRESS_SECONDS
            or tally.pages - tally.pages_at_last_line >= PROGRESS_PAGES
        ):
            tally.last_line_at, tally.pages_at_last_line = now, tally.pages
            seconds = tally.seconds + (now - (tally.reading_since or now))
            rate = f", {tally.rows / seconds:,.0f} rows/s" if seconds > 0 else ""
            self._logger.info(
                "%s: %s rows so far (%d pages, %d calls, %.0f s%s)%s",
                self._what(stream, division),
                f"{tally.rows:,}",
                tally.pages,
                tally.calls,
                seconds,
                rate,
                self._left(division),
            )

    def finish(self, stream: str, division: int | None, status: str, *, tell: bool) -> None:
        """A read of `stream` in `division` ended; `tell`: say so now (a child stream's reads
        end once per parent row and are told with the parent's)."""
        tally = self._tally(stream, division)
        if tally.reading_since is not None:
            tally.seconds += self._clock() - tally.reading_since
            tally.reading_since = None
        if SEVERITY.index(status) > SEVERITY.index(tally.status):
            tally.status = status
        if tell:
            self.tell(stream, division)

    def tell(self, stream: str, division: int | None) -> None:
        tally = self._tallies.get((stream, division))
        if tally is None:
            return
        self._logger.info(
            "%s: %s, %s, %s, %.1f s: %s%s",
            self._what(stream, division),
            counted(tally.rows, "row"),
            counted(tally.pages, "page"),
            counted(tally.calls, "call"),
            tally.seconds,
            tally.status,
            self._left(division),
        )

    def tell_not_due(self, interval_hours: float) -> None:
        """The full-table streams this run left alone, in one line."""
        skipped: dict[str, list[str]] = {}
        for (stream, division), tally in self._tallies.items():
            if tally.status == NOT_DUE:
                skipped.setdefault(stream, []).append("" if division is None else str(division))
        if skipped:
            self._logger.info(
                "Not read in this run, read completely less than %g h ago (full_table_interval): "
                "%s.",
                interval_hours,
                "; ".join(
                    f"{stream} ({', '.join(d for d in divisions if d) or 'once'})"
                    for stream, divisions in sorted(skipped.items())
                ),
            )

    def summary(self, calls_in_all: int) -> None:
        """The table at the end of the run: every stream and division this run touched."""
        now = self._clock()
        for tally in self._tallies.values():
            if tally.reading_since is not None:  # the run ended during this read
                tally.seconds += now - tally.reading_since
                tally.reading_since = None
                tally.status = STOPPED
        if not self._tallies:
            self._logger.info("Run summary: no stream was read.")
            return
        width = max(len(stream) for stream, _ in self._tallies)
        self._logger.info("Run summary:")
        self._logger.info(
            "  %s",
            f"{'stream':<{width}}  {'division':>9}  {'rows':>10}  {'calls':>6}  {'seconds':>8}  "
            "status",
        )
        for (stream, division), tally in sorted(
            self._tallies.items(), key=lambda item: (item[0][0], item[0][1] or 0)
        ):
            self._logger.info(
                "  %s",
                f"{stream:<{width}}  {'' if division is None else division:>9}  "
                f"{tally.rows:>10,}  {tally.calls:>6,}  {tally.seconds:>8.1f}  {tally.status}",
            )
        in_streams = sum(t.calls for t in self._tallies.values())
        self._logger.info(
            "Calls: %s in all; %s of them outside the streams (the login's current/Me, the "
            "division list, SyncTimestamp for start_date, each only when needed)",
            f"{calls_in_all:,}",
            f"{max(calls_in_all - in_streams, 0):,}",
        )
        left = [
            f"division {division}: {left:,}"
            for division in self._divisions
            if (left := self._calls_left(division)) is not None
        ]
        if left:
            self._logger.info("Calls left today: %s", "; ".join(left))
