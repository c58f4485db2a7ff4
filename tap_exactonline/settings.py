"""Settings shared by the tap and the auth command: Exact's sites, the token URL, `divisions`,
and the checks a value passes before any request."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

REGIONS = {
    "nl": "https://start.exactonline.nl",
    "be": "https://start.exactonline.be",
    "de": "https://start.exactonline.de",
    "uk": "https://start.exactonline.co.uk",
    "us": "https://start.exactonline.com",
    "es": "https://start.exactonline.es",
    "fr": "https://start.exactonline.fr",
}
DIVISION_CHOICES = ("all", "current")


def site_of(settings: Mapping[str, Any]) -> str:
    """The Exact site every call goes to: `base_url`, else the `region`'s."""
    if settings.get("base_url"):
        return str(settings["base_url"]).rstrip("/")
    return REGIONS[str(settings.get("region") or "nl")]


def token_url(site: str) -> str:
    return f"{site}/api/oauth2/token"


def json_kind(value: object) -> str:
    """What a setting holds, in words, without its value."""
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return "null" if value is None else f"a {type(value).__name__}"


def parse_divisions(value: object) -> list[int] | str:
    """The `divisions` setting: a list of codes, or `all`/`current` (also as Meltano passes a
    list set on the command line: a JSON string, or codes separated by commas)."""
    if value is None or value in ("", []):
        return "current"
    if isinstance(value, str):
        text = value.strip()
        if text.lower() in DIVISION_CHOICES:
            return text.lower()
        try:
            value = json.loads(text) if text.startswith("[") else text.split(",")
        except ValueError:
            value = None
    items = value if isinstance(value, list) else [value]
    try:
        codes = [int(str(item).strip()) for item in items]
    except ValueError:
        codes = []
    if not codes or any(code <= 0 for code in codes) or any(isinstance(i, bool) for i in items):
        raise ValueError(
            f"Setting `divisions` must be a list of division codes, `all` or `current` (got "
            f"{value!r})."
        )
    return list(dict.fromkeys(codes))


def parse_moment(value: str) -> datetime:
    """An ISO date or date-time, with or without an offset ("Z" too), as Python reads it on
    every version we support."""
    return datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace("z", "+00:00"))


def settings_problems(settings: Mapping[str, Any]) -> list[str]:
    """Values the schema lets through that no request could use."""
    problems: list[str] = []
    base_url = settings.get("base_url")
    if base_url:
        parts = urlsplit(str(base_url))
        if parts.scheme not in ("http", "https") or not parts.netloc:
            problems.append(
                "Setting `base_url` must be an http(s) address such as "
                f"https://start.exactonline.nl (got {str(base_url)!r})."
            )
    start_date = settings.get("start_date")
    if start_date:
        try:
            moment = parse_moment(str(start_date))
        except ValueError:
            problems.append(
                "Setting `start_date` must be a date or date-time such as 2024-01-31 or "
                f"2024-01-31T00:00:00Z (got {str(start_date)!r})."
            )
        else:
            if moment.year < 1900:
                problems.append(
                    f"Setting `start_date` must be 1900 or later (got {str(start_date)!r})."
                )
    return problems
