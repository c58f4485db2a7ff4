"""The Singer state the tap reads: its file, its shape, and older versions of it.

A state that cannot be read ends the run with one line naming what is wrong and where, before
any request: guessing would read too little (rows lost) or spend the day's calls.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import IO, Any

from tap_exactonline.settings import parse_moment

DIVISION_MOVES_STATE_KEY = "exactonline_division_moves"
# 2: date-times in the state are true instants. A state without this key (version 1) holds
# Exact's wall clock labelled UTC, 1-2 hours ahead of the instant.
STATE_VERSION_KEY = "exactonline_state_version"
STATE_VERSION = 2
BOOKMARK_VALUE_KEYS = ("replication_key_value", "starting_replication_value")
_FIX = (
    "Correct it, or drop that stream's bookmark (`meltano state edit`, or `meltano state clear` "
    "to read everything again)."
)


class StateFileError(ValueError):
    """The incoming state cannot be used: one line, exit 1."""


def read_state_file(handle: IO[str]) -> dict[str, Any]:
    name = getattr(handle, "name", "--state")
    text = handle.read()
    if not text.strip():
        raise StateFileError(
            f"The state file {name} is empty: pass a state written by an earlier run, or no "
            "--state at all for a first run."
        )
    try:
        state = json.loads(text)
    except ValueError as exc:
        raise StateFileError(
            f"The state file {name} is not JSON (line {getattr(exc, 'lineno', '?')}): pass a "
            "state written by an earlier run."
        ) from None
    if not isinstance(state, dict):
        raise StateFileError(f"The state file {name} holds a JSON list or value, not an object.")
    return state


def check_state(state: dict[str, Any]) -> None:
    """Raise StateFileError for bookmarks no run of ours writes."""
    bookmarks = state.get("bookmarks")
    if bookmarks is None:
        return
    if not isinstance(bookmarks, dict):
        raise StateFileError(f"The state's `bookmarks` is not an object of streams. {_FIX}")
    for stream, bookmark in bookmarks.items():
        if not isinstance(bookmark, dict):
            raise StateFileError(
                f"The state's bookmark of stream {stream} is not an object. {_FIX}"
            )
        partitions = bookmark.get("partitions", [])
        if not isinstance(partitions, list) or not all(
            isinstance(p, dict) and isinstance(p.get("context", {}), dict) for p in partitions
        ):
            raise StateFileError(
                f"The state's bookmark of stream {stream}: `partitions` must be a list of "
                f"objects with a `context`. {_FIX}"
            )
        for place in [bookmark, *partitions]:
            _check_value(stream, place)


def _check_value(stream: str, place: dict[str, Any]) -> None:
    value = place.get("replication_key_value")
    key = str(place.get("replication_key") or "").lower()
    if value is None or key not in ("timestamp", "modified"):
        return
    division = (place.get("context") or {}).get("division")
    where = f"stream {stream}" + (f", division {division}" if division is not None else "")
    if key == "timestamp":
        if isinstance(value, bool) or not isinstance(value, int | str):
            ok = False
        else:
            ok = str(value).strip().isdigit()
        if not ok:
            raise StateFileError(
                f"The state's bookmark of {where} is not a Timestamp (a whole number). {_FIX}"
            )
        return
    problem = StateFileError(
        f"The state's bookmark of {where} is not a date-time ({str(value)[:40]!r}). {_FIX}"
    )
    if not isinstance(value, str):
        raise problem
    try:
        parse_moment(value)
    except ValueError:
        raise problem from None


def upgrade_state(
    state: dict[str, Any], instant_of_wall_labelled_utc: Callable[[str], str]
) -> tuple[dict[str, Any], int]:
    """A state of version 1 labelled Exact's wall clock as UTC: move its date-time bookmarks
    and DivisionMoveDates back to the true instants (1-2 hours earlier, so a row is read again
    rather than skipped, and no division looks moved). Timestamps are untouched. Returns the
    new state and how many bookmarks moved."""
    state = copy.deepcopy(state)
    moved = 0

    def instant_or_none(value: object) -> str | None:
        if not isinstance(value, str) or not value[:4].isdigit() or "T" not in value:
            return None  # a Timestamp (number) or nothing
        try:
            return instant_of_wall_labelled_utc(value)
        except ValueError:
            return None

    for bookmark in (state.get("bookmarks") or {}).values():
        if not isinstance(bookmark, dict):
            continue
        for place in [bookmark, *(bookmark.get("partitions") or [])]:
            for holder in (place, place.get("progress_markers") or {}):
                for key in BOOKMARK_VALUE_KEYS:
                    upgraded = instant_or_none(holder.get(key))
                    if upgraded is not None:
                        holder[key] = upgraded
                        moved += 1
    moves = state.get(DIVISION_MOVES_STATE_KEY)
    if isinstance(moves, dict):
        for division, value in moves.items():
            upgraded = instant_or_none(value)
            if upgraded is not None:
                moves[division] = upgraded
    return state, moved
