"""The README's first run in a Meltano project, and then docs/scheduling.md's nightly job, each
line run exactly as written, in a new project: `git clone`, `meltano init`, adding the tap from
the clone's meltano-plugin.yml and target-postgres from the Hub, the settings, selection, the
auth command (the browser played by this test), `--test`, `meltano run` into PostgreSQL, then
the job and its schedule, run once by hand.

What differs from a user's machine is only the environment these commands run in, never their
text (no internet here):
- GitHub: git's `url.<base>.insteadOf` (GIT_CONFIG_*) sends the repository's URL, for
  `git clone` and for the install from `pip_url`, to a git copy of this checkout;
- the Meltano Hub: `MELTANO_HUB_URL` points at a stand-in on 127.0.0.1 serving target-postgres
  as this repository's meltano.yml defines it;
- Exact: TAP_EXACTONLINE_BASE_URL and _REDIRECT_URI point the tap at the fake server;
- the placeholders (YOUR_CLIENT_ID, the divisions, the database...): Meltano takes a setting's
  environment variable over the value `meltano config set` wrote, so TAP_EXACTONLINE_* and
  TARGET_POSTGRES_* give the fake server's and the test database's values (and a `start_date`
  before the fake server's rows).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import threading
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from fake_exact import FakeExact
from fake_exact.books import YEAR_END_TYPES
from tests.conftest import (
    _MELTANO_DEFAULTS,
    _SCRUBBED_PREFIXES,
    MELTANO,
    REPO_ROOT,
    Postgres,
    _free_port,
    fresh_database,
    token_answers_held,
)

pytestmark = pytest.mark.pipeline

README = REPO_ROOT / "README.md"
SCHEDULING = REPO_ROOT / "docs" / "scheduling.md"
GITHUB_OWNER = "https://github.com/tap-exactonline/"
HUB_API = "/meltano/api/v1"
STREAMS = ("gl_accounts", "transaction_lines")
DIVISIONS = (1001, 1002)


def marked_commands(path: Path, marker: str) -> list[str]:
    """The command lines of the ```bash block between `<!-- {marker}:start` and
    `<!-- {marker}:end -->`, comments and blank lines left out."""
    assert path.exists(), f"{path.relative_to(REPO_ROOT)} is missing"
    text = path.read_text()
    block = text[text.index(f"<!-- {marker}:start") : text.index(f"<!-- {marker}:end -->")]
    code = block.split("```bash\n", 1)[1].split("```", 1)[0]
    return [line for line in code.splitlines() if line.strip() and not line.startswith("#")]


def git_copy_of_checkout(dest: Path) -> Path:
    """A git repository holding this checkout as it is now (uncommitted changes included), at
    `dest`, so that what is tested is the working tree, not the last commit."""
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"],
        cwd=REPO_ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = REPO_ROOT / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    identity = ["-c", "user.name=test", "-c", "user.email=test@localhost"]
    for args in (
        ["init", "-q", "-b", "main"],
        ["add", "-A"],
        [*identity, "commit", "-q", "-m", "checkout"],
    ):
        subprocess.run(["git", *args], cwd=dest, check=True, capture_output=True)
    return dest


def github_redirect(mirror_root: Path) -> dict[str, str]:
    """Environment that makes git (and uv, which fetches through git) read
    https://github.com/tap-exactonline/<name> from `mirror_root`/<name>, and keeps uv from asking
    GitHub's API for the commit first."""
    return {
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": f"url.{mirror_root}/.insteadOf",
        "GIT_CONFIG_VALUE_0": GITHUB_OWNER,
        "UV_NO_GITHUB_FAST_PATH": "1",
    }


class HubStandIn:
    """The two Meltano Hub API answers `meltano add --plugin-type loader target-postgres` asks
    for (meltano/core/hub/client.py): the loaders index, and target-postgres's definition as
    this repository's meltano.yml defines it."""

    def __init__(self) -> None:
        project = yaml.safe_load((REPO_ROOT / "meltano.yml").read_text())
        target = next(p for p in project["plugins"]["loaders"] if p["name"] == "target-postgres")
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        definition_path = f"{HUB_API}/plugins/loaders/target-postgres--meltanolabs"
        self.answers: dict[str, Any] = {
            f"{HUB_API}/plugins/loaders/index": {
                "target-postgres": {
                    "logo_url": f"{self.url}/logo.png",
                    "default_variant": "meltanolabs",
                    "variants": {"meltanolabs": {"ref": f"{self.url}{definition_path}"}},
                }
            },
            definition_path: target | {"variant": "meltanolabs"},
        }
        self.requested: list[str] = []

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                hub.requested.append(self.path)
                body = json.dumps(hub.answers.get(self.path)).encode()
                self.send_response(200 if self.path in hub.answers else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        return Handler

    def __enter__(self) -> HubStandIn:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Project:
    """The project the README's first run made, with what it ran against."""

    root: Path
    env: dict[str, str]
    fake: FakeExact
    database: Postgres
    token_store: Path
    hub: HubStandIn
    printed: dict[str, str]
    results: dict[tuple[int, int], Decimal]  # the books' result per division and year, at the run

    def row_counts(self, stream: str) -> dict[int, int]:
        with self.database.connect() as connection:
            rows = connection.execute(
                f"SELECT division, count(*) FROM exactonline.{stream} GROUP BY division"
            ).fetchall()
        return dict(rows)

    def expected_counts(self, stream: str) -> dict[int, int]:
        return {d: self.fake.row_count(stream, d) for d in DIVISIONS}


def run_as_written(
    commands: list[str], cwd: Path, env: dict[str, str], printed: dict[str, str] | None = None
) -> Path:
    """Run each line as a shell would, unchanged (what it printed into `printed`); returns the
    folder the last `cd` left."""
    for command in commands:
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
            f"{command}\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
        )
        assert "Traceback" not in result.stderr, command
        if printed is not None:
            printed[command] = result.stdout
    return cwd


@pytest.fixture(scope="module")
def first_run(tmp_path_factory: pytest.TempPathFactory, postgres: Postgres) -> Iterator[Project]:
    work = tmp_path_factory.mktemp("first-run")
    mirror_root = work / "github"
    git_copy_of_checkout(mirror_root / "tap-exactonline.git")
    (mirror_root / "tap-exactonline").symlink_to("tap-exactonline.git")
    users_folder = work / "user"
    users_folder.mkdir()
    token_store = work / "var" / "tokens.json"
    redirect = f"http://127.0.0.1:{_free_port()}/callback"
    with (
        fresh_database(postgres, "readme_first_run") as database,
        HubStandIn() as hub,
        FakeExact(
            divisions=DIVISIONS,
            rows={"gl_accounts": 70, "transaction_lines": 1500},
            minutely_limit=10**6,
        ) as fake,
    ):
        env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUBBED_PREFIXES)}
        env |= _MELTANO_DEFAULTS | github_redirect(mirror_root) | database.target_env()
        env |= {
            "PATH": f"{MELTANO.parent}{os.pathsep}{env.get('PATH', '')}",
            "MELTANO_HUB_URL": hub.url,
            "XDG_CACHE_HOME": str(work / "cache"),  # Meltano caches the Hub's index there
            "TAP_EXACTONLINE_BASE_URL": fake.base_url,
            "TAP_EXACTONLINE_REDIRECT_URI": redirect,
            "TAP_EXACTONLINE_CLIENT_ID": "fake-client-id",
            "TAP_EXACTONLINE_CLIENT_SECRET": "fake-client-secret",
            "TAP_EXACTONLINE_DIVISIONS": json.dumps(list(DIVISIONS)),
            "TAP_EXACTONLINE_TOKEN_STORE": str(token_store),
            # The fake server's rows changed on 2021-01-01 (a start in 2024 would skip them).
            "TAP_EXACTONLINE_START_DATE": "2021-01-01",
        }
        # Division 1001's accountant closed its past years: the year-end closing's entries
        # (Types 326-328) are among the lines, as they are in most administrations.
        fake.close_years(1001, fake.data.today.year - 1)
        printed: dict[str, str] = {}
        commands = marked_commands(README, "first-run")
        env |= database.psql_env(env["PATH"])  # the README's query, as a user's shell has it
        root = run_as_written(commands, users_folder, env, printed)
        yield Project(root, env, fake, database, token_store, hub, printed, results_per_year(fake))


def test_the_readme_first_run_works_as_written(first_run: Project):
    commands = marked_commands(README, "first-run")
    assert any(command.startswith("meltano init ") for command in commands)
    # target-postgres came from the Hub (the stand-in), the tap from the clone's definition.
    assert f"{HUB_API}/plugins/loaders/index" in first_run.hub.requested
    meltano_yml = (first_run.root / "meltano.yml").read_text()
    project = yaml.safe_load(meltano_yml)
    assert [p["name"] for p in project["plugins"]["extractors"]] == ["tap-exactonline"]
    assert [p["name"] for p in project["plugins"]["loaders"]] == ["target-postgres"]
    assert "utilities" not in project["plugins"]
    # The warehouse holds every row of both divisions; the tokens live in the store.
    for stream in STREAMS:
        assert first_run.row_counts(stream) == first_run.expected_counts(stream), stream
    assert first_run.token_store.exists()
    # The install carries bytecode (UV_COMPILE_BYTECODE), whatever PYTHONDONTWRITEBYTECODE.
    venv = first_run.root / ".meltano" / "extractors" / "tap-exactonline" / "venv"
    assert list(venv.rglob("tap_exactonline/__pycache__/tap.*.pyc"))
    # The secret went to .env (sensitive), which `meltano init` git-ignores.
    assert "YOUR_CLIENT_SECRET" in (first_run.root / ".env").read_text()
    assert "YOUR_CLIENT_SECRET" not in meltano_yml


def results_per_year(fake: FakeExact) -> dict[tuple[int, int], Decimal]:
    """Per division and financial year, revenue less costs (credit on P&L accounts positive),
    worked out from the rows the fake serves; the year-end closing's entries, which move a
    closed year's result to the balance sheet, left out (docs/fake-books.md)."""
    results: dict[tuple[int, int], Decimal] = defaultdict(Decimal)
    for division in DIVISIONS:
        chart = {row["ID"]: row for row in fake.expected_rows("gl_accounts", division)}
        for line in fake.expected_rows("transaction_lines", division):
            on_profit_and_loss = chart[line["GLAccount"]]["BalanceType"] == "W"
            if on_profit_and_loss and line["Type"] not in YEAR_END_TYPES:
                results[(division, line["FinancialYear"])] -= Decimal(str(line["AmountDC"]))
    return dict(results)


def test_the_first_run_ends_with_each_years_result(first_run: Project):
    """The README's query prints each division's result per financial year, a closed year's
    too (worked out when the run printed it)."""
    [query] = [c for c in marked_commands(README, "first-run") if c.startswith("psql ")]
    shown = {
        (int(division), int(year)): Decimal(result)
        for division, year, result in re.findall(
            r"^\s*(\d+) \|\s+(\d{4}) \|\s+(-?\d+\.\d\d)$", first_run.printed[query], re.M
        )
    }
    assert shown == first_run.results, first_run.printed[query]
    closed = [year for (division, year), result in shown.items() if division == 1001 and result]
    assert len(closed) >= 3, shown  # the closed years show their result, not zero


def test_the_nightly_schedule_works_as_written(first_run: Project):
    """docs/scheduling.md's job and schedule, run once by hand after rows changed in Exact:
    the changes arrive, no row is duplicated or lost."""
    commands = marked_commands(SCHEDULING, "schedule")
    assert any(command.startswith("meltano schedule add ") for command in commands)
    first_run.fake.mutate("gl_accounts", 1001, update=5, insert=3)
    first_run.fake.mutate("transaction_lines", 1002, update=20, insert=10)
    run_as_written(commands, first_run.root, dict(first_run.env))
    for stream in STREAMS:
        assert first_run.row_counts(stream) == first_run.expected_counts(stream), stream
    with first_run.database.connect() as connection:
        for stream in STREAMS:
            total, distinct = connection.execute(
                f"SELECT count(*), count(DISTINCT (division, id)) FROM exactonline.{stream}"
            ).fetchone() or (0, 0)
            assert total == distinct, stream
    schedules = yaml.safe_load((first_run.root / "meltano.yml").read_text())["schedules"]
    assert [s["job"] for s in schedules] == ["exact-to-warehouse"]


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


def test_a_run_starting_while_the_last_one_is_going_is_refused(first_run: Project):
    """docs/scheduling.md: Meltano refuses a second run of the job while one is going (held
    here in the middle of its token refresh); the first finishes with one refresh, every row."""
    scheduled = next(
        command
        for command in marked_commands(SCHEDULING, "schedule")
        if command.startswith("meltano schedule run ")
    )
    fake = first_run.fake
    fake.advance_clock(601)  # the access token has expired: the run refreshes it
    refreshes = fake.refresh_count
    fake.mutate("gl_accounts", 1002, update=4, insert=2)
    with token_answers_held(fake, timeout=300) as (arrived, _):
        first = subprocess.Popen(
            scheduled,
            shell=True,
            cwd=first_run.root,
            env=first_run.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert arrived.wait(timeout=300), "the first run never refreshed its token"
        second = subprocess.run(
            scheduled,
            shell=True,
            cwd=first_run.root,
            env=first_run.env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    _, first_stderr = first.communicate(timeout=900)
    assert first.returncode == 0, first_stderr[-4000:]
    assert second.returncode != 0
    # The state ID of the README's `meltano run tap-exactonline target-postgres`: the job
    # continues from its bookmarks (docs/scheduling.md).
    running = "Another 'dev:tap-exactonline-to-target-postgres' pipeline is already running"
    assert running in second.stderr, second.stderr[-3000:]
    assert fake.refresh_count == refreshes + 1
    for stream in STREAMS:
        assert first_run.row_counts(stream) == first_run.expected_counts(stream), stream
