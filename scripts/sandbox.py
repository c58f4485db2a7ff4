"""Run the whole pipeline on this machine with no Exact account.

Usage: uv run --only-group sandbox python scripts/sandbox.py [--dir DIR]

`--only-group sandbox` installs Meltano alone (the fake server needs only the standard
library), not the test and lint tools. Starts the fake Exact Online server (fake_exact) on
127.0.0.1, points tap-exactonline at it, installs the two plugins it needs into DIR/.meltano
(default .sandbox/) with dbt for the models, runs `meltano run tap-exactonline target-duckdb
dbt-duckdb:build`, stops the server and shows where the rows landed (DIR/warehouse.duckdb, schema
`exactonline`: query `exactonline.accounts`; the file's name is not the schema's, which would
make that name ambiguous in DuckDB), then the models' profit and loss account and balance sheet
(schema `analytics`). Rate limits are lifted so the demo takes seconds, not the hour Exact's 60
calls a minute would impose on ~1,000 calls.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from fake_exact.process import spawn_fake_exact  # noqa: E402

MELTANO = Path(sys.executable).with_name("meltano")
OWN_SETTINGS = ("TAP_EXACTONLINE_", "EXACTONLINE_", "DBT_DUCKDB_", "TARGET_DUCKDB_")
ROWS = "transaction_lines=5000,items=40,accounts=1500"
SHOW_TABLES = """
import duckdb, sys
con = duckdb.connect(sys.argv[1], read_only=True)
tables = con.execute(
    "select table_name from information_schema.tables where table_schema = 'exactonline' "
    "order by table_name").fetchall()
for (table,) in tables:
    rows = con.execute(f'select division, count(*) from exactonline.{table} '
                       'group by division order by division').fetchall()
    print(f"  {table:<28} " + ", ".join(f"division {d}: {n} rows" for d, n in rows))
"""

# The books of each division as its accountant would check them (docs/fake-books.md): revenue
# and result per financial year from the ledger lines and the chart of accounts, the open
# receivables, and the trial balance, which sums to zero.
BOOKS_SUMMARY = """
import duckdb, sys
con = duckdb.connect(sys.argv[1], read_only=True)
years = con.execute('''
    select t.division, t.financial_year,
           -sum(case when g.balance_type = 'W' and g.balance_side = 'C' then t.amount_dc end),
           -sum(case when g.balance_type = 'W' then t.amount_dc end)
    from exactonline.transaction_lines t
    join exactonline.gl_accounts g on g.id = t.gl_account and g.division = t.division
    group by 1, 2 order by 1, 2''').fetchall()
print(f"  {'division':<9} {'year':<5} {'revenue':>14} {'result':>14}")
for division, year, revenue, result in years:
    print(f"  {division:<9} {year:<5} {revenue:>14,.2f} {result:>14,.2f}")
open_items = dict(con.execute(
    'select division, sum(amount) from exactonline.receivables_list group by 1').fetchall())
trial = con.execute(
    'select division, sum(amount_dc) from exactonline.transaction_lines group by 1 order by 1'
).fetchall()
for division, total in trial:
    print(f"  division {division}: open receivables {open_items.get(division, 0):,.2f}, "
          f"trial balance {abs(total):,.2f}")
"""

# What the models (transform/, built by dbt-duckdb) make of the books: this year's profit and loss
# account by class, and the balance sheet at the end of the last period with lines.
REPORTS = """
import duckdb, sys
con = duckdb.connect(sys.argv[1], read_only=True)
for (division,) in con.execute(
        'select distinct division from analytics.profit_and_loss order by 1').fetchall():
    year, period = con.execute('''
        select financial_year, financial_period
        from analytics.general_ledger_by_period where division = ? and line_count > 0
        order by financial_year desc, financial_period desc limit 1''', [division]).fetchone()
    print(f"  division {division}: profit and loss {year} (periods 1-{period})")
    lines = con.execute('''
        select gl_classification_description, sum(result_amount) from analytics.profit_and_loss
        where division = ? and financial_year = ? and financial_period <= ?
        group by 1 order by sum(result_amount) < 0, min(gl_account_code)''',
        [division, year, period]).fetchall()
    for name, amount in lines:
        print(f"    {name:<36} {amount:>14,.2f}")
    print(f"    {'Result':<36} {sum(amount for _, amount in lines):>14,.2f}")
    print(f"  division {division}: balance sheet, end of {year} period {period} (entries to date)")
    for section in ('assets', 'liabilities_and_equity'):
        rows = con.execute('''
            select gl_classification_description, sum(amount) from analytics.balance_sheet
            where division = ? and financial_year = ? and financial_period = ? and section = ?
            group by 1 order by min(coalesce(gl_account_code, '9999'))''',
            [division, year, period, section]).fetchall()
        for name, amount in rows:
            print(f"    {name:<36} {amount:>14,.2f}")
        title = 'Total ' + section.replace('_', ' ')
        print(f"    {title:<36} {sum(a for _, a in rows):>14,.2f}")
"""

# target-duckdb logs every CREATE TABLE in full (thousands of characters a line): the sandbox
# shows the tap's log and the loader's warnings only.
LOADER_LOGGING = """
[loggers]
keys=root
[handlers]
keys=stderr
[formatters]
keys=plain
[logger_root]
level=WARNING
handlers=stderr
[handler_stderr]
class=StreamHandler
formatter=plain
args=(sys.stderr,)
[formatter_plain]
format=%(levelname)s %(message)s
"""


def meltano(*args: str, env: dict[str, str]) -> None:
    print(f"$ meltano {' '.join(args)}", flush=True)
    if subprocess.run([str(MELTANO), *args], cwd=REPO, env=env).returncode != 0:
        raise SystemExit(f"meltano {args[0]} failed")


def start_pipeline(
    sandbox: Path, divisions: tuple[int, ...], rows: str
) -> tuple[subprocess.Popen[str], dict[str, str]]:
    """A new fake Exact server with books of `rows`, and the environment in which this
    repository's Meltano project reads it into `sandbox`/warehouse.duckdb, its plugins, state
    and logs in `sandbox`/.meltano."""
    database = sandbox / "warehouse.duckdb"
    sandbox.mkdir(parents=True, exist_ok=True)
    # Every run talks to a new fake server: start a new token chain and a new database.
    for stale in (sandbox / "tokens.json", database, database.with_suffix(".duckdb.wal")):
        stale.unlink(missing_ok=True)
    unlimited = ("--minutely-limit", "1000000", "--daily-limit", "1000000")
    numbers = ",".join(map(str, divisions))
    server, url = spawn_fake_exact(
        "--divisions", numbers, "--default-rows", "120", "--rows", rows, *unlimited
    )
    loader_logging = sandbox / "loader-logging.conf"
    loader_logging.write_text(LOADER_LOGGING)
    print(f"Fake Exact Online server: {url}")
    env = {
        # The user's own settings for the tap and the models stay out of the sandbox.
        **{k: v for k, v in os.environ.items() if not k.startswith(OWN_SETTINGS)},
        "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
        "MELTANO_SYS_DIR_ROOT": str(sandbox / ".meltano"),
        "TAP_EXACTONLINE_BASE_URL": url,
        "TAP_EXACTONLINE_CLIENT_ID": "fake-client-id",
        "TAP_EXACTONLINE_CLIENT_SECRET": "fake-client-secret",
        "TAP_EXACTONLINE_REFRESH_TOKEN": "fake-initial-refresh-token",
        "TAP_EXACTONLINE_DIVISIONS": f"[{numbers}]",
        "TAP_EXACTONLINE_TOKEN_STORE": str(sandbox / "tokens.json"),
        "TARGET_DUCKDB_FILEPATH": str(database),
        "DBT_DUCKDB_PATH": str(database),
        "LOGGING_CONF_FILE": str(loader_logging),
    }
    return server, env


def main() -> None:
    parser = argparse.ArgumentParser(description="The pipeline against a fake Exact server.")
    parser.add_argument("--dir", type=Path, default=REPO / ".sandbox", help="default .sandbox/")
    sandbox = parser.parse_args().dir.resolve()
    database = sandbox / "warehouse.duckdb"
    server, env = start_pipeline(sandbox, (1001, 1002), ROWS)
    try:
        meltano("install", "tap-exactonline", "target-duckdb", "dbt-duckdb", env=env)
        pipeline = ("tap-exactonline", "target-duckdb", "dbt-duckdb:build")
        meltano("run", "--full-refresh", *pipeline, env=env)
    finally:
        server.terminate()
        server.wait()
    python = sandbox / ".meltano" / "loaders" / "target-duckdb" / "venv" / "bin" / "python"
    print(f"\nRows landed in {database} (schema exactonline):")
    subprocess.run([str(python), "-c", SHOW_TABLES, str(database)], check=True)
    print("\nThe books (revenue and result per financial year, in EUR):")
    subprocess.run([str(python), "-c", BOOKS_SUMMARY, str(database)], check=True)
    dbt_python = sandbox / ".meltano" / "utilities" / "dbt-duckdb" / "venv" / "bin" / "python"
    print("\nThe models (transform/, schema analytics), in EUR:")
    subprocess.run([str(dbt_python), "-c", REPORTS, str(database)], check=True)
    # No duckdb command is installed: the loader's own Python has the duckdb module.
    query = (
        f"import duckdb; con = duckdb.connect('{database}', read_only=True); "
        "con.sql('select division, count(*) from exactonline.accounts group by division').show()"
    )
    print(f"\nQuery them, e.g.:\n{shlex.quote(str(python))} -c {shlex.quote(query)}")


if __name__ == "__main__":
    main()
