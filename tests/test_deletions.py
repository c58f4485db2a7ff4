"""Deletions from sync/Deleted land as tombstones in the streams of their entities."""

from __future__ import annotations

from pathlib import Path

from fake_exact import FakeExact
from tests.tap_runner import TapRun, fake_config, run_tap

DIVISIONS = (1001, 1002)
DELETED = "/sync/Deleted"


def deleted_calls(fake: FakeExact) -> list[tuple[str, str, str, int]]:
    return [call for call in fake.calls if call[1].endswith(DELETED)]


def tombstones(run: TapRun, stream: str) -> list[dict]:
    return [r for r in run.records(stream) if r.get("_sdc_deleted_at")]


def schemas(run: TapRun, stream: str) -> list[dict]:
    return [m for m in run.messages if m["type"] == "SCHEMA" and m["stream"] == stream]


def test_deletions_become_tombstones_in_their_streams(tmp_path: Path):
    with FakeExact(divisions=DIVISIONS, rows={"accounts": 40, "contacts": 30}) as fake:
        config = fake_config(fake, divisions=list(DIVISIONS))
        first = run_tap(tmp_path / "1", config, streams={"accounts", "contacts"})
        assert first.returncode == 0, first.stderr[-3000:]
        assert not tombstones(first, "accounts")
        # The deletion log is read once per division, though `deleted` itself is not selected.
        assert len(deleted_calls(fake)) == len(DIVISIONS)

        gone_1001 = fake.delete("accounts", 1001, 3)
        gone_1002 = fake.delete("contacts", 1002, 2)
        calls_before = len(fake.calls)
        second = run_tap(
            tmp_path / "2", config, streams={"accounts", "contacts"}, state=first.final_state
        )
        assert second.returncode == 0, second.stderr[-3000:]
        marked = tombstones(second, "accounts")
        assert {(r["division"], r["id"]) for r in marked} == {(1001, key) for key in gone_1001}
        assert all(set(r) == {"division", "id", "_sdc_deleted_at"} for r in marked)
        marked_contacts = tombstones(second, "contacts")
        assert {(r["division"], r["id"]) for r in marked_contacts} == {
            (1002, key) for key in gone_1002
        }
        # Tombstones travel under a SCHEMA of only the key and _sdc_deleted_at, after the rows.
        narrow = schemas(second, "accounts")[-1]
        assert set(narrow["schema"]["properties"]) == {"division", "id", "_sdc_deleted_at"}
        assert narrow["key_properties"] == ["division", "id"]
        full = schemas(second, "accounts")[0]
        assert "_sdc_deleted_at" in full["schema"]["properties"]
        assert "deleted" not in second.record_counts()  # the raw stream was not selected
        second_calls = [c for c in fake.calls[calls_before:] if c[1].endswith(DELETED)]
        assert len(second_calls) == len(DIVISIONS)  # one page per division

        third = run_tap(
            tmp_path / "3", config, streams={"accounts", "contacts"}, state=second.final_state
        )
        assert third.returncode == 0, third.stderr[-3000:]
        assert not tombstones(third, "accounts") and not tombstones(third, "contacts")


def test_unselected_entities_cost_nothing(tmp_path: Path):
    with FakeExact(divisions=(1001,), rows={"accounts": 20, "journals": 5}) as fake:
        fake.delete("accounts", 1001, 2)
        config = fake_config(fake, token_store=str(tmp_path / "tokens.json"))
        # `journals` has no deletion log entries of its own: no call to sync/Deleted at all.
        run = run_tap(tmp_path / "journals", config, streams={"journals"})
        assert run.returncode == 0, run.stderr[-3000:]
        assert deleted_calls(fake) == []
        # `contacts` has, so the log is read, but accounts' deletions are not sent anywhere.
        run = run_tap(tmp_path / "contacts", config, streams={"contacts"})
        assert run.returncode == 0, run.stderr[-3000:]
        assert len(deleted_calls(fake)) == 1
        assert set(run.record_counts()) == {"contacts"}
        assert not schemas(run, "accounts")


def test_the_raw_deleted_stream_keeps_every_entry(tmp_path: Path):
    with FakeExact(divisions=(1001,), rows={"accounts": 20, "items": 20}) as fake:
        gone = fake.delete("accounts", 1001, 2) + fake.delete("items", 1001, 1)
        run = run_tap(tmp_path, fake_config(fake), streams={"deleted"})
        assert run.returncode == 0, run.stderr[-3000:]
        assert {r["entity_key"] for r in run.records("deleted")} == set(gone)
        assert {r["entity_type"] for r in run.records("deleted")} == {2, 9}
        assert set(run.record_counts()) == {"deleted"}  # no tombstones: nothing else selected


def deleted_partition(state: dict, division: int) -> dict:
    partitions = state["bookmarks"]["deleted"]["partitions"]
    return next(p for p in partitions if p["context"] == {"division": division})


def test_deletions_possibly_lost_to_the_two_month_log_are_reported(tmp_path: Path):
    with FakeExact(divisions=(1001,), rows={"accounts": 20, "contacts": 10}) as fake:
        config = fake_config(fake, token_store=str(tmp_path / "tokens.json"))
        streams = {"accounts", "contacts"}
        first = run_tap(tmp_path / "1", config, streams=streams)
        assert first.returncode == 0, first.stderr[-3000:]
        assert "may be missing" not in first.stderr  # nothing was loaded before
        read_at = deleted_partition(first.final_state, 1001)["deletions_read_at"]
        assert set(read_at) == {"accounts", "contacts"}

        second = run_tap(tmp_path / "2", config, streams=streams, state=first.final_state)
        assert "may be missing" not in second.stderr  # read a moment ago

        # The deletion log was last read 70 days ago for accounts: Exact may have dropped some.
        state = second.final_state
        deleted_partition(state, 1001)["deletions_read_at"]["accounts"] = (
            "2026-01-01T00:00:00+00:00"
        )
        third = run_tap(tmp_path / "3", config, streams=streams, state=state)
        assert third.returncode == 0, third.stderr[-3000:]
        warnings = [line for line in third.stderr.splitlines() if "may be missing" in line]
        assert len(warnings) == 1
        assert "Deletions of accounts in division 1001" in warnings[0]
        assert "add accounts to `resync_streams`" in warnings[0]

        # Loaded before, deletions never read (an older tap, or `deleted` state cleared).
        state = third.final_state
        del state["bookmarks"]["deleted"]
        fourth = run_tap(tmp_path / "4", config, streams=streams, state=state)
        warnings = [line for line in fourth.stderr.splitlines() if "may be missing" in line]
        assert len(warnings) == 2 and all("never read for it" in line for line in warnings)


def test_resync_streams_must_name_sync_streams(tmp_path: Path):
    with FakeExact(divisions=(1001,)) as fake:
        run = run_tap(
            tmp_path, fake_config(fake, resync_streams=["journals", "nope"]), with_catalog=False
        )
        assert run.returncode == 1
        assert (
            "Setting `resync_streams` names streams that are not sync streams: journals, nope"
            in run.stderr
        )
        assert fake.calls == []
