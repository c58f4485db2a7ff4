"""HTTP rules for Exact Online: rate-limit budgets, retries, 401 refresh, errors, OData paging."""

from __future__ import annotations

import logging
import random
import re
import time
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import cached_property
from http import HTTPStatus
from typing import Any, ClassVar, NoReturn, Protocol, cast
from urllib.parse import ParseResult, quote, urlsplit

import msgspec
import requests
from singer_sdk import Tap
from singer_sdk.exceptions import FatalAPIError, RetriableAPIError
from singer_sdk.helpers.conform import TypeConformanceLevel
from singer_sdk.helpers.types import Context
from singer_sdk.pagination import BaseHATEOASPaginator
from singer_sdk.singerlib import RecordMessage
from singer_sdk.streams.rest import HTTPRequest, PageContext, RESTStream
from typing_extensions import override

from tap_exactonline.auth import (
    AuthorizationRequiredError,
    ClientRejectedError,
    ExactAuthenticator,
    TokenRefreshError,
)
from tap_exactonline.catalog import EntitySpec
from tap_exactonline.deadline import CallDeadlineExceeded, DeadlineSession
from tap_exactonline.exact_clock import ExactClock
from tap_exactonline.odata import DIVISION_FIELD, RecordPlan
from tap_exactonline.pages import (
    GarbledPageError,
    PageGuard,
    odata_page,
    odata_rows,
    payload_of,
    rows_with_replacements,
    was_repaired,
)
from tap_exactonline.redact import scrub

LOGGER = logging.getLogger("tap_exactonline.http")

MAX_MINUTE_WAIT_SECONDS = 61.0  # never trust a reset header further away than one window
MAX_CONSECUTIVE_429 = 10
MAX_BACKOFF_SECONDS = 120.0
TRANSIENT_STATUSES = {500, 502, 503, 504}
REFUSING_STATUSES = {400, 403, 404}
_TAGS = re.compile(r"<[^>]+>")
_SPACES = re.compile(r"\s+")
# OData punctuation stays readable in the query; spaces become %20 (not "+").
ODATA_SAFE = "$,'():"
# Exact's `Reason` header on a 403 says why (picqer/exact-php-client PR #451 shows it). These
# close a whole division, for every entity: what the user can do about each.
DIVISION_WIDE_REASONS = {
    "NoDivisionAccess": "the user who authorized the app has no access to it, or it was not "
    "granted when the app was authorized: give that user access in Exact, or authorize again "
    "with tap-exactonline-auth and grant this division",
    "DivisionBlocked": "Exact has blocked this division: an administrator of its Exact licence "
    "must unblock it, or remove it from `divisions`",
    "LicenseExpired": "the Exact licence this division belongs to has expired: its owner must "
    "renew it, or remove it from `divisions`",
    "BlockedCustomer": "Exact has blocked the customer this division belongs to: the licence "
    "holder must settle that with Exact, or remove it from `divisions`",
}
# These refuse the user who authorized the app, so every further call would be refused too.
USER_WIDE_REASONS = {
    "BlockedUser": "Exact has blocked the user who authorized the app: an Exact administrator "
    "must unblock that user",
    "InactiveUser": "the user who authorized the app is no longer active in Exact: an Exact "
    "administrator must reactivate that user",
}
_REASON_CODE = re.compile(r"\s*(\w+)")
# Exact's 400 for a `$select` field it no longer knows (dropped or renamed since the reference
# our catalog was made from), in the words of its OData v2 server and of our fake.
_REFUSED_FIELD = re.compile(
    r"'([^']+)' is not a valid property"
    r"|property name '([^']+)' is not valid"
    r"|could not find a property named '([^']+)'",
    re.IGNORECASE,
)
# Fields dropped from one stream's `$select` in one division before the stream is refused:
# each drop costs a refused call, and Exact allows 10 errors an hour per endpoint.
MAX_DROPPED_FIELDS = 5
# An error line quotes at most this much of a page that is not Exact's error JSON (a proxy's
# HTML), and of Exact's own error message (which lists the fields a filter may name).
MAX_EXCERPT = 160
MAX_EXACT_MESSAGE = 600
# 401s one request may meet before giving up, each time after another job had replaced the
# token (the authenticator gives up at once when Exact refuses a token it has just refreshed).
MAX_UNAUTHORIZED = 5


class ExactAPIError(FatalAPIError):
    """Exact refused a request in a way retrying will not fix."""


class EntityRefusedError(ExactAPIError):
    """Exact will not serve this entity in this division as asked: a mandatory `$filter`, a
    refused `$select`, no rights to the module, an endpoint this country's product lacks (or,
    for a 403, no access to the division at all: `division_forbidden` tells which)."""

    def __init__(self, message: str, status: int, reason: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason  # the 403's `Reason` header (its code), if Exact sent one


class UserRefusedError(ExactAPIError):
    """Exact refuses the user who authorized the app (403 BlockedUser, InactiveUser): every
    further call would be refused too, and count against Exact's 10 errors an hour."""


class UnauthorizedError(ExactAPIError):
    def __init__(self, message: str, response: requests.Response) -> None:
        super().__init__(message)
        self.response = response


class RateLimitedError(RetriableAPIError):
    """HTTP 429: wait for the window to reset, then send the same request again."""


class DailyBudgetSpentError(Exception):
    def __init__(self, division: int) -> None:
        super().__init__(f"daily API budget of division {division} is spent")
        self.division = division


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


def refusal_reason(response: requests.Response) -> str | None:
    """The code of a 403's `Reason` header ("DivisionBlocked"; a text after it is dropped)."""
    match = _REASON_CODE.match(response.headers.get("Reason") or "")
    return match.group(1) if match else None


def refused_field_name(message: str) -> str | None:
    """The field an Exact 400 says is not a property of the entity, as Exact spells it."""
    match = _REFUSED_FIELD.search(message)
    return next((name for name in match.groups() if name), None) if match else None


def exact_error_text(response: requests.Response) -> str:
    """Exact's own words: `error.message.value`, an OAuth description, or a short excerpt of
    an error page. Never the body of a successful answer (customer data), nor of one that
    looks like cut-off JSON."""
    try:
        body = payload_of(response)
    except (msgspec.DecodeError, UnicodeDecodeError):
        return _undecodable_body(response)
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            message = error.get("message")
            value = message.get("value") if isinstance(message, dict) else message
            if value:
                return _excerpt(str(value), MAX_EXACT_MESSAGE)
        if body.get("error_description"):
            return _excerpt(str(body["error_description"]), MAX_EXACT_MESSAGE)
    return response.reason or "no message"


def _undecodable_body(response: requests.Response) -> str:
    size = len(response.content)
    head = response.content.lstrip()[:1]
    if response.status_code < 400 or head in (b"{", b"["):
        return f"a body that is not complete JSON ({size} bytes, not shown)"
    text = _SPACES.sub(" ", _TAGS.sub(" ", response.content.decode("utf-8", "replace"))).strip()
    return _excerpt(text) or response.reason or "no response body"


def _excerpt(text: str, limit: int = MAX_EXCERPT) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


class ExactHttp:
    """Sends requests one at a time, under Exact's budgets, with bounded retries."""

    def __init__(
        self,
        *,
        authenticator: ExactAuthenticator,
        limiter: RateLimiter,
        max_retries: int,
        retry_base_seconds: float,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.authenticator = authenticator
        self.limiter = limiter
        self.max_retries = max_retries
        self.retry_base_seconds = retry_base_seconds
        self._sleep = sleep
        # Keep-alive across streams; no urllib3 retries; a deadline on every whole answer.
        self.session: requests.Session = DeadlineSession()

    def check(self, response: requests.Response, what: str) -> None:
        """Classify a response: record budgets, raise for anything that is not usable data."""
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
        try:
            payload_of(response)
        except (msgspec.DecodeError, UnicodeDecodeError):
            # A proxy or maintenance page, or a cut-off answer: transient by nature.
            raise RetriableAPIError(
                f"{what}: HTTP {status} with {self._text(response)}", response
            ) from None

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
        failures = rate_limited = unauthorized = 0
        while True:
            self.limiter.before_request(division)
            try:
                return send()
            except RateLimitedError as exc:
                rate_limited += 1
                if rate_limited > MAX_CONSECUTIVE_429:
                    raise ExactAPIError(
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
                    raise ExactAPIError(f"{exc} ({unauthorized} times in a row)") from None
                rejected = exc.response.request.headers.get("Authorization", "")
                self.authenticator.refresh_after_unauthorized(
                    rejected.removeprefix("Bearer "), exc.response.headers
                )
            except (
                RetriableAPIError,
                requests.ConnectionError,
                requests.Timeout,
                requests.exceptions.ChunkedEncodingError,
                requests.exceptions.ContentDecodingError,
                CallDeadlineExceeded,
            ) as exc:
                failures += 1
                reason = (
                    str(exc)
                    if isinstance(exc, (RetriableAPIError, CallDeadlineExceeded))
                    else type(exc).__name__
                )
                if failures > self.max_retries:
                    raise ExactAPIError(
                        f"{what}: gave up after {failures} attempts; last error: {reason}"
                    ) from None
                wait = min(self.retry_base_seconds * 2 ** (failures - 1), MAX_BACKOFF_SECONDS)
                wait *= random.uniform(0.5, 1.5)  # jitter: parallel jobs must not retry in step
                LOGGER.warning("%s: %s; retry %d in %.1f s.", what, reason, failures, wait)
                self._sleep(wait)

    def _text(self, response: requests.Response) -> str:
        return scrub(exact_error_text(response), self.authenticator.secrets)


class ODataNextLinkPaginator(BaseHATEOASPaginator):
    """Follows `d.__next`, the absolute URL Exact gives for the next page.

    The link is only followed to the host we were configured with (it carries our bearer token),
    and not at all once `may_continue` says the division's daily budget is spent.
    """

    def __init__(self, *, origin: str, may_continue: Callable[[], bool]) -> None:
        super().__init__()
        self._origin = origin
        self._may_continue = may_continue

    def get_next_url(self, response: requests.Response) -> str | None:
        _, next_url = odata_page(response)
        if not next_url:
            return None
        parts = urlsplit(next_url)
        if f"{parts.scheme}://{parts.netloc}" != self._origin:
            raise ExactAPIError(f"Exact's next-page link points to another host: {parts.netloc}")
        return str(next_url)

    def has_more(self, response: requests.Response) -> bool:
        return super().has_more(response) and self._may_continue()


class ExactTapContext(Protocol):
    """What streams need from the tap: one of each, shared by all streams."""

    api_base: str
    origin: str
    clock: ExactClock
    authenticator: ExactAuthenticator
    http: ExactHttp
    limiter: RateLimiter
    divisions: list[int]
    current_division: int

    def stop_with_error(self, error: Exception) -> NoReturn: ...

    def report_refused(self, stream: str, division: int | None, error: Exception) -> None: ...

    def is_refused(self, stream: str, division: int | None) -> bool: ...

    def explicitly_selected(self, stream: str) -> bool: ...

    def division_forbidden(self, division: int | None, error: EntityRefusedError) -> bool: ...

    def get(self, url: str) -> requests.Response: ...

    def had_bookmark(self, stream: str, division: int | None) -> bool: ...


# Failures that no retry will fix: end the run with one line instead of a traceback.
RUN_ENDING_ERRORS = (
    AuthorizationRequiredError,
    ClientRejectedError,
    TokenRefreshError,
    FatalAPIError,
)


class ExactStream(RESTStream[ParseResult]):
    """One Exact entity, read per division. Subclasses are generated from catalog specs."""

    spec: ClassVar[EntitySpec]
    # Records are built to match the schema exactly (RecordPlan), so the SDK's per-value
    # conformance pass would only cost CPU.
    TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.NONE
    # A redirect is never followed: another host's answer is not Exact's data (and our bearer
    # token stays with Exact). ExactHttp.check turns a 3xx into a retried failure.
    allow_redirects = False

    def __init__(self, tap: Tap) -> None:
        rename = tap.config.get("column_names", "snake_case") == "snake_case"
        clock = cast("ExactTapContext", tap).clock
        self.plan = RecordPlan(self.spec.record_fields, rename=rename, clock=clock)
        super().__init__(
            tap, name=self.spec.name, schema=self.spec.schema(self.plan), path=self.spec.url_path
        )
        keys = [self.plan.division_column, *(self.plan.column_for[k] for k in self.spec.keys)]
        self.primary_keys = list(dict.fromkeys(keys))
        self._division: int | None = None
        self._stopped_short = False
        # Per division, the fields Exact no longer accepts in `$select` (found in this run).
        self._dropped_fields: dict[int | None, set[str]] = {}
        # Divisions this run did not read completely (budget spent, refused, inaccessible).
        self.incomplete_divisions: set[int | None] = set()
        # The checks of the read in progress (made anew for each division and parent row).
        self._guard = PageGuard(keys=())
        # (what, division) warnings already given in this run.
        self._warned: set[tuple[str, int | None]] = set()

    @property
    def exact(self) -> ExactTapContext:
        return cast("ExactTapContext", self._tap)

    @property
    @override
    def url_base(self) -> str:
        return self.exact.api_base

    @property
    @override
    def authenticator(self) -> ExactAuthenticator:
        return self.exact.authenticator

    @property
    @override
    def requests_session(self) -> requests.Session:
        return self.exact.http.session

    @property
    @override
    def http_headers(self) -> dict[str, str]:
        return {"Accept": "application/json"}

    @property
    @override
    def timeout(self) -> int:
        return int(self.config.get("request_timeout") or 60)

    @property
    @override
    def partitions(self) -> list[dict[str, Any]] | None:
        if not self.spec.division_in_path or self.parent_stream_type is not None:
            return None
        try:
            divisions = self.exact.divisions
        except RUN_ENDING_ERRORS as error:
            self.exact.stop_with_error(error)
        return [{"division": division} for division in divisions]

    def describe(self, division: int | None) -> str:
        return self.name if division is None else f"{self.name} (division {division})"

    @override
    def request_decorator(self, func: Callable[..., requests.Response]) -> Any:
        def send_by_exact_rules(
            prepared: requests.PreparedRequest, context: Context | None
        ) -> requests.Response:
            division = division_of(prepared.url or "")
            return self.exact.http.execute(
                lambda: func(prepared, context), division=division, what=self.describe(division)
            )

        return send_by_exact_rules

    @override
    def validate_response(self, response: requests.Response) -> None:
        what = self.describe(division_of(response.url))
        self.exact.http.check(response, what)
        try:
            self._guard.check(response)
        except GarbledPageError as garbled:
            raise GarbledPageError(f"{what}: {garbled}", response) from None

    def row_keys(self) -> list[str]:
        """The key fields every row of a page must carry (the division comes from the URL)."""
        return [key for key in self.spec.keys if key != DIVISION_FIELD]

    def new_page_guard(self) -> PageGuard:
        return PageGuard(keys=self.row_keys())

    def warn_once(self, what: str, division: int | None, message: str, *args: object) -> None:
        if (what, division) not in self._warned:
            self._warned.add((what, division))
            self.logger.warning(message, *args)

    @cached_property
    def essential_fields(self) -> frozenset[str]:
        """Keys and bookmarks: always read, and never read without."""
        return frozenset({*self.spec.keys, "Timestamp", "Modified", DIVISION_FIELD})

    @cached_property
    def selected_fields(self) -> list[str]:
        """Exact fields whose columns are selected in the catalog (keys and bookmarks always)."""
        return [
            name
            for name in self.spec.fields
            if name in self.essential_fields
            or self.mask[("properties", self.plan.column_for[name])]
        ]

    def asked_fields(self) -> list[str]:
        """The `$select` of this division: the selected fields Exact still accepts here."""
        dropped = self._dropped_fields.get(self._division, set())
        return [name for name in self.selected_fields if name not in dropped]

    def query_params(self, context: Context | None) -> dict[str, str]:
        """Options for the first page; later pages follow Exact's `__next` link as given."""
        return {"$select": ",".join(self.asked_fields())}

    @override
    def request_records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        """Read; a field Exact no longer accepts is dropped from `$select` and asked again."""
        while True:
            read_any = False
            self._guard = self.new_page_guard()
            try:
                for row in super().request_records(context):
                    read_any = True
                    yield row
            except EntityRefusedError as error:
                field = None if read_any else self._droppable_field(error)
                if field is None:
                    raise
                self._drop_field(field, error)
            else:
                return

    def _droppable_field(self, error: EntityRefusedError) -> str | None:
        """The field Exact's 400 names, if reading on without it loses only that column: one we
        asked for, not a key or bookmark, within MAX_DROPPED_FIELDS."""
        named = refused_field_name(str(error)) if error.status == HTTPStatus.BAD_REQUEST else None
        if named is None:
            return None
        if len(self._dropped_fields.get(self._division, ())) >= MAX_DROPPED_FIELDS:
            return None
        asked = {name.lower(): name for name in self.asked_fields()}
        field = asked.get(named.lower())
        return None if field is None or field in self.essential_fields else field

    def _drop_field(self, field: str, error: EntityRefusedError) -> None:
        # The column stays in the schema (null here), so the target's table keeps its shape.
        self._dropped_fields.setdefault(self._division, set()).add(field)
        self.logger.warning(
            "%s: Exact no longer accepts the field %s (%s); reading without it, so column %s "
            "stays empty (null) there. A newer tap-exactonline may know its new name.",
            self.describe(self._division),
            field,
            str(error).split(": ", 1)[-1],
            self.plan.column_for[field],
        )

    @override
    def get_http_request(self, *, page: PageContext[ParseResult]) -> HTTPRequest:
        if page.next_page_token:
            # The SDK hands the `__next` link back parsed; Exact's link already carries every
            # query option, so it is sent exactly as given.
            return HTTPRequest(url=page.next_page_token.geturl(), headers=self.http_headers)
        url = self.get_url(page.stream_context)
        params = self.query_params(page.stream_context)
        if params:
            url += "?" + "&".join(f"{k}={quote(v, safe=ODATA_SAFE)}" for k, v in params.items())
        return HTTPRequest(url=url, headers=self.http_headers)

    @override
    def get_new_paginator(self) -> ODataNextLinkPaginator:
        return ODataNextLinkPaginator(origin=self.exact.origin, may_continue=self._may_continue)

    def _may_continue(self) -> bool:
        if self.exact.limiter.daily_budget_spent(self._division):
            self._stopped_short = True
            return False
        return True

    @override
    def parse_response(self, response: requests.Response) -> Iterable[dict[str, Any]]:
        rows = odata_rows(response)
        if was_repaired(response):
            self._report_repaired_rows(rows)
        return rows

    def _report_repaired_rows(self, rows: list[dict[str, Any]]) -> None:
        """Text that was not valid UTF-8 (or a lone surrogate) became U+FFFD: say which rows,
        by key; the rows load, so one bad value does not block every later run."""
        for row in rows_with_replacements(rows):
            key = ", ".join(f"{name}={row.get(name)}" for name in self.row_keys())
            self.logger.warning(
                "%s: the row %s holds text that is not valid UTF-8; loaded with U+FFFD in its "
                "place. Correct it in Exact to load the original.",
                self.describe(self._division),
                key,
            )

    @override
    def post_process(self, row: dict[str, Any], context: Context | None = None) -> dict | None:
        return self.plan.apply(row, self._division)

    def division_of_records(self, context: Context | None) -> int | None:
        """The division every record of this read carries (part of every key)."""
        if context and "division" in context:
            return int(context["division"])
        # system/Users has no division in its URL: its rows belong to the login, so they carry
        # the login's current division.
        try:
            return self.exact.current_division
        except RUN_ENDING_ERRORS as error:
            self.exact.stop_with_error(error)

    @override
    def get_records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        division = self.division_of_records(context)
        self._division, self._stopped_short = division, False
        self.plan.select(self.selected_fields)
        if self.exact.limiter.daily_budget_spent(division):
            self.logger.info("Skipping %s: the daily budget is spent.", self.describe(division))
            self.incomplete_divisions.add(division)
            return
        if self.exact.is_refused(self.name, division):
            self.incomplete_divisions.add(division)
            return  # a child stream refused once is not asked again for every parent row
        try:
            yield from super().get_records(context)
        except DailyBudgetSpentError:
            self._stopped_short = True
        except EntityRefusedError as error:
            if not self.exact.division_forbidden(division, error):
                self.exact.report_refused(self.name, division, error)
            self._stopped_short = True
        except RUN_ENDING_ERRORS as error:
            self.exact.stop_with_error(error)
        if self._stopped_short:
            self.incomplete_divisions.add(division)
        if self._stopped_short and not self.is_sorted:
            # Unsorted rows: the bookmark may only move after a complete read, so keep the old
            # one and let the next run read this window again.
            self.get_context_state(context).pop("progress_markers", None)

    @override
    def generate_child_contexts(
        self, record: dict, context: Context | None
    ) -> Iterable[Context | None]:
        # The SDK asks every stream for every record; only parents have anything to say.
        if self.child_streams:
            yield self.get_child_context(record, context)

    @override
    def get_child_context(self, record: dict, context: Context | None) -> dict:
        key_column = self.plan.column_for[self.spec.keys[0]]
        return {"division": record[self.plan.division_column], "parent_id": record[key_column]}

    @override
    def _generate_record_messages(self, record: dict) -> Generator[RecordMessage, None, None]:
        # The SDK would walk every record to pop deselected columns and conform types; the
        # RecordPlan already built exactly the selected, typed columns. Skipping that walk is
        # about a fifth of the tap's CPU.
        for stream_map in self.stream_maps:
            mapped = stream_map.transform(record)
            if mapped is not None:
                yield RecordMessage(
                    stream=stream_map.stream_alias,
                    record=mapped,
                    version=self._stream_version,
                    time_extracted=datetime.now(timezone.utc),
                )
