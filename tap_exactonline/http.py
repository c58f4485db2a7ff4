"""The one way a request reaches Exact: budgets, authentication, an overall deadline, checks,
retries and paging.

Every call (the streams' pages and the tap's own current/Me, system/Divisions, SyncTimestamp)
goes through `ExactHttp.send`:
- Exact's minutely and daily budgets (`RateLimiter`, from the X-RateLimit-* headers): wait for
  the next window instead of drawing a 429; a 429 is waited out the same way;
- the bearer token from the one authenticator; a 401 lets it take another job's newer token or
  refresh;
- `request_timeout` as a deadline on the whole answer; redirects never followed;
- 5xx, timeouts and dropped connections are retried with exponential backoff and jitter
  (`backoff`); a page that fails its checks is read again twice at most, after a short wait;
  other 4xx are never retried (Exact counts them).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, NoReturn
from urllib.parse import urlsplit

import backoff
import requests
from singer_sdk.exceptions import RetriableAPIError
from singer_sdk.pagination import BaseHATEOASPaginator

from tap_exactonline.auth import ExactAuthenticator
from tap_exactonline.deadline import CallDeadlineExceeded, DeadlineSession
from tap_exactonline.errors import (
    USER_WIDE_REASONS,
    DailyBudgetSpentError,
    EntityRefusedError,
    ExactAPIError,
    RateLimitedError,
    RunWideAPIError,
    UnauthorizedError,
    UserRefusedError,
    exact_error_text,
    refusal_reason,
)
from tap_exactonline.pages import UNDECODABLE, GarbledPageError, Page, odata_page
from tap_exactonline.redact import scrub

LOGGER = logging.getLogger("tap_exactonline.http")

MAX_MINUTE_WAIT_SECONDS = 61.0  # never trust a reset header further away than one window
MAX_CONSECUTIVE_429 = 10
MAX_BACKOFF_SECONDS = 120.0
TRANSIENT_STATUSES = {500, 502, 503, 504}
REFUSING_STATUSES = {400, 403, 404}
# 401s one request may meet before giving up, each time after another job had replaced the
# token (the authenticator gives up at once when Exact refuses a token it has just refreshed).
MAX_UNAUTHORIZED = 5
# A page that arrived whole but is not what was asked for (`GarbledPageError`: a row without its
# key, Timestamps that go backwards, a page already read) is read again at most twice, after a
# short wait, not with the backoff of a 5xx. One re-read mends a page served while its rows were
# being written, or a cache's stale copy; the second leaves room for the re-read PageGuard itself
# asks for to confirm an empty page. The same wrong content three times is what Exact holds, not
# a passing state: more reads would only cost calls (each counts against Exact's budgets) and
# waits, and the stream is reported as failed while the run goes on.
MAX_REREADS_OF_A_WRONG_PAGE = 2
REREAD_WAIT_SECONDS = 1.0
# Failures a retry may mend: retried with exponential backoff.
TRANSIENT_FAILURES = (
    RetriableAPIError,
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
    CallDeadlineExceeded,
)


@dataclass
class Budget:
    """What Exact's X-RateLimit-* headers last told us about one division."""

    minutely_remaining: int | None = None
    minutely_reset: float | None = None  # epoch seconds
    daily_remaining: int | None = None
    daily_reset: float | None = None


def _header_int(headers: Any, name: str) -> int | None:
    value = headers.get(name)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _header_epoch(headers: Any, name: str) -> float | None:
    """Reset headers are epoch milliseconds; accept seconds too (an old Exact SDK claims so)."""
    value = _header_int(headers, name)
    if value is None:
        return None
    return value / 1000.0 if value > 10**11 else float(value)


class RateLimiter:
    """Keeps each division inside Exact's minutely and daily budgets."""

    def __init__(
        self,
        *,
        daily_reserve: int,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.daily_reserve = daily_reserve
        self._clock = clock
        self._sleep = sleep
        self.budgets: dict[int, Budget] = {}
        self.spent_divisions: set[int] = set()

    def budget(self, division: int) -> Budget:
        return self.budgets.setdefault(division, Budget())

    def record(self, division: int | None, headers: Any) -> None:
        if division is None:
            return  # calls without a division (current/Me) are not counted by Exact
        budget = self.budget(division)
        minutely = _header_int(headers, "X-RateLimit-Minutely-Remaining")
        if minutely is not None:
            budget.minutely_remaining = minutely
            budget.minutely_reset = _header_epoch(headers, "X-RateLimit-Minutely-Reset")
        daily = _header_int(headers, "X-RateLimit-Remaining")
        if daily is not None:
            budget.daily_remaining = daily
            budget.daily_reset = _header_epoch(headers, "X-RateLimit-Reset")
        if division not in self.spent_divisions and self.daily_budget_spent(division):
            self.spent_divisions.add(division)
            LOGGER.warning(
                "Daily API budget of division %d is spent (%s calls left, reserve %d): stopping "
                "this division cleanly; the next run resumes where this one stopped.",
                division,
                budget.daily_remaining,
                self.daily_reserve,
            )

    def daily_budget_spent(self, division: int | None) -> bool:
        if division is None:
            return False
        budget = self.budget(division)
        if budget.daily_remaining is None or budget.daily_remaining > self.daily_reserve:
            return False
        return budget.daily_reset is None or budget.daily_reset > self._clock()

    def before_request(self, division: int | None) -> None:
        """Wait for the next minute window instead of sending a request that would get a 429."""
        if division is None:
            return
        if self.daily_budget_spent(division):
            raise DailyBudgetSpentError(division)
        budget = self.budget(division)
        if budget.minutely_remaining is not None and budget.minutely_remaining <= 0:
            self._wait_for_window(division, budget.minutely_reset, "minutely budget used up")
            budget.minutely_remaining = None

    def after_429(self, division: int | None, headers: Any) -> None:
        """Wait out a 429 whose headers `ExactHttp.check` has already recorded."""
        if division is not None and self.daily_budget_spent(division):
            raise DailyBudgetSpentError(division)
        reset = _header_epoch(headers, "X-RateLimit-Minutely-Reset")
        if reset is None and division is not None:
            # A 429 without headers belongs to the window the last response told us about.
            known = self.budget(division).minutely_reset
            reset = known if known is not None and known > self._clock() else None
        self._wait_for_window(division, reset, "HTTP 429")
        if division is not None:
            self.budget(division).minutely_remaining = None

    def _wait_for_window(self, division: int | None, reset: float | None, why: str) -> None:
        now = self._clock()
        if reset is None or reset <= now:
            # No usable reset header: Exact's window is the calendar minute.
            wait = 60.0 - now % 60.0 + 0.5 if reset is None else 0.2
        else:
            wait = reset - now + 0.1
        wait = min(wait, MAX_MINUTE_WAIT_SECONDS)
        LOGGER.info("Division %s: %s, waiting %.1f s for the next window.", division, why, wait)
        self._sleep(wait)


def division_of(url: str) -> int | None:
    """`.../api/v1/123456/crm/Accounts` -> 123456; None for current/Me and system/Users."""
    parts = urlsplit(url).path.split("/")
    try:
        index = parts.index("v1") + 1
    except ValueError:
        return None
    if index < len(parts) and parts[index] == "beta":
        index += 1
    return int(parts[index]) if index < len(parts) and parts[index].isdigit() else None


def _jitter(wait: float) -> float:
    return wait * random.uniform(0.5, 1.5)  # parallel jobs must not retry in step


class ExactHttp:
    """Sends requests one at a time, under Exact's budgets, with bounded retries."""

    def __init__(
        self,
        *,
        authenticator: ExactAuthenticator,
        limiter: RateLimiter,
        max_retries: int,
        retry_base_seconds: float,
        timeout: float = 60.0,
    ) -> None:
        self.authenticator = authenticator
        self.limiter = limiter
        self.max_retries = max_retries
        self.retry_base_seconds = retry_base_seconds
        self.timeout = timeout
        # Keep-alive across streams; no urllib3 retries; a deadline on every whole answer.
        self.session: requests.Session = DeadlineSession()
        # Calls Exact answered in this run (retries included: Exact counts them too).
        self.calls = 0
        # Answers that passed every check: whether Exact still serves anything at all.
        self.usable_answers = 0

    def get(
        self,
        url: str,
        *,
        what: str,
        validate: Callable[[requests.Response], None] | None = None,
    ) -> requests.Response:
        request = requests.Request("GET", url, headers={"Accept": "application/json"})
        return self.send(self.session.prepare_request(request), what=what, validate=validate)

    def send(
        self,
        request: requests.PreparedRequest,
        *,
        what: str,
        validate: Callable[[requests.Response], None] | None = None,
    ) -> requests.Response:
        """The one place a request goes out: authenticated anew for every attempt (a 401 may
        have replaced the token), never redirected, checked, then `validate`d (the page checks
        of `pages.PageGuard`; a failure there is retried like a 5xx)."""

        def attempt() -> requests.Response:
            authorized = self.authenticator(request.copy())
            response = self.session.send(authorized, timeout=self.timeout, allow_redirects=False)
            self.calls += 1
            self.accept(response, what, validate)
            self.usable_answers += 1
            return response

        return self.execute(attempt, division=division_of(request.url or ""), what=what)

    def accept(
        self,
        response: requests.Response,
        what: str,
        validate: Callable[[requests.Response], None] | None = None,
    ) -> None:
        """Raise unless the response is usable data: its status (`check`), then its body, which
        `validate` decodes (a stream's page checks, straight into its rows), else as a page."""
        self.check(response, what)
        try:
            if validate is not None:
                validate(response)
            else:
                odata_page(response)  # the shape of a page, or a retried GarbledPageError
        except GarbledPageError as garbled:
            if validate is not None:
                raise  # the validator names the read itself
            raise GarbledPageError(f"{what}: {garbled}", response) from None
        except UNDECODABLE:
            # A proxy or maintenance page, or a cut-off answer: transient by nature.
            raise RetriableAPIError(
                f"{what}: HTTP {response.status_code} with {self._text(response)}", response
            ) from None

    def check(self, response: requests.Response, what: str) -> None:
        """Classify a response by its status: record budgets, raise for any that is not data."""
        division = division_of(response.url)
        self.limiter.record(division, response.headers)
        status = response.status_code
        if status == 429:
            raise RateLimitedError(f"{what}: HTTP 429 Too Many Requests", response)
        if status == 401:
            raise UnauthorizedError(f"{what}: HTTP 401: {self._text(response)}", response)
        if status in TRANSIENT_STATUSES or status > 500:
            raise RetriableAPIError(f"{what}: HTTP {status}: {self._text(response)}", response)
        if 300 <= status < 400:
            # Not followed: the answer of another host is not Exact's data, and the bearer
            # token stays with Exact. A proxy or a captive portal may be in the way.
            where = urlsplit(response.headers.get("Location") or "").netloc or "elsewhere"
            raise RetriableAPIError(
                f"{what}: HTTP {status}, a redirect to {where} (not followed)", response
            )
        if status in REFUSING_STATUSES:
            self._refuse(response, what)
        if status >= 400:
            raise ExactAPIError(f"{what}: HTTP {status}: {self._text(response)}")
        # A success is decoded by the page checks that follow, once, into what its reader
        # needs (a stream's rows decode straight into structs).

    def _refuse(self, response: requests.Response, what: str) -> NoReturn:
        """A 400/403/404 in one line; a 403 names Exact's `Reason`, and one that refuses the
        user ends the run (no call after it: each would be refused and counted as an error)."""
        status = response.status_code
        reason = refusal_reason(response) if status == HTTPStatus.FORBIDDEN else None
        shown = f"HTTP {status}" if reason is None else f"HTTP {status} (Reason: {reason})"
        message = f"{what}: {shown}: {self._text(response)}"
        if reason in USER_WIDE_REASONS:
            raise UserRefusedError(
                f"{message}. {USER_WIDE_REASONS[reason]}, or authorize the app with another "
                "Exact user (tap-exactonline-auth). Stopping the run: Exact would refuse every "
                "further call, and counts each against its limit of 10 errors an hour."
            )
        raise EntityRefusedError(message, status, reason)

    def execute(
        self,
        send: Callable[[], requests.Response],
        *,
        division: int | None,
        what: str,
    ) -> requests.Response:
        """`send` until it gives a usable answer: transient failures are retried with
        exponential backoff and jitter (`max_retries` times); a page that is not what was asked
        for is read again (MAX_REREADS_OF_A_WRONG_PAGE); a 429 waits for Exact's window; a 401
        lets the authenticator take another job's newer token or refresh."""
        attempts = rereads = 0

        def gave_up(exc: BaseException) -> ExactAPIError:
            return ExactAPIError(
                f"{what}: gave up after {attempts} attempts; last error: {_reason(exc, what)}"
            )

        def log_retry(details: Any) -> None:
            LOGGER.warning(
                "%s: %s; retry %d in %.1f s.",
                what,
                _reason(details["exception"], what),
                details["tries"],
                details["wait"],
            )

        @backoff.on_exception(
            backoff.expo,
            TRANSIENT_FAILURES,
            max_tries=self.max_retries + 1,
            factor=self.retry_base_seconds,
            max_value=MAX_BACKOFF_SECONDS,
            jitter=_jitter,
            on_backoff=log_retry,
            logger=None,
        )
        def within_budget() -> requests.Response:
            nonlocal attempts, rereads
            while True:
                attempts += 1
                try:
                    return self._within_budget(send, division=division, what=what)
                except GarbledPageError as garbled:
                    if rereads >= MAX_REREADS_OF_A_WRONG_PAGE:
                        raise gave_up(garbled) from None  # not transient: no backoff either
                    rereads += 1
                    wait = _jitter(min(self.retry_base_seconds, REREAD_WAIT_SECONDS))
                    LOGGER.warning(
                        "%s: %s; reading it again in %.1f s.", what, _reason(garbled, what), wait
                    )
                    time.sleep(wait)

        try:
            return within_budget()
        except TRANSIENT_FAILURES as exc:
            raise gave_up(exc) from None

    def _within_budget(
        self, send: Callable[[], requests.Response], *, division: int | None, what: str
    ) -> requests.Response:
        """One attempt, with the waits for Exact's budgets and the 401 recoveries it needs."""
        rate_limited = unauthorized = 0
        while True:
            self.limiter.before_request(division)
            try:
                return send()
            except RateLimitedError as exc:
                rate_limited += 1
                if rate_limited > MAX_CONSECUTIVE_429:
                    raise RunWideAPIError(
                        f"{what}: still HTTP 429 after {rate_limited} waits"
                    ) from None
                headers = exc.response.headers if exc.response is not None else {}
                self.limiter.after_429(division, headers)
            except UnauthorizedError as exc:
                # Another job may have replaced the token we sent (even twice while we ran):
                # the authenticator takes the store's newer one or refreshes, and refuses to go
                # on when Exact refuses a token this run has just refreshed itself.
                unauthorized += 1
                if unauthorized > MAX_UNAUTHORIZED:
                    raise RunWideAPIError(f"{exc} ({unauthorized} times in a row)") from None
                rejected = exc.response.request.headers.get("Authorization", "")
                self.authenticator.refresh_after_unauthorized(
                    rejected.removeprefix("Bearer "), exc.response.headers
                )

    def _text(self, response: requests.Response) -> str:
        return scrub(exact_error_text(response), self.authenticator.secrets)


def _reason(exc: BaseException, what: str) -> str:
    """What went wrong, without the `what` its message may already begin with."""
    if isinstance(exc, (RetriableAPIError, CallDeadlineExceeded)):
        return str(exc).removeprefix(f"{what}: ")
    return type(exc).__name__


class ODataNextLinkPaginator(BaseHATEOASPaginator):
    """Follows `d.__next`, the absolute URL Exact gives for the next page.

    The link is only followed to the host we were configured with (it carries our bearer token),
    and not at all once `may_continue` says the division's daily budget is spent.
    """

    def __init__(
        self,
        *,
        origin: str,
        read_page: Callable[[requests.Response], Page] = odata_page,
        may_continue: Callable[[], bool],
    ) -> None:
        super().__init__()
        self._origin = origin
        self._read_page = read_page
        self._may_continue = may_continue

    def get_next_url(self, response: requests.Response) -> str | None:
        _, next_url = self._read_page(response)
        if not next_url:
            return None
        parts = urlsplit(next_url)
        if f"{parts.scheme}://{parts.netloc}" != self._origin:
            raise ExactAPIError(f"Exact's next-page link points to another host: {parts.netloc}")
        return str(next_url)

    def has_more(self, response: requests.Response) -> bool:
        return super().has_more(response) and self._may_continue()
