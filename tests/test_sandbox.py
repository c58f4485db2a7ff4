"""The README's quick start: scripts/sandbox.py, run as a new user runs it, loads both
divisions into DuckDB, installing only the two plugins and dbt it needs, the tables answer to
`exactonline.<table>` (the file is not named like the schema), and it ends with the models'
profit and loss account and balance sheet, whose figures are the fake's books'."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from fake_exact import FakeExact
from fake_exact.book_tables import profit_and_loss
from fake_exact.books import BANK, REVENUE_EXPORT, REVENUE_HIGH, REVENUE_LOW
from scripts.sandbox import ROWS
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.pipeline


def test_the_sandbox_loads_duckdb_with_unambiguous_names(tmp_path: Path):
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "sandbox.py"), "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    output = result.stdout + result.stderr
    # The loader's detail stays out: no CREATE TABLE statements, a log a person reads.
    assert "CREATE TABLE" not in output
    assert max(len(line) for line in output.splitlines()) < 1000
    # The query the sandbox suggests runs, as printed, with what the sandbox installed.
    suggested = result.stdout.rsplit("Query them, e.g.:\n", 1)[1].strip()
    answered = subprocess.run(
        suggested, shell=True, capture_output=True, text=True, timeout=60, check=False
    )
    assert answered.returncode == 0, answered.stderr[-2000:]
    assert "1001" in answered.stdout and "1500" in answered.stdout
    assert "accounts                     division 1001: 1500 rows, division 1002: 1500 rows" in (
        result.stdout
    )
    installed = {
        p.name
        for kind in (tmp_path / ".meltano").iterdir()
        if kind.name in ("extractors", "loaders")
        for p in kind.iterdir()
    }
    assert installed == {"tap-exactonline", "target-duckdb"}  # not target-postgres
    assert {p.name for p in (tmp_path / ".meltano" / "utilities").iterdir()} == {"dbt-duckdb"}
    python = tmp_path / ".meltano" / "loaders" / "target-duckdb" / "venv" / "bin" / "python"
    query = (
        "import duckdb, sys; con = duckdb.connect(sys.argv[1], read_only=True); "
        "print(con.execute('select count(*) from exactonline.transaction_lines').fetchone()[0])"
    )
    count = subprocess.run(
        [str(python), "-c", query, str(tmp_path / "warehouse.duckdb")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert count.returncode == 0, count.stderr[-2000:]
    assert int(count.stdout) == 10_000  # 5,000 in each division
    assert_books_summary(result.stdout)
    assert_reports(result.stdout)


def sandbox_books() -> FakeExact:
    """The fake the sandbox starts (same seed, sizes and day), not started: its books only."""
    rows = dict(pair.split("=") for pair in ROWS.split(","))
    return FakeExact(
        divisions=(1001, 1002), rows={k: int(v) for k, v in rows.items()}, default_rows=120
    )


def assert_reports(stdout: str) -> None:
    """The models' profit and loss account and balance sheet show this year's revenue and
    result and the bank's balance as the fake's books have them, and the balance sheet
    balances."""
    reports = stdout.split("The models (transform/, schema analytics), in EUR:\n", 1)[1]
    fake = sandbox_books()
    for division in (1001, 1002):
        books, refs = fake.data.books(division)
        year = books.today.year
        revenue, costs = profit_and_loss(books, refs, year, range(1, 13))
        net_sales = -sum(  # Netto-omzet: the revenue accounts (credit-side interest is not)
            totals[0]
            for (role, line_year, _, _), totals in books.aggregates().balances.items()
            if role in (REVENUE_HIGH, REVENUE_LOW, REVENUE_EXPORT) and line_year == year
        )
        bank = sum(
            totals[0] for (role, *_), totals in books.aggregates().balances.items() if role == BANK
        )
        shown = reports.split(f"  division {division}: profit and loss {year} ", 1)[1]
        shown = shown.split("\n  division ", 2)
        shown = "\n".join(shown[:2])
        for name, amount in (
            ("Netto-omzet", net_sales),
            ("Result", revenue - costs),
            ("Liquide middelen", bank),
        ):
            line = f"    {name:<36} {amount / 100:>14,.2f}"
            assert line in shown.splitlines(), (line, shown)
        totals = re.findall(
            r"^    Total (?:assets|liabilities and equity) +([-\d,.]+)$", shown, re.M
        )
        assert len(totals) == 2 and totals[0] == totals[1], shown


def assert_books_summary(stdout: str) -> None:
    """The closing summary shows the figures of the fake's books, worked out here from the
    same books (same seed, sizes and day) without the tap, the loader or SQL."""
    summary = stdout.split("The books (revenue and result per financial year, in EUR):\n", 1)[1]
    shown = {
        (int(division), int(year)): (revenue, result)
        for division, year, revenue, result in re.findall(
            r"^  (\d{4}) +(\d{4}) +([-\d,.]+) +([-\d,.]+)$", summary, re.MULTILINE
        )
    }
    fake = sandbox_books()
    expected = {}
    for division in (1001, 1002):
        books, refs = fake.data.books(division)
        for year in range(books.first_day.year, books.today.year + 1):
            revenue, costs = profit_and_loss(books, refs, year, range(1, 13))
            expected[(division, year)] = (
                f"{revenue / 100:,.2f}",
                f"{(revenue - costs) / 100:,.2f}",
            )
        receivables = sum(
            item.open_dc for item in books.aggregates().open_items.values() if item.kind == "sales"
        )
        assert (
            f"division {division}: open receivables {receivables / 100:,.2f}, trial balance 0.00"
        ) in summary
    assert shown == expected


def test_the_models_benchmark_runs_and_prints_its_figures(tmp_path: Path):
    """scripts/benchmark_models.py (docs/benchmark.md) on a small division: the load's time,
    then one line per build with dbt's count of what passed: every model and test."""
    result = subprocess.run(
        [
            *(sys.executable, str(REPO_ROOT / "scripts" / "benchmark_models.py"), "2000"),
            *("--repeat", "1", "--dir", str(tmp_path)),
        ],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    load = r"^load \(Meltano, tap-exactonline, target-duckdb\): \d+\.\d s$"
    assert re.search(load, result.stdout, re.MULTILINE)
    [(passed, total)] = re.findall(
        r"^    2000     1 +\d+\.\d  (\d+) of (\d+) models and tests passed$", result.stdout, re.M
    )
    assert passed == total and int(total) > 50
    assert (tmp_path / "target" / "run_results.json").exists()  # not in the checkout's transform/
