"""Run the whole pipeline on this machine with no Exact account.

Usage: uv run python scripts/sandbox.py

Starts the fake Exact Online server (fake_exact) on 127.0.0.1, points tap-exactonline at
it, runs `meltano run tap-exactonline target-duckdb`, stops the server and shows where the rows
landed (.sandbox/warehouse.duckdb). Rate limits are lifted so the demo takes seconds, not the
hour Exact's 60 calls a minute would impose on ~1,000 calls.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from fake_exact.process import spawn_fake_exact  # noqa: E402

SANDBOX = REPO / ".sandbox"
DATABASE = SANDBOX / "warehouse.duckdb"
MELTANO = Path(sys.executable).with_name("meltano")
ROWS = "transaction_lines=5000,items=40,accounts=1500"
SHOW_TABLES = """
import duckdb, sys
con = duckdb.connect(sys.argv[1], read_only=True)
tables = con.execute(
    "select table_name from information_schema.tables where table_schema = 'exactonline' "
    "order by table_name").fetchall()
for (table,) in tables:
    rows = con.execute(f'select division, count(*) from exactonline."{table}" '
                       'group by division order by division').fetchall()
    print(f"  {table:<28} " + ", ".join(f"division {d}: {n} rows" for d, n in rows))
"""


def meltano(*args: str, env: dict[str, str]) -> None:
    print(f"$ meltano {' '.join(args)}", flush=True)
    if subprocess.run([str(MELTANO), *args], cwd=REPO, env=env).returncode != 0:
        raise SystemExit(f"meltano {args[0]} failed")


def main() -> None:
    SANDBOX.mkdir(exist_ok=True)
    # Every sandbox run talks to a new fake server: start a new token chain and a new database.
    for stale in (SANDBOX / "tokens.json", DATABASE, DATABASE.with_suffix(".duckdb.wal")):
        stale.unlink(missing_ok=True)
    server, url = spawn_fake_exact(
        "--divisions",
        "1001,1002",
        "--default-rows",
        "120",
        "--rows",
        ROWS,
        "--minutely-limit",
        "1000000",
        "--daily-limit",
        "1000000",
    )
    print(f"Fake Exact Online server: {url}")
    try:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("TAP_EXACTONLINE_")},
            "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
            "TAP_EXACTONLINE_BASE_URL": url,
            "TAP_EXACTONLINE_CLIENT_ID": "fake-client-id",
            "TAP_EXACTONLINE_CLIENT_SECRET": "fake-client-secret",
            "TAP_EXACTONLINE_REFRESH_TOKEN": "fake-initial-refresh-token",
            "TAP_EXACTONLINE_DIVISIONS": "[1001, 1002]",
            "TAP_EXACTONLINE_TOKEN_STORE": str(SANDBOX / "tokens.json"),
            "TARGET_DUCKDB_FILEPATH": str(DATABASE),
        }
        meltano("install", env=env)
        meltano("run", "--full-refresh", "tap-exactonline", "target-duckdb", env=env)
    finally:
        server.terminate()
        server.wait()
    python = REPO / ".meltano" / "loaders" / "target-duckdb" / "venv" / "bin" / "python"
    print(f"\nRows landed in {DATABASE.relative_to(REPO)} (schema exactonline):")
    subprocess.run([str(python), "-c", SHOW_TABLES, str(DATABASE)], check=True)


if __name__ == "__main__":
    main()
