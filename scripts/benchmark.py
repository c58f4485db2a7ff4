"""Measure the tap alone against the fake Exact server: records/s, API calls per 1,000 rows, memory.

Usage: uv run python scripts/benchmark.py [ROWS ...]     (default: 100000 300000)

The fake server runs in its own process with rate limits lifted (the tap's speed, not Exact's
60 calls/minute, is what is measured); the tap's RECORD lines are counted by `wc -l`.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from fake_exact.process import spawn_fake_exact  # noqa: E402

STREAM = "transaction_lines"
DIVISION = 1001


def selected_catalog(config_path: Path, work: Path) -> Path:
    discovered = subprocess.run(
        ["tap-exactonline", "--config", str(config_path), "--discover"],
        check=True,
        capture_output=True,
        text=True,
    )
    catalog = json.loads(discovered.stdout)
    for stream in catalog["streams"]:
        for entry in stream["metadata"]:
            if entry["breadcrumb"] == []:
                entry["metadata"]["selected"] = stream["tap_stream_id"] == STREAM
    path = work / "catalog.json"
    path.write_text(json.dumps(catalog))
    return path


def run_once(rows: int) -> dict[str, float]:
    server, url = spawn_fake_exact(
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
    try:
        with tempfile.TemporaryDirectory() as directory:
            work = Path(directory)
            config = {
                "client_id": "fake-client-id",
                "client_secret": "fake-client-secret",
                "refresh_token": "fake-initial-refresh-token",
                "base_url": url,
                "divisions": [DIVISION],
            }
            config_path = work / "config.json"
            config_path.write_text(json.dumps(config))
            catalog_path = selected_catalog(config_path, work)
            started = time.perf_counter()
            tap = subprocess.Popen(
                ["tap-exactonline", "--config", str(config_path), "--catalog", str(catalog_path)],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
            )
            counter = subprocess.run(
                ["grep", "-c", '"type":"RECORD"'], stdin=tap.stdout, capture_output=True, text=True
            )
            _, status, usage = os.wait4(tap.pid, 0)
            elapsed = time.perf_counter() - started
            if status != 0:
                raise SystemExit(f"tap failed with status {status}")
        with urllib.request.urlopen(f"{url}/_fake/stats") as response:
            stats = json.load(response)
    finally:
        server.terminate()
        server.wait()
    records = int(counter.stdout.strip() or 0)
    return {
        "rows": rows,
        "records": records,
        "seconds": elapsed,
        "records_per_second": records / elapsed,
        "calls_per_1000_rows": stats["data_calls"] / rows * 1000,
        "minimum_calls_per_1000_rows": math.ceil(rows / 1000) / rows * 1000,
        "peak_memory_mib": usage.ru_maxrss / 1024,
        "user_cpu_seconds": usage.ru_utime,
        "cpu_us_per_record": (usage.ru_utime + usage.ru_stime) / max(records, 1) * 1e6,
    }


def main() -> None:
    sizes = [int(arg) for arg in sys.argv[1:]] or [100_000, 300_000]
    print(
        f"{'rows':>8} {'records':>8} {'seconds':>8} {'records/s':>10} "
        f"{'calls/1k rows':>14} {'minimum':>8} {'peak MiB':>9} {'tap CPU s':>9} "
        f"{'CPU us/record':>13}"
    )
    for rows in sizes:
        result = run_once(rows)
        if result["records"] != rows:
            raise SystemExit(f"expected {rows} records, the tap emitted {result['records']}")
        print(
            f"{rows:>8} {result['records']:>8.0f} {result['seconds']:>8.1f} "
            f"{result['records_per_second']:>10.0f} {result['calls_per_1000_rows']:>14.3f} "
            f"{result['minimum_calls_per_1000_rows']:>8.3f} {result['peak_memory_mib']:>9.1f} "
            f"{result['user_cpu_seconds']:>9.1f} {result['cpu_us_per_record']:>13.1f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
