"""Run the fake Exact server in its own process (for scripts measuring or demonstrating the tap)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
URL_PREFIX = "FAKE_EXACT_URL="


def spawn_fake_exact(*cli_args: str) -> tuple[subprocess.Popen[str], str]:
    """Start `python -m fake_exact --port 0 <cli_args>`; return the process and its URL."""
    server = subprocess.Popen(
        [sys.executable, "-m", "fake_exact", "--port", "0", *cli_args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdout is not None
    line = server.stdout.readline().strip()
    if not line.startswith(URL_PREFIX):
        server.kill()
        raise SystemExit(f"The fake Exact server did not start: {line!r}")
    return server, line.removeprefix(URL_PREFIX)
