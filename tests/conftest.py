"""Fixtures for pipeline tests: a throwaway PostgreSQL (pgserver) and isolated Meltano projects.

- `postgres` (session): PostgreSQL 16 from pgserver, reachable over TCP on 127.0.0.1 and over
  its unix socket; `pg_database` (function): a fresh, empty database on it.
- `meltano_plugins` (session): the repo's loaders installed once per session in a temp dir.
- `meltano_project` (function): a temp Meltano project (copy of meltano.yml whose tap runs this
  repo's code from the project venv) sharing those installed loaders; its own state database.
- `run_meltano(project, *args, env=..., input=...)`: the real `meltano` CLI, with a clean env.
- `s3_emulator` (session): moto's S3 server on 127.0.0.1; `s3_bucket` (function): a fresh
  bucket on it, with the environment set so that s3fs (in this process and in every tap
  subprocess) talks to the emulator and nowhere else.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import warnings
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import psycopg
import pytest
import requests
import yaml

from fake_exact import FakeExact
from tap_exactonline.odata import RecordPlan
from tap_exactonline.pages import RowShape

REPO_ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent  # the venv running pytest (uv: /work/main/.venv)
MELTANO = VENV_BIN / "meltano"
TAP_EXECUTABLE = VENV_BIN / "tap-exactonline"  # editable install of this repo
LOADERS = ("target-postgres", "target-duckdb")  # installed once per session

# Variables never inherited from the developer's shell: a stray TAP_EXACTONLINE_REFRESH_TOKEN
# must not reach a test run (and rotate a real token), nor MELTANO_* change the project.
_SCRUBBED_PREFIXES = ("MELTANO_", "TAP_EXACTONLINE_", "TARGET_POSTGRES_", "TARGET_DUCKDB_")
_MELTANO_DEFAULTS = {
    "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
    "MELTANO_CLI_DISABLE_VERSION_CHECK": "true",
    # No plugin here has a variant, so the Hub is never needed: make any lookup fail locally.
    "MELTANO_HUB_URL": "http://127.0.0.1:9",
    "MELTANO_AUTO_INSTALL": "false",
}


@pytest.fixture(scope="session", autouse=True)
def _runs_outside_the_checkout(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Every process a test starts runs in an empty folder: in the checkout, a developer's
    `.exactonline/tokens.json` (left by `tap-exactonline-auth`) would be taken as the token
    store of each tap run without `token_store`, and a test chain written over it."""
    before = Path.cwd()
    os.chdir(tmp_path_factory.mktemp("cwd"))
    yield
    os.chdir(before)


@contextmanager
def token_answers_held(
    fake: FakeExact, timeout: float = 60
) -> Iterator[tuple[threading.Event, threading.Event]]:
    """Hold the fake server's token answers (the refresh already decided, the answer not yet
    sent) until `release` is set or `timeout` passes; yields `(arrived, release)`, `arrived` set
    when a token request is being held. On exit the held answer goes out and the hold is gone."""
    arrived, release = threading.Event(), threading.Event()

    def hold(_response: object) -> None:
        arrived.set()
        release.wait(timeout=timeout)

    fake.on_token_answer(hold)
    try:
        yield arrived, release
    finally:
        release.set()
        fake.on_token_answer(None)


# --------------------------------------------------------------------------- PostgreSQL


@dataclass(frozen=True)
class Postgres:
    """Connection facts of the test server (trust auth; the role has a password anyway)."""

    host: str  # 127.0.0.1 (TCP)
    port: int
    socket_dir: Path
    user: str
    password: str  # target-postgres refuses host/port settings without a password
    database: str

    @property
    def sqlalchemy_url(self) -> str:
        """TCP URL for target-postgres `sqlalchemy_url`."""
        return (
            f"postgresql+psycopg://{self.user}:{self.password}@{self.host}:{self.port}"
            f"/{self.database}"
        )

    @property
    def socket_sqlalchemy_url(self) -> str:
        """Unix-socket URL (target-postgres's `host` setting cannot take a socket path)."""
        return (
            f"postgresql+psycopg://{self.user}:{self.password}@/{self.database}"
            f"?host={self.socket_dir}&port={self.port}"
        )

    @property
    def conninfo(self) -> str:
        return (
            f"host={self.host} port={self.port} user={self.user} password={self.password}"
            f" dbname={self.database}"
        )

    def connect(self) -> psycopg.Connection[tuple[Any, ...]]:
        return psycopg.connect(self.conninfo, autocommit=True)

    def psql_env(self, path: str) -> dict[str, str]:
        """The variables psql reads the server from, and pgserver's psql first on `path`."""
        import pgserver  # noqa: PLC0415  (see the postgres fixture)

        client = Path(pgserver.__file__).parent / "pginstall" / "bin"
        return {
            "PGHOST": self.host,
            "PGPORT": str(self.port),
            "PGUSER": self.user,
            "PGPASSWORD": self.password,
            "PGDATABASE": self.database,
            "PATH": f"{client}{os.pathsep}{path}",
        }

    def target_env(self, schema: str = "exactonline") -> dict[str, str]:
        """TARGET_POSTGRES_* variables for `meltano run/invoke ... target-postgres`."""
        return {
            "TARGET_POSTGRES_HOST": self.host,
            "TARGET_POSTGRES_PORT": str(self.port),
            "TARGET_POSTGRES_USER": self.user,
            "TARGET_POSTGRES_PASSWORD": self.password,
            "TARGET_POSTGRES_DATABASE": self.database,
            "TARGET_POSTGRES_DEFAULT_TARGET_SCHEMA": schema,
        }


def _free_port() -> int:
    """A port on 127.0.0.1 nobody listens on: free to bind, and refusing connections."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


JSON = {"Accept": "application/json"}


def authorized(fake: FakeExact) -> requests.Session:
    """HTTP to a fake server with a valid access token (no tap in between)."""
    s = requests.Session()
    s.headers.update({**JSON, "Authorization": f"Bearer {fake.grant_access_token()}"})
    return s


@pytest.fixture
def session(fake: FakeExact) -> requests.Session:
    """`authorized` HTTP to the module's `fake` server."""
    return authorized(fake)


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """PostgreSQL started by pgserver in a temp dir, stopped and deleted at the end."""
    # Not under tmp_path_factory: as root, pgserver runs postgres as user `pgserver` and opens
    # up the parent dirs, but every pytest session that starts meanwhile resets
    # /tmp/pytest-of-root to 0700, and the server then PANICs (pg_control: permission denied).
    # Imported here: pgserver has no wheels for the newest Pythons, where CI runs only the
    # smoke tests (no PostgreSQL).
    with warnings.catch_warnings():  # platformdirs, at import: "XDG_RUNTIME_DIR is not set"
        warnings.simplefilter("ignore")
        import pgserver  # noqa: PLC0415
        from pgserver._commands import POSTGRES_BIN_PATH  # noqa: PLC0415

    root = Path(tempfile.mkdtemp(prefix="pytest-pgserver-"))
    pgdata = root / "data"
    # pgserver starts a socket-only server (`-h ""`).
    server = pgserver.get_server(pgdata, cleanup_mode=None)
    socket_dir = server.get_postmaster_info().socket_dir or pgdata
    port = _free_port()

    def pg_ctl(*args: str) -> None:
        # No pipes: the postmaster would inherit them and keep them open (pgserver's note).
        cmd = [str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(server.pgdata), *args]
        done = subprocess.run(
            cmd,
            user=server.system_user,
            timeout=60,
            check=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        if done.returncode != 0:
            pytest.fail(f"pg_ctl {args[-1]} failed:\n{server.log.read_text()[-3000:]}")

    # Restart listening on TCP as well, so the loader's host/port settings work as in production.
    pg_ctl("-w", "-o", f"-h 127.0.0.1 -p {port} -k {socket_dir}", "-l", str(server.log), "restart")
    pg = Postgres("127.0.0.1", port, socket_dir, "postgres", "postgres", "postgres")
    try:
        with pg.connect() as conn:
            conn.execute(f"ALTER ROLE {pg.user} PASSWORD '{pg.password}'")
        yield pg
    finally:
        pg_ctl("-w", "-m", "fast", "stop")
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def fresh_database(postgres: Postgres, owner: str) -> Iterator[Postgres]:
    """A fresh empty database named after `owner` (a test or a module), dropped afterwards."""
    name = re.sub(r"[^a-z0-9_]", "_", owner.lower())[:50] + f"_{os.getpid()}"
    with postgres.connect() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    yield replace(postgres, database=name)
    with postgres.connect() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_database(postgres: Postgres, request: pytest.FixtureRequest) -> Iterator[Postgres]:
    """A fresh empty database for one test, dropped afterwards."""
    with fresh_database(postgres, request.node.name) as database:
        yield database


# --------------------------------------------------------------------------- S3 emulator


@pytest.fixture(scope="session")
def s3_emulator() -> Iterator[str]:
    """moto's S3 server (it implements conditional writes: `If-None-Match: *`)."""
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(300):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        else:
            pytest.fail("moto's S3 server did not start")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.fixture
def s3_bucket(s3_emulator: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A new bucket; fsspec's FSSPEC_S3_* variables point s3fs at the emulator."""
    environment = {
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "FSSPEC_S3_ENDPOINT_URL": s3_emulator,
    }
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    import s3fs  # noqa: PLC0415

    bucket = f"tokens-{uuid.uuid4().hex[:12]}"
    s3fs.S3FileSystem(endpoint_url=s3_emulator, skip_instance_cache=True).mkdir(bucket)
    return bucket


# --------------------------------------------------------------------------- Meltano


def run_meltano(
    project_dir: Path,
    *args: str,
    env: Mapping[str, str] | None = None,
    input: str | None = None,
    timeout: float = 300,
) -> subprocess.CompletedProcess[str]:
    """Run the project venv's `meltano` in `project_dir`; stdout and stderr captured as text.

    The environment is the current one without MELTANO_*/TAP_EXACTONLINE_*/TARGET_* variables,
    plus safe Meltano defaults (no tracking, no version check, no Hub, no auto-install), plus
    `env`. Does not raise on a non-zero exit: assert on `returncode` (print stderr on failure).
    """
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUBBED_PREFIXES)}
    full_env |= _MELTANO_DEFAULTS | {"MELTANO_PROJECT_ROOT": str(project_dir)}
    full_env |= dict(env or {})
    return subprocess.run(
        [str(MELTANO), *args],
        cwd=project_dir,
        env=full_env,
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def write_test_meltano_yml(dest: Path) -> Path:
    """Copy the repo's meltano.yml, with the tap run from the project venv (no install)."""
    project = yaml.safe_load((REPO_ROOT / "meltano.yml").read_text())
    for tap in project["plugins"]["extractors"]:
        if tap["name"] == "tap-exactonline":
            tap.pop("pip_url", None)  # not installable: Meltano runs `executable` as is
            tap["executable"] = str(TAP_EXECUTABLE)
    dest.mkdir(parents=True, exist_ok=True)
    path = dest / "meltano.yml"
    path.write_text(yaml.safe_dump(project, sort_keys=False))
    return path


def select_streams(project_dir: Path, streams: Iterable[str]) -> None:
    """The tap's `select` in the project's meltano.yml: these streams, every column."""
    meltano_yml = project_dir / "meltano.yml"
    definition = yaml.safe_load(meltano_yml.read_text())
    tap = next(p for p in definition["plugins"]["extractors"] if p["name"] == "tap-exactonline")
    tap["select"] = [f"{stream}.*" for stream in streams]
    meltano_yml.write_text(yaml.safe_dump(definition, sort_keys=False))


def set_plugin_config(project_dir: Path, plugin: str, **config: Any) -> None:
    """Set plugin config in the project's `dev` environment (in meltano.yml, not env vars),
    as `meltano config set` would."""
    path = project_dir / "meltano.yml"
    project = yaml.safe_load(path.read_text())
    env = next(e for e in project["environments"] if e["name"] == "dev")
    plugins = env.setdefault("config", {}).setdefault("plugins", {})
    kind = "extractors" if plugin.startswith("tap-") else "loaders"
    entries = plugins.setdefault(kind, [])
    entry = next((p for p in entries if p["name"] == plugin), None)
    if entry is None:
        entry = {"name": plugin, "config": {}}
        entries.append(entry)
    entry.setdefault("config", {}).update(config)
    path.write_text(yaml.safe_dump(project, sort_keys=False))


@pytest.fixture(scope="session")
def meltano_plugins(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`.meltano/loaders` with LOADERS installed once per session (uv: ~3.5 s, warm cache)."""
    shared = tmp_path_factory.mktemp("meltano-shared")
    write_test_meltano_yml(shared)
    result = run_meltano(shared, "install", *LOADERS, timeout=900)
    if result.returncode != 0:
        pytest.fail(f"meltano install failed:\n{result.stdout}\n{result.stderr}")
    return shared / ".meltano" / "loaders"


@pytest.fixture
def meltano_project(tmp_path: Path, meltano_plugins: Path) -> Path:
    """A fresh Meltano project dir: own meltano.db (state), run/ and logs; shared loaders."""
    project = tmp_path / "project"
    write_test_meltano_yml(project)
    (project / ".meltano").mkdir()
    (project / ".meltano" / "loaders").symlink_to(meltano_plugins, target_is_directory=True)
    return project


def record_of(plan: RecordPlan, row: Mapping[str, Any], division: int | None) -> dict[str, Any]:
    """The record a stream makes of `row` (as decoded into a dict): the row becomes the struct
    of the stream's `RowShape`, then the plan builds the record, as on every page."""
    [struct] = RowShape(plan).rows_of([dict(row)])
    return plan.apply(struct, division)
