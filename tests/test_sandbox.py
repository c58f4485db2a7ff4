"""The README's quick start: scripts/sandbox.py, run as a new user runs it, loads both
divisions into DuckDB, installing only the two plugins it needs, and the tables answer to
`exactonline.<table>` (the file is not named like the schema)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

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
