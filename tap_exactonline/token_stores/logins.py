"""Whose tokens a shared store's copy is. Several Exact logins may authorize one app and share
one store: each keeps its own chain, under the app (`client_id`) and the login (the UserID of
current/Me, which the tokens remember once Exact has said it). A run finds its own copy by what
it knows before any call: the login its state's tokens name, and the fingerprints of its chain
(the state's, and the configured refresh token's). Copies kept under the app alone, by earlier
versions, are still read, and retired once the chain is written under its login.
"""

from __future__ import annotations

from collections.abc import Iterable

from tap_exactonline.tokens import TokenSet, TokenStoreError, fingerprint, newest_link


class StoreOwner:
    """This run's claim on a shared store: its app, and its login and chain as far as known.
    It learns from every copy it reads as its own and every one it writes."""

    def __init__(
        self, app: str, known: Iterable[TokenSet | None] = (), configured: str | None = None
    ) -> None:
        self.app = app
        self.login = ""
        self.chain: set[str] = {fingerprint(configured)} if configured else set()
        for tokens in known:
            self.learn(tokens)

    def learn(self, tokens: TokenSet | None) -> None:
        if tokens is not None:
            self.login = tokens.login or self.login
            self.chain |= tokens.known_fingerprints()

    def owns(self, tokens: TokenSet) -> bool:
        """Is this copy this run's: its login's, or (login unknown on either side) a link of a
        chain this run knows?"""
        if self.login and tokens.login:
            return tokens.login == self.login
        return bool(self.chain & tokens.known_fingerprints())

    def pick(self, found: list[TokenSet], where: str) -> TokenSet | None:
        """This run's copy among those kept for its app (under a login first, then the one kept
        under the app alone); None if none is."""
        mine = [tokens for tokens in found if self.owns(tokens)]
        if not mine and not self.login and not self.chain:
            # Nothing known (no state, no `refresh_token`): the store's only copy, as when a
            # store held one login's tokens; of several, no guess.
            if len(found) > 1:
                raise TokenStoreError(
                    f"{where} holds the tokens of {len(found)} Exact logins of this app, and "
                    "neither the state nor a `refresh_token` setting tells which is this job's: "
                    "give each login's jobs (and its tap-exactonline-auth) their own "
                    "`token_store` (another `?key=` for PostgreSQL, another object)."
                )
            mine = found
        chosen = newest_link(mine)
        self.learn(chosen)
        return chosen

    def key(self, tokens: TokenSet) -> str:
        """Where a copy is kept: under the app and its login; under the app alone while the
        login is unknown (Exact did not say)."""
        return login_key(self.app, tokens.login)


def login_key(app: str, login: str) -> str:
    return f"{app}/{login}" if login else app
