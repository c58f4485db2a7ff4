"""Run the fake in the foreground: `python -m fake_exact --port 0 --divisions 1001,1002`.

Prints one line, `FAKE_EXACT_URL=http://127.0.0.1:PORT`, then serves until SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import signal
import sys

from fake_exact.server import FakeExact


def _pairs(text: str) -> dict[str, int]:
    """`transaction_lines=100000,items=50` -> {"transaction_lines": 100000, "items": 50}."""
    result: dict[str, int] = {}
    for part in filter(None, text.split(",")):
        name, _, count = part.partition("=")
        result[name.strip()] = int(count)
    return result


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m fake_exact", description=__doc__)
    parser.add_argument("--port", type=int, default=0, help="0 = any free port")
    parser.add_argument("--divisions", default="1001", help="comma-separated division numbers")
    parser.add_argument("--current-division", type=int, default=None)
    parser.add_argument("--rows", action="append", default=[], help="stream=count[,stream=count]")
    parser.add_argument("--default-rows", type=int, default=None)
    parser.add_argument("--streams", default=None, help="comma-separated stream names to serve")
    parser.add_argument("--minutely-limit", type=int, default=60)
    parser.add_argument("--window", type=float, default=60.0, help="minutely window, seconds")
    parser.add_argument("--daily-limit", type=int, default=5000)
    parser.add_argument("--access-token-lifetime", type=int, default=600)
    parser.add_argument("--min-refresh-interval", type=float, default=570)
    parser.add_argument("--client-id", default="fake-client-id")
    parser.add_argument("--client-secret", default="fake-client-secret")
    parser.add_argument("--refresh-token", default="fake-initial-refresh-token")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--spread-dates",
        action="store_true",
        help="date-times of each row of its own, over ten years (Modified keeps its order)",
    )
    return parser.parse_args(argv)


def build(args: argparse.Namespace) -> FakeExact:
    rows: dict[str, int] = {}
    for text in args.rows:
        rows.update(_pairs(text))
    return FakeExact(
        divisions=[int(d) for d in _names(args.divisions)],
        current_division=args.current_division,
        rows=rows,
        default_rows=args.default_rows,
        streams=_names(args.streams) if args.streams else None,
        client_id=args.client_id,
        client_secret=args.client_secret,
        initial_refresh_token=args.refresh_token,
        access_token_lifetime=args.access_token_lifetime,
        min_refresh_interval=args.min_refresh_interval,
        minutely_limit=args.minutely_limit,
        minute_window_seconds=args.window,
        daily_limit=args.daily_limit,
        seed=args.seed,
        spread_dates=args.spread_dates,
        port=args.port,
    )


def main(argv: list[str] | None = None) -> int:
    fake = build(parse_args(argv))
    # Wait for SIGTERM or SIGINT with sigwait, not a handler: a handler setting a
    # threading.Event runs inside the main thread's own Event.wait, which holds the same lock,
    # and the process hung there for good (seen with `kill` on `uv run python -m fake_exact`).
    stop_signals = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    with fake:
        print(f"FAKE_EXACT_URL={fake.base_url}", flush=True)
        signal.sigwait(stop_signals)
    return 0


if __name__ == "__main__":
    sys.exit(main())
