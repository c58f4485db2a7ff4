"""Exact's error signals: what each status and `Reason` header means, and Exact's own words
for one error line (never a token, never the rows of a page)."""

from __future__ import annotations

import re

import requests
from singer_sdk.exceptions import FatalAPIError, RetriableAPIError

from tap_exactonline.pages import payload_of
from tap_exactonline.tokens import (
    AuthorizationRequiredError,
    ClientRejectedError,
    TokenRefreshError,
)

_TAGS = re.compile(r"<[^>]+>")
_SPACES = re.compile(r"\s+")
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
# An error line quotes at most this much of a page that is not Exact's error JSON (a proxy's
# HTML), and of Exact's own error message (which lists the fields a filter may name).
MAX_EXCERPT = 160
MAX_EXACT_MESSAGE = 600


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


class RunWideAPIError(ExactAPIError):
    """An answer about every call of this run, not one stream's read (the user refused, a token
    Exact keeps refusing, its rate limit never lifting): every later call would fail the same
    way and count against Exact's limits, so the run ends."""


class UserRefusedError(RunWideAPIError):
    """Exact refuses the user who authorized the app (403 BlockedUser, InactiveUser): every
    further call would be refused too, and count against Exact's 10 errors an hour."""


class ChildReadFailedError(ExactAPIError):
    """A child stream failed in this division: its parent's read stops there too."""


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
    except ValueError:  # msgspec.DecodeError and UnicodeDecodeError are ValueErrors
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


# Failures that no retry will fix: end the run with one line instead of a traceback (outside a
# stream's read, e.g. finding the divisions; inside one, only RUN_WIDE_ERRORS end the run).
RUN_ENDING_ERRORS = (
    AuthorizationRequiredError,
    ClientRejectedError,
    TokenRefreshError,
    FatalAPIError,
)

# Failures of the run rather than of one stream in one division: the tokens, the user, Exact's
# limits. A stream's read that fails otherwise is reported and the run goes on (`Failures`).
RUN_WIDE_ERRORS = (
    AuthorizationRequiredError,
    ClientRejectedError,
    TokenRefreshError,
    RunWideAPIError,
)
