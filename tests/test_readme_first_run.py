"""The README's first run in a Meltano project, command by command as written, in a new project:
`meltano init`, adding the tap from meltano-plugin.yml, the settings, selection, the auth
command (the browser played by this test), `--test` and `meltano run` into PostgreSQL.

What differs from a user's machine, and only that: the plugin definition and target-postgres
come from this checkout instead of GitHub and the Meltano Hub (no internet here), so the tap is
installed from the checkout; the placeholders get the fake server's and the test database's
values (and a `start_date` before the fake server's rows); TAP_EXACTONLINE_BASE_URL and
_REDIRECT_URI point the tap at the fake server.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

import pytest
import requests
import yaml

from fake_exact import FakeExact
from tests.conftest import (
    _MELTANO_DEFAULTS,
    _SCRUBBED_PREFIXES,
    MELTANO,
    REPO_ROOT,
    Postgres,
    _free_port,
)

pytestmark = pytest.mark.pipeline

README = REPO_ROOT / "README.md"
START = "<!-- first-run:start"
END = "<!-- first-run:end -->"
PLUGIN_URL = (
    "https://raw.githubusercontent.com/tap-exactonline/tap-exactonline/main/meltano-plugin.yml"
)


def readme_commands() -> list[str]:
    text = README.read_text()
    block = text[text.index(START) : text.index(END)]
    code = block.split("```bash\n", 1)[1].split("```", 1)[0]
    return [line for line in code.splitlines() if line.strip() and not line.startswith("#")]


def local_definitions(work: Path) -> tuple[Path, Path]:
    """meltano-plugin.yml installing the tap from this checkout, and target-postgres as this
    repository defines it (what the Hub would give)."""
    plugin = yaml.safe_load((REPO_ROOT / "meltano-plugin.yml").read_text())
    plugin["pip_url"] = str(REPO_ROOT)
    plugin_path = work / "meltano-plugin.yml"
    plugin_path.write_text(yaml.safe_dump(plugin, sort_keys=False))
    project = yaml.safe_load((REPO_ROOT / "meltano.yml").read_text())
    target = next(p for p in project["plugins"]["loaders"] if p["name"] == "target-postgres")
    target_path = work / "target-postgres.yml"
    target_path.write_text(yaml.safe_dump(target, sort_keys=False))
    return plugin_path, target_path


def test_the_readme_first_run_works_as_written(tmp_path: Path, pg_database: Postgres):
    commands = readme_commands()
    assert any(command.startswith("meltano init ") for command in commands)
    plugin_path, target_path = local_definitions(tmp_path)
    token_store = tmp_path / "var" / "tokens.json"
    redirect = f"http://127.0.0.1:{_free_port()}/callback"
    with FakeExact(
        divisions=(1001, 1002),
        rows={"gl_accounts": 70, "transaction_lines": 1500},
        minutely_limit=10**6,
    ) as fake:
        replacements = {
            PLUGIN_URL: str(plugin_path),
            "meltano add loader target-postgres": (
                f"meltano add loader target-postgres --from-ref {target_path}"
            ),
            "YOUR_CLIENT_ID": "fake-client-id",
            "YOUR_CLIENT_SECRET": "fake-client-secret",
            "[123456, 234567]": "[1001, 1002]",
            "/var/lib/tap-exactonline/tokens.json": str(token_store),
            "host localhost": f"host {pg_database.host}",
            "port 5432": f"port {pg_database.port}",
            "user exact_loader": f"user {pg_database.user}",
            "YOUR_DATABASE_PASSWORD": pg_database.password,
            "database warehouse": f"database {pg_database.database}",
            # The fake server's rows changed on 2021-01-01 (a start in 2024 would skip them).
            "start_date 2024-01-01": "start_date 2021-01-01",
        }
        env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUBBED_PREFIXES)}
        env |= _MELTANO_DEFAULTS | {
            "PATH": f"{MELTANO.parent}{os.pathsep}{env.get('PATH', '')}",
            "TAP_EXACTONLINE_BASE_URL": fake.base_url,
            "TAP_EXACTONLINE_REDIRECT_URI": redirect,
        }
        cwd = tmp_path
        for written in commands:
            command = written
            for placeholder, value in replacements.items():
                command = command.replace(placeholder, value)
            if command.startswith("cd "):
                cwd = cwd / shlex.split(command)[1]
                continue
            if command.startswith("export "):
                name, _, value = command.removeprefix("export ").partition("=")
                env[name] = value
                continue
            if "tap-exactonline:auth --listen" in command:
                authorize(command, cwd, env)
                continue
            result = subprocess.run(
                command,
                shell=True,
                cwd=cwd,
                env=env,
                capture_output=True,
                text=True,
                timeout=900,
                check=False,
            )
            assert result.returncode == 0, (
                f"{written}\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
            )
            assert "Traceback" not in result.stderr, written

        # The warehouse holds every row of both divisions; the tokens live in the store.
        with pg_database.connect() as connection:
            for stream in ("gl_accounts", "transaction_lines"):
                counts = dict(
                    connection.execute(
                        f"SELECT division, count(*) FROM exactonline.{stream} GROUP BY division"
                    ).fetchall()
                )
                assert counts == {d: fake.row_count(stream, d) for d in (1001, 1002)}, stream
        assert token_store.exists()
        # The install carries bytecode (UV_COMPILE_BYTECODE), whatever PYTHONDONTWRITEBYTECODE.
        venv = cwd / ".meltano" / "extractors" / "tap-exactonline" / "venv"
        assert list(venv.rglob("tap_exactonline/__pycache__/tap.*.pyc"))
        # The secret went to .env (sensitive), which `meltano init` git-ignores.
        assert "fake-client-secret" in (cwd / ".env").read_text()
        assert "fake-client-secret" not in (cwd / "meltano.yml").read_text()


def authorize(command: str, cwd: Path, env: dict[str, str]) -> None:
    """Run the auth command and be the browser: open the URL it prints, log in (the fake
    server redirects at once), and read the page the command shows."""
    process = subprocess.Popen(
        command,
        shell=True,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    url = next(line.strip() for line in process.stdout if line.startswith("http"))
    page = requests.get(url, timeout=60)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr[-3000:]
    assert page.status_code == 200 and "authorized" in page.text
    assert "Saved the new tokens" in stdout
