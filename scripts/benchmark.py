"""Measure the tap alone against the fake Exact server: records/s, API calls per 1,000 rows,
memory, and CPU per record side by side with a baseline.

Usage: uv run python scripts/benchmark.py [ROWS ...] [--repeat N] [--dates narrow|spread|both]
       (default: 100000 300000, 3 runs of each, on both kinds of rows)

Rows' date-times: `narrow` is the fake's default data (each column repeats one of 251 values,
Modified spans days); `spread` gives every row its own Created, Date and DueDate over ten years,
as Exact's are (`python -m fake_exact --spread-dates`): what a per-value cost in the clock shows on.

The fake server runs in its own process with rate limits lifted (the tap's speed, not Exact's
60 calls/minute, is what is measured). The baseline (scripts/baseline_tap.py) is a minimal
singer-sdk tap with the same schema and writer that emits the same records from memory: the
ratio of the two CPU figures is what to compare between machines and runs.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import IO

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from fake_exact.process import spawn_fake_exact  # noqa: E402

BASELINE = REPO / "scripts" / "baseline_tap.py"
SAMPLE = 1000
STREAM = "transaction_lines"
DIVISION = 1001


def installed_env(work: Path) -> dict[str, str]:
    """The environment of an install made as the README says (`UV_COMPILE_BYTECODE=1`): the
    tap and the baseline start from bytecode, kept in `work` so the checkout stays clean. The
    first process (discovery) writes it, for every module the baseline imports too; without it
    each run would compile some 360 modules."""
    env = {**os.environ, "PYTHONPYCACHEPREFIX": str(work / "bytecode")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def selected_catalog(config_path: Path, work: Path) -> Path:
    discovered = subprocess.run(
        ["tap-exactonline", "--config", str(config_path), "--discover"],
        check=True,
        capture_output=True,
        text=True,
        env=installed_env(work),
    )
    catalog = json.loads(discovered.stdout)
    for stream in catalog["streams"]:
        for entry in stream["metadata"]:
            if entry["breadcrumb"] == []:
                entry["metadata"]["selected"] = stream["tap_stream_id"] == STREAM
    path = work / "catalog.json"
    path.write_text(json.dumps(catalog))
    return path


def read_output(stdout: IO[bytes] | None) -> tuple[int, bytes, list[bytes]]:
    """The count of RECORD lines, the stream's SCHEMA message and the first 1,000 records."""
    assert stdout is not None
    records, schema, sample = 0, b"", []
    for line in stdout:
        if line.startswith(b'{"type":"RECORD"'):
            records += 1
            if len(sample) < SAMPLE:
                sample.append(line)
        elif line.startswith(b'{"type":"SCHEMA"') and not schema:
            schema = line
    return records, schema, sample


def baseline_cpu_us(work: Path, schema: bytes, sample: list[bytes], rows: int) -> float:
    """CPU per record of the baseline tap emitting `rows` records cycled from `sample`."""
    schema_path, records_path = work / "schema.json", work / "records.jsonl"
    schema_path.write_text(json.dumps(json.loads(schema)["schema"]))
    records_path.write_text(
        "".join(json.dumps(json.loads(line)["record"]) + "\n" for line in sample)
    )
    baseline = subprocess.Popen(
        [sys.executable, str(BASELINE), str(schema_path), str(records_path), str(rows)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=installed_env(work),
    )
    records, _, _ = read_output(baseline.stdout)
    _, status, usage = os.wait4(baseline.pid, 0)
    if status != 0 or records != rows:
        raise SystemExit(f"the baseline tap failed (status {status}, {records} records)")
    return (usage.ru_utime + usage.ru_stime) / records * 1e6


def fake_stats(url: str) -> dict[str, int]:
    with urllib.request.urlopen(f"{url}/_fake/stats") as response:
        stats: dict[str, int] = json.load(response)
    return stats


def measure(rows: int, repeat: int, dates: str) -> list[dict[str, float]]:
    """`repeat` runs of the tap on `rows` rows, each followed by the baseline, so that both see
    the machine in the same mood; one fake server and one discovery for all of them."""
    server, url = spawn_fake_exact(
        *(["--spread-dates"] if dates == "spread" else []),
        "--divisions",
        str(DIVISION),
        "--streams",
        STREAM,
        "--rows",
        f"{STREAM}={rows}",
        "--minutely-limit",
        "1000000",
        "--daily-limit",
        "1000000",
    )
    results = []
    try:
        with tempfile.TemporaryDirectory() as directory:
            work = Path(directory)
            config = {
                "client_id": "fake-client-id",
                "client_secret": "fake-client-secret",
                "refresh_token": "fake-initial-refresh-token",
                "base_url": url,
                "divisions": [DIVISION],
                # Each run refreshes the token: the store hands the rotated one to the next.
                "token_store": str(work / "tokens.json"),
            }
            config_path = work / "config.json"
            config_path.write_text(json.dumps(config))
            catalog_path = selected_catalog(config_path, work)
            for _ in range(repeat):
                calls_before = fake_stats(url)["data_calls"]
                started = time.perf_counter()
                tap = subprocess.Popen(
                    [
                        "tap-exactonline",
                        "--config",
                        str(config_path),
                        "--catalog",
                        str(catalog_path),
                    ],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL,
                    env=installed_env(work),
                )
                records, schema, sample = read_output(tap.stdout)
                _, status, usage = os.wait4(tap.pid, 0)
                elapsed = time.perf_counter() - started
                if status != 0:
                    raise SystemExit(f"tap failed with status {status}")
                if records != rows:
                    raise SystemExit(f"expected {rows} records, the tap emitted {records}")
                calls = fake_stats(url)["data_calls"] - calls_before
                cpu = (usage.ru_utime + usage.ru_stime) / records * 1e6
                baseline = baseline_cpu_us(work, schema, sample, rows)
                results.append(
                    {
                        "records_per_second": records / elapsed,
                        "calls_per_1000_rows": calls / rows * 1000,
                        "minimum_calls_per_1000_rows": math.ceil(rows / 1000) / rows * 1000,
                        "peak_memory_mib": usage.ru_maxrss / 1024,
                        "cpu_us_per_record": cpu,
                        "baseline_cpu_us_per_record": baseline,
                        "ratio": cpu / baseline,
                    }
                )
    finally:
        server.terminate()
        server.wait()
    return results


def spread(results: list[dict[str, float]], key: str, digits: int) -> str:
    values = sorted(result[key] for result in results)
    low, high = f"{values[0]:.{digits}f}", f"{values[-1]:.{digits}f}"
    return low if low == high else f"{low}-{high}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("rows", nargs="*", type=int, default=[100_000, 300_000])
    parser.add_argument("--repeat", type=int, default=3, help="runs per size (default 3)")
    parser.add_argument(
        "--dates",
        choices=("narrow", "spread", "both"),
        default="both",
        help="rows' date-times: the fake's default, spread over ten years, or both (default)",
    )
    arguments = parser.parse_args()
    columns = (
        ("records/s", "records_per_second", 0),
        ("calls/1k rows", "calls_per_1000_rows", 3),
        ("minimum", "minimum_calls_per_1000_rows", 3),
        ("peak MiB", "peak_memory_mib", 1),
        ("tap us/rec", "cpu_us_per_record", 1),
        ("baseline us/rec", "baseline_cpu_us_per_record", 1),
        ("ratio", "ratio", 2),
    )
    kinds = ("narrow", "spread") if arguments.dates == "both" else (arguments.dates,)
    titles = " ".join(f"{title:>15}" for title, _, _ in columns)
    print(f"{'rows':>8} {'dates':>7} {'run':>5} {titles}")
    summaries = []
    for rows in arguments.rows:
        for dates in kinds:
            results = []
            for run, result in enumerate(measure(rows, arguments.repeat, dates), start=1):
                results.append(result)
                figures = " ".join(f"{result[key]:>15.{digits}f}" for _, key, digits in columns)
                print(f"{rows:>8} {dates:>7} {run:>5} {figures}", flush=True)
            summaries.append((rows, dates, results))
    print(f"\nlowest-highest over {arguments.repeat} runs:")
    for rows, dates, results in summaries:
        figures = " ".join(f"{spread(results, key, digits):>15}" for _, key, digits in columns)
        print(f"{rows:>8} {dates:>7} {'all':>5} {figures}")


if __name__ == "__main__":
    main()
