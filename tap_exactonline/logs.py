"""What a person reads at INFO: the SDK's per-stream detail goes to DEBUG.

A run of a dozen streams used to log about 500 INFO lines, 90 % of them "Skipping deselected
stream", "Added ... as child stream" and METRIC lines. Those (and a few more SDK lines that
our own line per stream and division replaces) are logged at DEBUG instead: with the tap's log
level at DEBUG (`TAP_EXACTONLINE_LOGLEVEL=debug` or `LOGLEVEL=debug`) they are all still there.
"""

from __future__ import annotations

import logging

from singer_sdk.metrics import METRICS_LOGGER_NAME

# The SDK's message templates (record.msg, before formatting) that are detail, not news.
SDK_DETAIL = frozenset(
    {
        "Skipping deselected stream '%s'.",
        "Added '%s' as child stream to '%s'",
        "Skipping parse of env var settings...",
        "Starting incremental sync of '%s' with bookmark value: %s",
        "Pagination stopped after %d pages because no records were found in the last response",
        # A child stream's sync begins once per parent row.
        "Beginning sync of '%s' in %s mode with context keys: %s",
        # A warning, per division, that the user cannot act on: the tap moves the bookmark of
        # an unsorted read only once the read is complete.
        "Stream is assumed to be unsorted, progress is not resumable if interrupted",
    }
)


def is_detail(record: logging.LogRecord) -> bool:
    if record.name == METRICS_LOGGER_NAME:
        return record.levelno == logging.INFO
    return record.levelno in (logging.INFO, logging.WARNING) and record.msg in SDK_DETAIL


class SdkDetailFilter(logging.Filter):
    """A handler filter that logs the SDK's detail lines at DEBUG: shown only where the logger
    they come from is enabled for DEBUG."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not is_detail(record):
            return True
        record.levelno, record.levelname = logging.DEBUG, logging.getLevelName(logging.DEBUG)
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)


def quiet_sdk_detail() -> None:
    """Add the filter to every handler of the root logger (where the SDK's loggers end up)."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, SdkDetailFilter) for f in handler.filters):
            handler.addFilter(SdkDetailFilter())
