"""Whole lines on a pipe that pushes back, whatever moment SIGTERM lands (issue 22 §1).

A database loader reads slower than the tap writes, so the tap spends most of a run blocked in
`write` on a full pipe; Airflow, Kubernetes and systemd stop jobs with SIGTERM. `capture_output`
never pushes back: here a reader takes 16 KiB every 10 ms from a real pipe, the signal lands
after several amounts read, and then every line must parse, the last STATE must be usable and a
rerun from it must bring every row.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path

import pytest

from fake_exact import FakeExact
from tests.tap_runner import fake_config, run_tap, start_tap

ROWS = 6000
CHUNK = 16 * 1024


class SlowReader(threading.Thread):
    """Reads a pipe 16 KiB every 10 ms, as a loader busy with its database does."""

    def __init__(self, pipe: object) -> None:
        super().__init__(daemon=True)
        self.pipe = pipe
        self.data = bytearray()
        self.read_enough = threading.Event()
        self.enough = 0

    def run(self) -> None:
        while chunk := self.pipe.read1(CHUNK):  # type: ignore[attr-defined]
            self.data += chunk
            if len(self.data) >= self.enough:
                self.read_enough.set()
            time.sleep(0.01)
        self.read_enough.set()


@pytest.mark.parametrize("signal_after_kib", [48, 300, 1200])
def test_sigterm_with_a_slow_reader_leaves_whole_lines_and_a_state_that_resumes(
    tmp_path: Path, signal_after_kib: int
) -> None:
    with FakeExact(
        divisions=(1001,), rows={"transaction_lines": ROWS}, minutely_limit=10**6
    ) as fake:
        config = fake_config(fake, retry_base_seconds=0.01)
        tap = start_tap(tmp_path / "1", config, {"transaction_lines"}, text=False)
        reader = SlowReader(tap.stdout)
        reader.enough = signal_after_kib * 1024
        reader.start()
        try:
            assert reader.read_enough.wait(timeout=120)
            assert tap.poll() is None, "the tap ended before the signal: make the stream longer"
            tap.send_signal(signal.SIGTERM)
            stderr = tap.stderr.read()  # type: ignore[union-attr]
            tap.wait(timeout=120)
            reader.join(timeout=120)
        finally:
            tap.kill()
        log = stderr.decode()
        assert tap.returncode == 128 + signal.SIGTERM, log[-3000:]
        assert "Traceback" not in log, log[-3000:]

        text = reader.data.decode()
        assert text.endswith("\n"), f"the output ends in a cut line: ...{text[-200:]!r}"
        messages = []
        for number, line in enumerate(text.splitlines(), 1):
            try:
                messages.append(json.loads(line))
            except json.JSONDecodeError:
                pytest.fail(f"line {number} is not one JSON message: {line[:120]!r}...")
        first_ids = [m["record"]["id"] for m in messages if m["type"] == "RECORD"]
        assert first_ids, "no record arrived before the signal"
        states = [m["value"] for m in messages if m["type"] == "STATE"]
        assert messages[-1]["type"] == "STATE", "the run did not end with the state it saved"

        second = run_tap(tmp_path / "2", config, streams={"transaction_lines"}, state=states[-1])
        assert second.returncode == 0, second.stderr[-3000:]
        second_ids = [r["id"] for r in second.records("transaction_lines")]
        assert set(first_ids) | set(second_ids) == {
            r["ID"] for r in fake.expected_rows("transaction_lines", 1001)
        }


def test_a_loader_that_dies_ends_the_run_at_once_with_one_line(tmp_path: Path) -> None:
    with FakeExact(
        divisions=(1001, 1002), rows={"transaction_lines": ROWS}, minutely_limit=10**6
    ) as fake:
        config = fake_config(fake, divisions=[1001, 1002], retry_base_seconds=0.01)
        tap = start_tap(tmp_path, config, {"transaction_lines"}, text=False)
        try:
            assert tap.stdout is not None
            tap.stdout.read(256 * 1024)
            tap.stdout.close()  # the loader is gone: every further write fails (EPIPE)
            calls = fake.data_calls("TransactionLines")
            stderr = tap.stderr.read().decode()  # type: ignore[union-attr]
            tap.wait(timeout=120)
        finally:
            tap.kill()
        assert tap.returncode == 1, stderr[-3000:]
        assert "Cannot write to the target" in stderr
        assert "Traceback" not in stderr
        # Not one more page of this division, and no other division, is read for nobody.
        assert fake.data_calls("TransactionLines") <= calls + 1
