"""Keeping secrets out of every line we show: one scrubber for the tap and the auth command.

A secret can reach a message in more than its raw form: a proxy's error page may echo the
form-encoded token POST (`refresh_token=Gcp7%21IAAAA...`), a URL may carry it percent-encoded,
a JSON body escapes `/` as `\\/`. Each form is replaced.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from urllib.parse import quote, quote_plus, urlsplit, urlunsplit

MASK = "***"
# Shorter values (a test's "x", a port number) would blank out harmless text.
MIN_SECRET_LENGTH = 6


def secret_forms(secret: str) -> set[str]:
    """The raw secret and every encoding of it a message may carry."""
    forms = {
        secret,
        quote(secret, safe=""),
        quote(secret),  # path-style: "/" kept
        quote_plus(secret),
        json.dumps(secret)[1:-1],  # JSON string escapes
        json.dumps(secret)[1:-1].replace("/", "\\/"),  # .NET's JSON writer escapes "/"
    }
    forms |= {form.lower() for form in forms if "%" in form}  # %2f as well as %2F
    return {form for form in forms if len(form) >= MIN_SECRET_LENGTH}


def scrub(text: str, secrets: Iterable[str]) -> str:
    """`text` with every form of every secret replaced by ***; longest forms first, so a
    secret that contains another is masked whole."""
    forms: set[str] = set()
    for secret in secrets:
        if secret:
            forms |= secret_forms(secret)
    for form in sorted(forms, key=len, reverse=True):
        text = text.replace(form, MASK)
    return text


class ScrubbingFilter(logging.Filter):
    """A handler filter masking secrets in every record: a last line of defence for messages
    that carry text from elsewhere (an exception, a server's answer)."""

    def __init__(self, secrets: Callable[[], Iterable[str]]) -> None:
        super().__init__()
        self._secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = [s for s in self._secrets() if s]
        if not secrets:
            return True
        message = record.getMessage()
        clean = scrub(message, secrets)
        if record.exc_info and record.exc_info[1] is not None:
            # A traceback is formatted later from exc_info: fold it into the message now.
            formatted = logging.Formatter().formatException(record.exc_info)
            clean = f"{clean}\n{scrub(formatted, secrets)}"
            record.exc_info = None
            record.exc_text = None
        if clean != message or record.args:
            record.msg, record.args = clean, None
        return True


def install_scrubbing(secrets: Callable[[], Iterable[str]]) -> None:
    """Add the filter to every handler of the root logger (where the SDK's loggers end up)."""
    scrubber = ScrubbingFilter(secrets)
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, ScrubbingFilter) for f in handler.filters):
            handler.addFilter(scrubber)


def without_password(url: str) -> str:
    """`url` with the password of its user part replaced by ***, whatever its length (the log
    filter masks only secrets long enough not to hit ordinary words)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:{MASK}@{host}"))
