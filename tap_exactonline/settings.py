"""Settings shared by the tap and the auth command: Exact's sites, the token URL, `divisions`,
and the checks a value passes before any request."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from singer_sdk import typing as th

from tap_exactonline.catalog import parse_stream_api, stream_specs
from tap_exactonline.exact_clock import DEFAULT_TIME_ZONE, ExactClock, UnknownTimeZoneError
from tap_exactonline.redact import scrub
from tap_exactonline.token_stores import token_store_problem
from tap_exactonline.tokens import TokenCodec

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
FERNET_KEY_PROBLEM = (
    "Setting `token_encryption_key` is not a Fernet key (32 url-safe base64-encoded bytes); "
    "generate one with Fernet.generate_key()."
)


SETTINGS_SCHEMA = th.PropertiesList(
    th.Property("client_id", th.StringType, required=True, description="OAuth client ID."),
    th.Property(
        "client_secret",
        th.StringType,
        required=True,
        secret=True,
        description="OAuth client secret.",
    ),
    th.Property(
        "refresh_token",
        th.StringType,
        secret=True,
        description="Refresh token from the first authorization. Rotated tokens kept in the "
        "state or token_store supersede it until you put a new one here.",
    ),
    th.Property(
        "region",
        th.StringType,
        default="nl",
        allowed_values=sorted(REGIONS),
        description="Exact Online country site: nl, be, de, uk, us, es or fr.",
    ),
    th.Property(
        "base_url",
        th.URIType,
        description="Overrides `region` for the API and the token endpoint (sandbox, proxy, "
        "tests), e.g. https://start.exactonline.nl.",
    ),
    th.Property(
        "divisions",
        th.CustomType({"type": ["array", "string"], "items": {"type": "integer"}}),
        description="Divisions (administrations) to read: a list of division codes, `all` "
        "(every division system/Divisions lists for the user) or `current` (the user's "
        "current division, the default).",
    ),
    th.Property(
        "start_date",
        th.DateTimeType,
        description="Where a first read starts: the earliest Modified on standard "
        "endpoints; on sync streams the Timestamp Exact's SyncTimestamp gives for this date. "
        "Without an offset it is read on Exact's clock (`time_zone`).",
    ),
    th.Property(
        "time_zone",
        th.StringType,
        default=DEFAULT_TIME_ZONE,
        description="The IANA zone of Exact's clock: Exact sends date-times as wall-clock "
        "time in it (CET/CEST on the Dutch site, per Exact's FAQ) and filters on it. Records "
        "carry true instants; dates at midnight keep their day.",
    ),
    th.Property(
        "resync_streams",
        th.ArrayType(th.StringType),
        description="Sync streams to read again from the start in this run, marking every "
        "row the fresh read does not return as deleted (ACTIVATE_VERSION): for deletions "
        "older than Exact's two-month deletion log. Remove them again afterwards.",
    ),
    th.Property(
        "stream_api",
        # An object; Meltano passes one set on the command line or in an env var as a string.
        th.CustomType({"type": ["object", "string"]}),
        description="Per stream, the API to read it from instead of the cheapest, e.g. "
        '{"items": "standard"}: for the columns only that API has (more calls). The first '
        "run after a switch between the sync API and another reads the stream from "
        "start_date or the start.",
    ),
    th.Property(
        "beta_endpoints",
        th.BooleanType,
        default=False,
        description="Also offer the streams Exact serves only from beta endpoints "
        "(`/api/v1/beta/...`); Exact may change or drop these without notice.",
    ),
    th.Property(
        "token_store",
        th.StringType,
        secret=True,  # a PostgreSQL URL carries a password
        description="Where the newest tokens are kept, written before a new access token "
        "is used and shared (under a lock) by parallel jobs: a local file path or a "
        "PostgreSQL URL (postgresql://user:password@host:5432/db).",
    ),
    th.Property(
        "token_encryption_key",
        th.StringType,
        secret=True,
        description="Encrypts the tokens in the token store and in the state (Fernet key: "
        "`python -c 'from cryptography.fernet import Fernet; "
        "print(Fernet.generate_key().decode())'`).",
    ),
    th.Property(
        "redirect_uri",
        th.StringType,
        description="The app's registered redirect URI; used only by tap-exactonline-auth.",
    ),
    th.Property(
        "request_timeout",
        th.IntegerType,
        default=60,
        description="Seconds to wait for one HTTP response.",
    ),
    th.Property(
        "column_names",
        th.StringType,
        default="snake_case",
        allowed_values=["snake_case", "original"],
        description="`snake_case` (amount_dc) or Exact's `original` names (AmountDC).",
    ),
    th.Property(
        "daily_budget_reserve",
        th.IntegerType,
        default=25,
        description="Stop a division cleanly when fewer daily API calls than this remain.",
    ),
    th.Property(
        "max_retries",
        th.IntegerType,
        default=5,
        description="Retries of a request after a 5xx, timeout or dropped connection.",
    ),
    th.Property(
        "retry_base_seconds",
        th.NumberType,
        default=2.0,
        description="First retry wait; doubles per retry, with jitter.",
    ),
).to_dict()


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


def validate(settings: Mapping[str, Any], schema_errors: list[str]) -> list[str]:
    """Every problem with the settings, each in one line naming the setting: the schema's
    (with secret values taken out) and the ones only the tap can see."""
    errors = without_secret_values(schema_errors, settings)
    for name in ("max_retries", "daily_budget_reserve", "request_timeout", "retry_base_seconds"):
        value = settings.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool) and value < 0:
            errors.append(f"Setting `{name}` must not be negative (got {value}).")
    errors += settings_problems(settings)
    try:
        parse_divisions(settings.get("divisions"))
    except ValueError as exc:
        errors.append(str(exc))
    apis, problems = parse_stream_api(settings.get("stream_api"))
    errors += problems
    specs = stream_specs(include_beta=True, apis=apis)
    sync_streams = {spec.name for spec in specs if spec.api == "sync"}
    unknown = sorted(set(settings.get("resync_streams") or []) - sync_streams)
    if unknown:
        moved = [name for name in unknown if name in apis]
        errors.append(
            f"Setting `resync_streams` names streams that are not sync streams: "
            f"{', '.join(unknown)}"
            + (f" (`stream_api` reads {', '.join(moved)} from another API)." if moved else ".")
        )
    try:
        ExactClock(str(settings.get("time_zone") or DEFAULT_TIME_ZONE))
    except UnknownTimeZoneError:
        errors.append(
            f"Setting `time_zone` must be an IANA time zone such as {DEFAULT_TIME_ZONE} (got "
            f"{settings.get('time_zone')!r})."
        )
    store = settings.get("token_store")
    if store and (problem := token_store_problem(str(store))):
        errors.append(problem)
    if key_problem(settings.get("token_encryption_key")):
        errors.append(FERNET_KEY_PROBLEM)
    return errors


def key_problem(key: object) -> bool:
    """Is `token_encryption_key` set to something that is not a Fernet key?"""
    if not key:
        return False
    try:
        TokenCodec(str(key))
    except ValueError:
        return True
    return False


SECRET_SETTINGS = tuple(
    name for name, schema in SETTINGS_SCHEMA["properties"].items() if schema.get("secret")
)


def without_secret_values(errors: list[str], settings: Mapping[str, Any]) -> list[str]:
    """The SDK's schema errors quote the value ("12345 is not of type 'string'"): for a secret
    setting, say what is wrong without it."""
    values = [str(settings[name]) for name in SECRET_SETTINGS if settings.get(name)]
    kept = [scrub(error, values) for error in errors]
    for name in SECRET_SETTINGS:
        value = settings.get(name)
        if value is not None and not isinstance(value, str):
            kept = [error for error in kept if f"config['{name}']" not in error]
            kept.append(
                f"Setting `{name}` must be text, not {json_kind(value)} (its value is not "
                "shown: it is a secret)."
            )
    return kept


def secret_values(settings: Mapping[str, Any]) -> list[str]:
    """The secrets among the settings, masked in every log line. The token store's location
    is shown (which file, which server); a password in it is not."""
    values = [
        str(settings[name])
        for name in SECRET_SETTINGS
        if settings.get(name) and name != "token_store"
    ]
    password = urlsplit(str(settings.get("token_store") or "")).password
    return [*values, password] if password is not None else values
