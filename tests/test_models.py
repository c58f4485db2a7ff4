"""The dbt project in `transform/` over what the tap loads: the fake's books go through Meltano
and target-postgres into PostgreSQL, `dbt build` runs every model and test, and the marts'
figures equal figures worked out here from the rows the fake serves (revenue and result per
year, the debtors' balance, an age group of the open receivables). Then the warehouse is made
wrong the ways operations make it wrong, and the reconciliation tests must fail, naming the
division, account and period that differ.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
from collections import defaultdict
from collections.abc import Iterator
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml

from fake_exact import FakeExact
from fake_exact.books import YEAR_END_TYPES
from tests.conftest import (
    REPO_ROOT,
    Postgres,
    fresh_database,
    run_meltano,
    write_test_meltano_yml,
)
from tests.test_pipeline import SCHEMA, configure, fetch, meltano_run
from tests.test_readme_first_run import git_copy_of_checkout, github_redirect, marked_commands

pytestmark = pytest.mark.pipeline

DIVISIONS = (1001, 1002)
ROWS = {"transaction_lines": 3000, "accounts": 120, "items": 30}
# The financial core the models read (transform/README.md).
STREAMS = [
    *("transaction_lines", "gl_accounts", "gl_classifications", "gl_schemes"),
    *("gl_account_classification_mappings", "journals", "financial_periods", "accounts"),
    *("items", "system_divisions", "reporting_balance", "receivables_list", "payables_list"),
    *("aging_receivables_list", "aging_payables_list", "profit_loss_overview"),
    *("opening_balance_current_year_processed", "opening_balance_previous_year_processed"),
    *("sales_invoices", "sales_invoice_lines", "purchase_invoices", "purchase_invoice_lines"),
]
MODELS = "analytics"
MELTANO_MODELS = "models_from_meltano"  # dbt-postgres's `schema` setting
AMSTERDAM = ZoneInfo("Europe/Amsterdam")


@pytest.fixture(scope="session")
def dbt_utility(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`.meltano/utilities` with meltano.yml's dbt-postgres installed (dbt as
    transform/requirements.txt pins it, in a venv of its own: its dependencies are not the
    tap's), shared by the tests' projects."""
    shared = tmp_path_factory.mktemp("dbt-shared")
    write_test_meltano_yml(shared)
    copy_transform(shared)
    result = run_meltano(shared, "install", "dbt-postgres", timeout=900)
    if result.returncode != 0:
        pytest.fail(f"meltano install dbt-postgres failed:\n{result.stdout}\n{result.stderr}")
    return shared / ".meltano" / "utilities"


@pytest.fixture(scope="session")
def dbt(dbt_utility: Path) -> Path:
    return dbt_utility / "dbt-postgres" / "venv" / "bin" / "dbt"


def copy_transform(dest: Path) -> Path:
    """A copy of transform/ in `dest` (dbt writes target/ and logs/ into its project folder)."""
    return Path(
        shutil.copytree(
            REPO_ROOT / "transform",
            dest / "transform",
            ignore=shutil.ignore_patterns("target", "logs", "dbt_packages"),
        )
    )


def dbt_build(dbt: Path, work: Path, database: Postgres, today: date) -> str:
    """docs/models.md's commands, as written, in a copy of transform/ (dbt writes target/
    and logs/ into its project folder); returns what dbt printed, or fails with it."""
    copy_transform(work)
    env = {
        **os.environ,
        "PATH": f"{dbt.parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "PGHOST": database.host,
        "PGPORT": str(database.port),
        "PGUSER": database.user,
        "PGPASSWORD": database.password,
        "PGDATABASE": database.database,
        "EXACTONLINE_AGEING_AS_OF_DATE": today.isoformat(),  # the fake's books' today
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }
    cwd, output = work, ""
    for command in marked_commands(REPO_ROOT / "docs" / "models.md", "models-run"):
        if command.startswith("cd "):
            cwd = cwd / shlex.split(command)[1]
            continue
        result = subprocess.run(
            command, shell=True, cwd=cwd, env=env, capture_output=True, text=True, timeout=900
        )
        output += result.stdout + result.stderr + f"\n(exit code {result.returncode})\n"
    return output


def day_of(value: str) -> date:
    """The day of a date as the fake keeps it: midnight in Amsterdam, as an instant."""
    return datetime.fromtimestamp(int(value[6:-2]) / 1000, AMSTERDAM).date()


def cents(value: float) -> int:
    return round(value * 100)


class Books:
    """Figures worked out from the fake's raw rows, as a person would from a ledger export."""

    def __init__(self, fake: FakeExact, division: int) -> None:
        self.chart = {row["ID"]: row for row in fake.expected_rows("gl_accounts", division)}
        self.lines = list(fake.expected_rows("transaction_lines", division))
        self.today = fake.data.today

    def per_year(self) -> dict[int, tuple[int, int]]:
        """Year -> (revenue, result) in cents: credit on profit-and-loss accounts positive."""
        revenue: dict[int, int] = defaultdict(int)
        result: dict[int, int] = defaultdict(int)
        for line in self.lines:
            account = self.chart[line["GLAccount"]]
            if account["BalanceType"] != "W":
                continue
            if line["Type"] in YEAR_END_TYPES:  # a closed year's result is still its result
                continue
            amount = -cents(line["AmountDC"])
            result[line["FinancialYear"]] += amount
            if account["BalanceSide"] == "C":
                revenue[line["FinancialYear"]] += amount
        return {year: (revenue[year], result[year]) for year in result}

    def balance(self, code: str) -> int:
        return sum(
            cents(line["AmountDC"])
            for line in self.lines
            if self.chart[line["GLAccount"]]["Code"] == code
        )

    def receivables_up_to_30_days(self) -> int:
        """Open items on the debtors' account (invoice and payments share InvoiceNumber),
        invoiced at most 30 days ago (Exact's first age group)."""
        open_: dict[tuple, int] = defaultdict(int)
        invoiced: dict[tuple, date] = {}
        for line in self.lines:
            if self.chart[line["GLAccount"]]["Code"] != "1300" or line["InvoiceNumber"] is None:
                continue
            key = (line["Account"], line["InvoiceNumber"])
            open_[key] += cents(line["AmountDC"])
            if line["Type"] == 20:  # the sales entry: its date is the invoice date
                invoiced[key] = day_of(line["Date"])
        return sum(
            amount
            for key, amount in open_.items()
            if amount and (self.today - invoiced[key]).days <= 30
        )


@pytest.fixture(scope="module")
def warehouse(
    tmp_path_factory: pytest.TempPathFactory,
    postgres: Postgres,
    meltano_plugins: Path,
    dbt_utility: Path,
) -> Iterator[tuple[FakeExact, Postgres, Path, str]]:
    """The books of two divisions loaded and modelled by docs/models.md's Meltano commands, as
    written (`meltano run tap-exactonline target-postgres dbt-postgres:build`), in a project
    made from meltano.yml with transform/ beside it; what Meltano printed comes last."""
    work = tmp_path_factory.mktemp("models")
    project = work / "meltano"
    write_test_meltano_yml(project)
    copy_transform(project)
    (project / ".meltano").mkdir()
    (project / ".meltano" / "loaders").symlink_to(meltano_plugins, target_is_directory=True)
    (project / ".meltano" / "utilities").symlink_to(dbt_utility, target_is_directory=True)
    unlimited = {"minutely_limit": 1_000_000, "daily_limit": 1_000_000}
    with (
        fresh_database(postgres, "models") as database,
        FakeExact(divisions=DIVISIONS, rows=ROWS, **unlimited) as fake,
    ):
        configure(project, fake, streams=STREAMS, full_table_interval=0)
        # The warehouse for dbt as a user's .env gives it (meltano.yml's dbt-postgres settings).
        output = ""
        for command in marked_commands(REPO_ROOT / "docs" / "models.md", "models-meltano"):
            result = run_as_written(project, command, database, fake)
            output += result.stdout + result.stderr
            assert result.returncode == 0, (command, output[-6000:])
        yield fake, database, project, output


def run_as_written(
    project: Path, command: str, database: Postgres, fake: FakeExact
) -> subprocess.CompletedProcess[str]:
    """A `meltano` line of docs/models.md in the project, the warehouse given to target-postgres
    and to dbt as a user's .env would (meltano.yml's dbt-postgres settings)."""
    program, *args = shlex.split(command)
    assert program == "meltano", command
    env = database.target_env(SCHEMA) | {
        "DBT_POSTGRES_HOST": database.host,
        "DBT_POSTGRES_PORT": str(database.port),
        "DBT_POSTGRES_USER": database.user,
        "DBT_POSTGRES_PASSWORD": database.password,
        "DBT_POSTGRES_DATABASE": database.database,
        "DBT_POSTGRES_SCHEMA": MELTANO_MODELS,
        "DBT_POSTGRES_SOURCE_SCHEMA": SCHEMA,
        "EXACTONLINE_AGEING_AS_OF_DATE": fake.data.today.isoformat(),
    }
    return run_meltano(project, *args, env=env, timeout=900)


def lines_bookmark(project: Path, division: int) -> str:
    """The transaction_lines bookmark of a division in the state Meltano keeps."""
    shown = run_meltano(project, "state", "get", "dev:tap-exactonline-to-target-postgres")
    assert shown.returncode == 0, shown.stderr[-3000:]
    state = json.loads(shown.stdout)
    partitions = state["singer_state"]["bookmarks"]["transaction_lines"]["partitions"]
    [value] = [
        p["replication_key_value"] for p in partitions if p["context"]["division"] == division
    ]
    return value


def test_meltano_builds_the_models_after_the_load(warehouse):
    fake, database, _, output = warehouse
    assert "Completed successfully" in output and "ERROR=0" in output, output[-6000:]
    assert "RECONCILIATION" not in output
    [(loaded,)] = fetch(
        database, f"SELECT count(*) FROM {SCHEMA}.transaction_lines WHERE _sdc_deleted_at IS NULL"
    )
    [(modelled,)] = fetch(database, f"SELECT count(*) FROM {MELTANO_MODELS}.general_ledger")
    assert modelled == loaded == sum(fake.row_count("transaction_lines", d) for d in DIVISIONS)


def test_meltano_yml_installs_the_dbt_transform_requirements_pins(dbt: Path):
    pins = {
        line.lower()
        for line in (REPO_ROOT / "transform" / "requirements.txt").read_text().splitlines()
        if line and not line.startswith("#")
    }
    script = "import importlib.metadata as m\nfor d in m.distributions(): print(d.name, d.version)"
    listed = subprocess.run(
        [str(dbt.with_name("python")), "-c", script], capture_output=True, text=True, check=True
    )
    installed = {"==".join(line.split()).lower() for line in listed.stdout.splitlines()}
    assert pins <= installed, pins - installed


def test_the_marts_show_the_books_figures(warehouse, dbt: Path, tmp_path: Path):
    fake, database, *_ = warehouse
    built = dbt_build(dbt, tmp_path, database, fake.data.today)
    assert "(exit code 0)" in built and "ERROR=0" in built, built[-6000:]
    assert "RECONCILIATION" not in built

    for division in DIVISIONS:
        books = Books(fake, division)
        # Revenue and result per year.
        rows = fetch(
            database,
            f"SELECT financial_year, sum(revenue), sum(result_amount) FROM {MODELS}.profit_and_loss"
            " WHERE division = %s GROUP BY financial_year",
            division,
        )
        marts = {year: (cents(revenue), cents(result)) for year, revenue, result in rows}
        expected = books.per_year()
        assert {y: v for y, v in marts.items() if v != (0, 0)} == expected
        assert len(expected) >= 2 and all(revenue > 0 for revenue, _ in expected.values())

        # The balance sheet at its last period: the debtors' account holds every line on it.
        [(debtors,)] = fetch(
            database,
            f"SELECT balance_dc FROM {MODELS}.balance_sheet WHERE division = %s"
            " AND gl_account_code = '1300' ORDER BY period_end_date DESC LIMIT 1",
            division,
        )
        assert cents(debtors) == books.balance("1300") > 0

        # The first age group of the open receivables, as of the fake's today.
        [(youngest,)] = fetch(
            database,
            f"SELECT sum(age_group_1_amount) FROM {MODELS}.receivables_ageing WHERE division = %s",
            division,
        )
        assert cents(youngest or Decimal(0)) == books.receivables_up_to_30_days()


def test_a_year_closed_in_exact_changes_no_figure(warehouse):
    """The accountant runs Exact's year-end closing for the last two years: its entries (Type
    326-328: results to retained earnings, balances closed and opened again) arrive with the
    next `meltano run`, every reconciliation still passes and the marts show the same figures,
    the books' figures."""
    fake, database, project, _ = warehouse
    figures = (
        f"SELECT division, financial_year, financial_period, revenue, result_amount"
        f" FROM {MELTANO_MODELS}.profit_and_loss ORDER BY 1, 2, 3",
        f"SELECT division, gl_account_code, financial_year, financial_period, balance_dc"
        f" FROM {MELTANO_MODELS}.balance_sheet ORDER BY 1, 2, 3, 4",
    )
    before = [fetch(database, query) for query in figures]
    assert fake.close_years(1001, fake.data.today.year - 1)
    [*_, command] = marked_commands(REPO_ROOT / "docs" / "models.md", "models-meltano")
    ran = run_as_written(project, command, database, fake)
    output = ran.stdout + ran.stderr
    assert ran.returncode == 0 and "RECONCILIATION" not in output, output[-6000:]
    [(listed,)] = fetch(
        database,
        f"SELECT count(*) FROM {MELTANO_MODELS}.general_ledger"
        " WHERE division = 1001 AND entry_type BETWEEN 326 AND 328",
    )
    assert listed > 0  # the general ledger lists them
    assert [fetch(database, query) for query in figures] == before
    books = Books(fake, 1001)
    rows = fetch(
        database,
        f"SELECT financial_year, sum(revenue), sum(result_amount) FROM {MELTANO_MODELS}"
        ".profit_and_loss WHERE division = 1001 GROUP BY financial_year",
    )
    marts = {year: (cents(revenue), cents(result)) for year, revenue, result in rows}
    assert {y: v for y, v in marts.items() if v != (0, 0)} == books.per_year()


def test_a_lost_page_of_lines_fails_the_reconciliation(warehouse, dbt: Path, tmp_path: Path):
    fake, database, project, _ = warehouse
    with database.connect() as connection:
        connection.execute("CREATE SCHEMA lost_page_backup")
        connection.execute(
            f"CREATE TABLE lost_page_backup.lines AS SELECT * FROM {SCHEMA}.transaction_lines"
            " WHERE division = 1002 AND timestamp IN (SELECT timestamp FROM"
            f" {SCHEMA}.transaction_lines WHERE division = 1002 ORDER BY timestamp DESC LIMIT 1000)"
        )
        connection.execute(
            f"DELETE FROM {SCHEMA}.transaction_lines t USING lost_page_backup.lines l"
            " WHERE t.division = l.division AND t.id = l.id"
        )
    try:
        built = dbt_build(dbt, tmp_path, database, fake.data.today)
        assert "(exit code 1)" in built
        assert (
            "RECONCILIATION general_ledger_by_period vs ReportingBalance: division 1002, G/L"
            " account " in built
        ), built[-6000:]
        assert "division 1001" not in built.split("RECONCILIATION", 1)[1]

        # From Meltano the failed build fails the run, after the load, whose state is kept:
        # new lines of 1001 are loaded and their bookmark saved.
        fake.mutate("transaction_lines", 1001, update=0, insert=2)
        before = lines_bookmark(project, 1001)
        [*_, command] = marked_commands(REPO_ROOT / "docs" / "models.md", "models-meltano")
        failed = run_as_written(project, command, database, fake)
        output = failed.stdout + failed.stderr
        assert failed.returncode != 0
        assert "ReportingBalance: division 1002, G/L account " in output, output[-6000:]
        assert lines_bookmark(project, 1001) > before
    finally:
        with database.connect() as connection:
            connection.execute(
                f"INSERT INTO {SCHEMA}.transaction_lines SELECT * FROM lost_page_backup.lines"
            )
            connection.execute("DROP SCHEMA lost_page_backup CASCADE")


def test_an_entry_deleted_in_exact_fails_the_reconciliation_until_the_tap_reads_it(
    warehouse, dbt: Path, tmp_path: Path
):
    fake, database, project, _ = warehouse
    today = fake.data.today
    fake.delete("transaction_lines", 1001, 1)  # a whole entry, logged in sync/Deleted
    # A run that reads Exact's figures but not the lines (their stream left out, or a run
    # stopped for the daily budget before it): the warehouse keeps the deleted lines.
    configure(project, fake, streams=["reporting_balance"], full_table_interval=0)
    meltano_run(project, database)
    built = dbt_build(dbt, tmp_path / "stale", database, today)
    assert "(exit code 1)" in built
    assert (
        "RECONCILIATION general_ledger_by_period vs ReportingBalance: division 1001, G/L"
        " account " in built
    ), built[-6000:]

    # The next complete run marks the lines deleted (`_sdc_deleted_at`): the books agree again.
    configure(project, fake, streams=STREAMS, full_table_interval=0)
    meltano_run(project, database)
    built = dbt_build(dbt, tmp_path / "complete", database, today)
    assert "(exit code 0)" in built and "RECONCILIATION" not in built, built[-6000:]


def test_the_models_build_as_a_dbt_package_of_another_project(warehouse, dbt: Path, tmp_path: Path):
    """docs/models.md's packages.yml and commands, as written, in a dbt project of a user's own;
    git reads the repository's GitHub address from a copy of this checkout."""
    fake, database, *_ = warehouse
    mirror = tmp_path / "github"
    git_copy_of_checkout(mirror / "tap-exactonline.git")
    project = tmp_path / "my_warehouse"
    project.mkdir()
    (project / "dbt_project.yml").write_text(
        "name: my_warehouse\nversion: '1.0'\nconfig-version: 2\nprofile: my_warehouse\n"
    )
    (project / "profiles.yml").write_text(
        yaml.safe_dump(
            {
                "my_warehouse": {
                    "target": "dev",
                    "outputs": {
                        "dev": {
                            "type": "postgres",
                            "host": database.host,
                            "port": database.port,
                            "user": database.user,
                            "password": database.password,
                            "dbname": database.database,
                            "schema": "my_models",
                            "threads": 2,
                        }
                    },
                }
            }
        )
    )
    docs = REPO_ROOT / "docs" / "models.md"
    text = docs.read_text()
    block = text[text.index("<!-- models-package-yml:start") : text.index("models-package-yml:end")]
    (project / "packages.yml").write_text(block.split("```yaml\n", 1)[1].split("```", 1)[0])
    env = {
        **os.environ,
        **github_redirect(mirror),
        "PATH": f"{dbt.parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "DBT_PROFILES_DIR": str(project),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "EXACTONLINE_AGEING_AS_OF_DATE": fake.data.today.isoformat(),
    }
    for command in marked_commands(docs, "models-package"):
        result = subprocess.run(
            command, shell=True, cwd=project, env=env, capture_output=True, text=True, timeout=900
        )
        assert result.returncode == 0, (command, (result.stdout + result.stderr)[-6000:])
        assert "RECONCILIATION" not in result.stdout
    [(loaded,)] = fetch(
        database, f"SELECT count(*) FROM {SCHEMA}.transaction_lines WHERE _sdc_deleted_at IS NULL"
    )
    [(modelled,)] = fetch(database, "SELECT count(*) FROM my_models.general_ledger")
    assert modelled == loaded > 0


def duckdb_query(dbt: Path, database: Path, sql: str) -> list[list]:
    """Rows of a query on the DuckDB file, read with dbt's own duckdb."""
    script = (
        "import duckdb, json, sys\n"
        "db = duckdb.connect(sys.argv[1], read_only=True)\n"
        "print(json.dumps(db.execute(sys.argv[2]).fetchall(), default=str))\n"
    )
    out = subprocess.run(
        [str(dbt.with_name("python")), "-c", script, str(database), sql],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout)


def test_the_models_run_on_duckdb_between_target_duckdb_loads(
    meltano_project: Path, dbt: Path, tmp_path: Path
):
    """The sandbox's warehouse: target-duckdb (its pinned duckdb 1.0) loads, dbt-duckdb (duckdb
    2) builds the models in the same file, and the next load and build still work."""
    database = meltano_project / "warehouse.duckdb"  # meltano.yml's default filepath
    transform = tmp_path / "transform"
    shutil.copytree(REPO_ROOT / "transform", transform, ignore=shutil.ignore_patterns("target"))
    with FakeExact(divisions=DIVISIONS, rows=ROWS, minutely_limit=10**6) as fake:
        configure(meltano_project, fake, streams=STREAMS, full_table_interval=0)
        env = {
            **os.environ,
            "EXACTONLINE_DUCKDB_PATH": str(database),
            "EXACTONLINE_AGEING_AS_OF_DATE": fake.data.today.isoformat(),
            "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        }
        for load in ("first", "next"):
            if load == "next":
                # Entries changed in Exact (not paid: target-duckdb ignores ACTIVATE_VERSION, so
                # an item that left PayablesList within exactonline__full_table_window_minutes
                # of the last read would still count; docs/models.md).
                fake.mutate("transaction_lines", 1001, update=3, insert=0)
            loaded = run_meltano(meltano_project, "run", "tap-exactonline", "target-duckdb")
            assert loaded.returncode == 0, (loaded.stdout + loaded.stderr)[-5000:]
            built = subprocess.run(
                [str(dbt), "build", "--profiles-dir", ".", "--target", "duckdb"],
                cwd=transform,
                env=env,
                capture_output=True,
                text=True,
                timeout=900,
                check=False,
            )
            assert built.returncode == 0, (load, built.stdout[-6000:])
            assert "RECONCILIATION" not in built.stdout
            for division in DIVISIONS:
                result = duckdb_query(
                    dbt,
                    database,
                    "SELECT financial_year, sum(revenue), sum(result_amount)"
                    f" FROM analytics.profit_and_loss WHERE division = {division}"
                    " GROUP BY financial_year",
                )
                marts = {year: (cents(float(r)), cents(float(s))) for year, r, s in result}
                expected = Books(fake, division).per_year()
                assert {y: v for y, v in marts.items() if v != (0, 0)} == expected, load
