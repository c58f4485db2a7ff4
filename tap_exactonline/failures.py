"""Stream reads that failed in this run, and the verdict on them at the end.

A stream that fails in a division after its retries (pages that stay wrong, 5xx that do not
stop, an error while reading its rows) is reported once and skipped there: its bookmark stays
where its last complete read left it, and the run goes on with the other streams and divisions.
At the end the run fails, naming each failed read. What concerns every call of the run (the
tokens, the user, Exact's rate limit: `errors.RUN_WIDE_ERRORS`) still ends it at once; so does
Exact failing read after read without one usable answer in between: then Exact is down, not one
report, and every further read would only wait out its retries.
"""

from __future__ import annotations

import traceback
from pathlib import Path
from typing import TYPE_CHECKING

from singer_sdk.exceptions import FatalAPIError, RetriableAPIError

from tap_exactonline.errors import RunWideAPIError
from tap_exactonline.run_report import counted, described

if TYPE_CHECKING:
    from tap_exactonline.session import RunSession

# Failed reads in a row, with no usable answer from Exact in between, that end the run.
MAX_FAILURES_WITHOUT_AN_ANSWER = 3


def failure_reason(error: Exception, read: str) -> str:
    """What went wrong, in words that never quote a page's rows."""
    if isinstance(error, (FatalAPIError, RetriableAPIError)):
        # The tap's own words, with Exact's error message at most (errors.exact_error_text).
        return str(error).removeprefix(f"{read}: ")
    # Any other error may quote a value of the page (a ValueError names it): say where, not what.
    frames = traceback.extract_tb(error.__traceback__)
    where = f" in {Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else ""
    return (
        f"unexpected {type(error).__name__}{where} (its text is not shown: it may quote the "
        "page's data)"
    )


class Failures:
    def __init__(self, session: RunSession) -> None:
        self._session = session
        # (stream, division) -> why its read failed, in the order they failed.
        self._reasons: dict[tuple[str, int | None], str] = {}
        self._in_a_row = 0
        self._answers_at_last_failure = -1

    def report(self, stream: str, division: int | None, error: Exception) -> None:
        """This stream's read in this division failed for good: say so; the run goes on."""
        read = described(stream, division)
        reason = failure_reason(error, read)
        self._reasons.setdefault((stream, division), reason)
        self._session.logger.error(
            "%s failed: %s. Its state stays where its last complete read left it; the other "
            "streams and divisions go on.",
            read,
            reason,
        )
        answers = self._session.usable_answers
        self._in_a_row = self._in_a_row + 1 if answers == self._answers_at_last_failure else 1
        self._answers_at_last_failure = answers
        if self._in_a_row >= MAX_FAILURES_WITHOUT_AN_ANSWER:
            self._session.stop_with_error(
                RunWideAPIError(
                    f"{self._in_a_row} reads in a row failed without one usable answer from "
                    "Exact in between: it seems to be down. Stopping the run; the state up to "
                    "here is saved and the next run continues from it."
                )
            )

    def failed(self, stream: str, division: int | None) -> bool:
        """Did this stream's read in this division fail in this run?"""
        return (stream, division) in self._reasons

    def judge(self) -> bool:
        """Name every failed read, one line each; True if there was one (the run fails)."""
        if not self._reasons:
            return False
        logger = self._session.logger
        logger.error(
            "%s failed; failing the run. Everything else was synced and its state saved; each "
            "failed read resumes from its bookmark in the next run:",
            counted(len(self._reasons), "stream read"),
        )
        for (stream, division), reason in sorted(
            self._reasons.items(), key=lambda item: (item[0][0], item[0][1] or 0)
        ):
            logger.error("  failed: %s: %s", described(stream, division), reason)
        return True
