"""OAuth2 state of the fake: rotating refresh tokens, the 570 s rule, authorization codes.

The caller holds the server lock. Times come from `clock`, the fake clock, so tests can jump
past expiries without sleeping.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

TOO_EARLY = "Rate limit exceeded: access_token not expired"
# The fake's first login (FakeExact's own divisions); others are added with FakeExact.add_login.
DEFAULT_LOGIN = ""
CODE_LIFETIME = 180.0


@dataclass
class TokenReply:
    status: int
    body: dict[str, str]
    headers: dict[str, str] = field(default_factory=dict)


def _error(error: str, description: str, status: int = 400) -> TokenReply:
    # Descriptions never quote the submitted token: tests grep logs for leaked secrets.
    return TokenReply(status, {"error": error, "error_description": description})


class TokenAuthority:
    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str,
        initial_refresh_token: str,
        access_token_lifetime: int,
        min_refresh_interval: float,
        clock: Callable[[], float],
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.lifetime = access_token_lifetime
        self.min_refresh_interval = min_refresh_interval
        self.clock = clock
        # Every token belongs to one login (an Exact user who authorized the app): its own
        # chain of refresh tokens, and its own 570 s rule.
        self.refresh_tokens: dict[str, str] = {initial_refresh_token: DEFAULT_LOGIN}
        self.access_tokens: dict[str, float] = {}  # token -> expiry (fake clock)
        self.access_logins: dict[str, str] = {}  # token -> login
        # code -> (expiry, redirect_uri, login)
        self.codes: dict[str, tuple[float, str, str]] = {}
        self.issued: list[str] = [client_secret, initial_refresh_token]
        self.last_issue: dict[str, float] = {}  # login -> when its last token was issued
        self.token_calls = 0
        self.refresh_count = 0
        # Refreshes left that renew only the access token (see FakeExact.keep_refresh_token_next).
        self.refreshes_keeping_token = 0

    # data calls
    def access_ok(self, token: str | None) -> bool:
        expiry = self.access_tokens.get(token or "")
        return expiry is not None and self.clock() < expiry

    def login_of(self, access_token: str | None) -> str:
        return self.access_logins.get(access_token or "", DEFAULT_LOGIN)

    def expire_all(self) -> None:
        self.access_tokens.clear()

    def add_login(self, login: str, refresh_token: str) -> None:
        self.refresh_tokens[refresh_token] = login
        self.issued.append(refresh_token)

    # authorization codes
    def issue_code(self, redirect_uri: str, login: str = DEFAULT_LOGIN) -> str:
        code = "XTzM!IAAAA" + secrets.token_urlsafe(48)
        self.codes[code] = (self.clock() + CODE_LIFETIME, redirect_uri, login)
        self.issued.append(code)
        return code

    # token endpoint
    def token_request(self, form: Mapping[str, str]) -> TokenReply:
        self.token_calls += 1
        if (
            form.get("client_id") != self.client_id
            or form.get("client_secret") != self.client_secret
        ):
            # Exact's answer to a wrong client_id or client_secret: 400 and a bare error code,
            # no description (observed: websmurf/laravel-exact-online#28). Checked before the
            # grant, so the refresh token is not consumed.
            return TokenReply(400, {"error": "invalid_client"})
        grant = form.get("grant_type")
        if grant == "refresh_token":
            return self._refresh(form.get("refresh_token", ""))
        if grant == "authorization_code":
            return self._redeem(form.get("code", ""), form.get("redirect_uri", ""))
        return _error("unsupported_grant_type", "The grant type is not supported.")

    def _refresh(self, token: str) -> TokenReply:
        now = self.clock()
        # Checked before the token itself, as Exact does: a second process holding an already
        # rotated token gets this answer first, and the token is not consumed.
        # (A token the fake never issued counts against its first login's rule.)
        login = self.refresh_tokens.get(token, DEFAULT_LOGIN)
        last = self.last_issue.get(login)
        if last is not None and now - last < self.min_refresh_interval:
            reply = _error("access_denied", TOO_EARLY)
            reply.headers["Reason"] = f"TooEarlyToRefreshTokens: {TOO_EARLY}"
            return reply
        if token not in self.refresh_tokens:
            return _error("invalid_grant", "The refresh token is invalid or has been used.")
        self.refresh_count += 1
        if self.refreshes_keeping_token > 0:
            self.refreshes_keeping_token -= 1
            return self._issue(now, login, rotate=False)
        del self.refresh_tokens[token]
        return self._issue(now, login)

    def _redeem(self, code: str, redirect_uri: str) -> TokenReply:
        now = self.clock()
        entry = self.codes.get(code)
        if entry is None or now >= entry[0]:
            self.codes.pop(code, None)
            return _error("invalid_grant", "The authorization code is invalid or expired.")
        if entry[1] != redirect_uri:
            return _error("invalid_grant", "The redirect_uri does not match.")
        del self.codes[code]  # single use
        return self._issue(now, entry[2])

    def issue_direct(self, login: str = DEFAULT_LOGIN) -> str:
        """An access token outside the OAuth flow; leaves refresh state and the 570 s rule alone."""
        access = "AAEAA" + secrets.token_urlsafe(96)
        self.access_tokens[access] = self.clock() + self.lifetime
        self.access_logins[access] = login
        self.issued.append(access)
        return access

    def _issue(self, now: float, login: str, *, rotate: bool = True) -> TokenReply:
        """A new access token, and (`rotate`) a new refresh token; without one the answer
        carries no refresh_token and the client keeps its own (RFC 6749 section 6)."""
        access = "AAEAA" + secrets.token_urlsafe(96)
        self.access_tokens[access] = now + self.lifetime
        self.access_logins[access] = login
        self.issued.append(access)
        self.last_issue[login] = now
        body = {
            "access_token": access,
            "token_type": "bearer",
            "expires_in": str(self.lifetime),  # a JSON string, like Exact's
        }
        if rotate:
            refresh = "Gcp7!IAAAA" + secrets.token_urlsafe(64)
            self.refresh_tokens[refresh] = login
            self.issued.append(refresh)
            body["refresh_token"] = refresh
        return TokenReply(200, body)
