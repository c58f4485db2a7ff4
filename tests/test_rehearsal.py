"""docs/rehearsal.md as written: the fake server started with the page's command, a Meltano
project pointed at it with the page's commands, and the connection test they end in."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from tests.conftest import (
    _MELTANO_DEFAULTS,
    _SCRUBBED_PREFIXES,
    MELTANO,
    REPO_ROOT,
    write_test_meltano_yml,
)

pytestmark = pytest.mark.pipeline

PAGE = REPO_ROOT / "docs" / "rehearsal.md"


def block(name: str) -> str:
    text = PAGE.read_text()
    marked = text[text.index(f"<!-- {name}:start") : text.index(f"<!-- {name}:end -->")]
    return marked.split("```bash\n", 1)[1].split("```", 1)[0]


def test_a_meltano_project_rehearses_against_the_fake_server_as_the_page_says(tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUBBED_PREFIXES)}
    env |= _MELTANO_DEFAULTS
    env["PATH"] = f"{MELTANO.parent}{os.pathsep}{env['PATH']}"  # `meltano` and `uv` as installed
    server = subprocess.Popen(
        ["bash", "-c", f"exec {block('fake-server')}"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert server.stdout is not None
        assert server.stdout.readline().startswith("FAKE_EXACT_URL=http://127.0.0.1:5017")
        project = tmp_path / "project"
        write_test_meltano_yml(project)
        checked = subprocess.run(
            ["bash", "-e", "-c", block("rehearsal")],
            cwd=project,
            env=env | {"MELTANO_PROJECT_ROOT": str(project)},
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)  # no server left holding the page's port
            raise
    output = checked.stdout + checked.stderr
    assert checked.returncode == 0, output[-3000:]
    assert "Connection test passed" in output
    assert "all 2 divisions open: 1001, 1002" in output
    assert (project / ".rehearsal" / "tokens.json").exists()
