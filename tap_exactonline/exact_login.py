"""Which Exact login a token belongs to: the UserID that `current/Me` names.

Several Exact users may authorize one app and share one token store; the store keeps each
login's chain apart by it (see token_stores/logins.py). Asked once per chain, right after the
token that starts it is issued, with that token itself (current/Me costs no API budget).
"""

from __future__ import annotations

import logging

import requests

from tap_exactonline.deadline import CallDeadlineExceeded, DeadlineSession
from tap_exactonline.pages import GarbledPageError, odata_rows

LOGGER = logging.getLogger("tap_exactonline.auth")

# Short: it delays saving the tokens just issued, which the store must receive.
ME_TIMEOUT_SECONDS = 20.0


def login_of(api_base: str, access_token: str) -> str:
    """The UserID of the Exact user `access_token` acts for; "" when Exact does not say (the
    tokens are then kept as one login's, as before logins were told apart)."""
    try:
        with DeadlineSession() as session:
            response = session.get(
                f"{api_base}/current/Me?$select=UserID",
                headers={"Authorization": f"Bearer {access_token}", "Accept": "application/json"},
                timeout=ME_TIMEOUT_SECONDS,
                allow_redirects=False,  # the bearer token stays with Exact
            )
        response.raise_for_status()
        rows = odata_rows(response)
    except (requests.RequestException, CallDeadlineExceeded, GarbledPageError) as exc:
        LOGGER.warning(
            "current/Me did not say which Exact login the tokens are of (%s); they are kept "
            "under the app alone.",
            type(exc).__name__,
        )
        return ""
    user = str(rows[0].get("UserID") or "") if rows else ""
    if not user:
        LOGGER.warning(
            "current/Me did not say which Exact login the tokens are of (no UserID); they are "
            "kept under the app alone."
        )
    return user.lower()
