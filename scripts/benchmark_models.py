"""Measure the models: `dbt build` (every model and data test in transform/) on DuckDB, over the
books of one division with LINES transaction lines, loaded as the sandbox loads them (Meltano,
tap-exactonline, target-duckdb).

Usage: uv run --only-group sandbox python scripts/benchmark_models.py [LINES] [--repeat N]
       (default: 300000 lines, 3 builds)

Prints the load's wall time once, then per build its wall time and dbt's count of models and
tests (a build that fails stops the script: its time would mean nothing). The plugins and
the warehouse stay in --dir (default: a new temporary folder).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from scripts.sandbox import meltano, start_pipeline  # noqa: E402

DIVISION = 1001
SUMMARY = re.compile(r"PASS=(\d+) WARN=(\d+) ERROR=(\d+) SKIP=(\d+)(?: NO-OP=\d+)? TOTAL=(\d+)")


def build(work: Path, env: dict[str, str]) -> tuple[float, str]:
    """One `dbt build` of transform/ (its target/ and logs/ in `work`): seconds and dbt's
    summary line."""
    dbt = work / ".meltano" / "utilities" / "dbt-duckdb" / "venv" / "bin" / "dbt"
    transform = str(REPO / "transform")
    started = time.monotonic()
    result = subprocess.run(
        [
            *(str(dbt), "build", "--project-dir", transform, "--profiles-dir", transform),
            *("--target", "duckdb", "--target-path", str(work / "target")),
            *("--log-path", str(work / "logs")),
        ],
        env={
            **env,
            "EXACTONLINE_DUCKDB_PATH": env["DBT_DUCKDB_PATH"],
            "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        },
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.monotonic() - started
    found = SUMMARY.findall(result.stdout)
    if result.returncode != 0 or not found:
        sys.exit(f"dbt build failed (exit code {result.returncode}):\n{result.stdout[-3000:]}")
    passed, _, _, _, total = found[-1]
    return seconds, f"{passed} of {total} models and tests passed"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("lines", nargs="?", type=int, default=300_000)
    parser.add_argument("--repeat", type=int, default=3, help="builds (default 3)")
    parser.add_argument("--dir", type=Path, default=None, help="default: a temporary folder")
    arguments = parser.parse_args()
    work = arguments.dir or Path(tempfile.mkdtemp(prefix="benchmark-models-"))
    work = work.resolve()
    # A busier company, not a longer history (docs/fake-books.md): parties and items grow too.
    rows = f"transaction_lines={arguments.lines},accounts=2000,items=200"
    server, env = start_pipeline(work, (DIVISION,), rows)
    try:
        meltano("install", "tap-exactonline", "target-duckdb", "dbt-duckdb", env=env)
        started = time.monotonic()
        meltano("run", "--full-refresh", "tap-exactonline", "target-duckdb", env=env)
        load = time.monotonic() - started
    finally:
        server.terminate()
        server.wait()
    print(f"\nload (Meltano, tap-exactonline, target-duckdb): {load:.1f} s")
    print(f"{'lines':>8} {'build':>5} {'seconds':>8}  dbt")
    for run in range(1, arguments.repeat + 1):
        seconds, summary = build(work, env)
        print(f"{arguments.lines:>8} {run:>5} {seconds:>8.1f}  {summary}", flush=True)


if __name__ == "__main__":
    main()
