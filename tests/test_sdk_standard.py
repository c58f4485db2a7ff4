"""singer-sdk's standard tap tests, run in-process against the fake Exact server."""

from __future__ import annotations

import atexit
import tempfile
from pathlib import Path

from singer_sdk.testing import SuiteConfig, get_tap_test_class

from fake_exact import FakeExact
from tap_exactonline.catalog import load_catalog
from tap_exactonline.tap import TapExactOnline

# The SDK discovers streams when this module is imported, so the server starts here.
FAKE = FakeExact(
    divisions=(1001, 1002),
    default_rows=70,
    rows={"items": 12},
    minutely_limit=1_000_000,
    daily_limit=1_000_000,
).start()
atexit.register(FAKE.stop)
# Something in the deletion log, so `deleted` has records and tombstones reach their streams.
for _division in (1001, 1002):
    FAKE.delete("accounts", _division, 2)
    FAKE.delete("transaction_lines", _division, 1)
# The harness creates several taps from one config; like parallel jobs on one Exact login they
# must share their tokens, or the second would refresh within 570 s and be refused.
_TOKENS = Path(tempfile.mkdtemp(prefix="tap-exactonline-sdk-tests-")) / "tokens.json"

# Read functions fed per parent row run only when selected by name; the harness selects every
# stream, so they rightly return nothing here (tests/test_every_stream.py reads them by name).
ON_REQUEST = [n for n, spec in load_catalog().items() if spec.child_of and spec.child_of.on_request]

TestTapExactOnline = get_tap_test_class(
    tap_class=TapExactOnline,
    config={
        "client_id": "fake-client-id",
        "client_secret": "fake-client-secret",
        "refresh_token": "fake-initial-refresh-token",
        "base_url": FAKE.base_url,
        "divisions": [1001, 1002],
        "start_date": "2000-01-01T00:00:00Z",
        "retry_base_seconds": 0.01,
        "token_store": str(_TOKENS),
    },
    suite_config=SuiteConfig(ignore_no_records_for_streams=ON_REQUEST),
)
