"""Which divisions a run reads, which of them it may read, and which moved database.

`divisions` is a list of codes, `all` (every division system/Divisions lists for the user) or
`current` (the login's current division). A division Exact closes (403) is skipped for every
stream, once found; a division whose DivisionMoveDate changed has its sync streams read again.
"""

from __future__ import annotations

from functools import cached_property
from http import HTTPStatus
from typing import TYPE_CHECKING

from tap_exactonline.errors import DIVISION_WIDE_REASONS, RUN_ENDING_ERRORS, EntityRefusedError
from tap_exactonline.http import ODataNextLinkPaginator
from tap_exactonline.pages import odata_rows
from tap_exactonline.settings import in_shard, parse_divisions, parse_shard
from tap_exactonline.state import DIVISION_MOVES_STATE_KEY

if TYPE_CHECKING:
    from tap_exactonline.session import RunSession


class Divisions:
    def __init__(self, session: RunSession) -> None:
        self._session = session
        # Divisions Exact answered 403 for, checked once: skipped for every stream.
        self._access: dict[int, bool] = {}

    @cached_property
    def _choice(self) -> list[int] | str:
        return parse_divisions(self._session.config.get("divisions"))  # validated before

    @property
    def configured(self) -> list[int]:
        """The codes listed in `divisions` (none for `all` and `current`)."""
        choice = self._choice
        return choice if isinstance(choice, list) else []

    @property
    def every_one_of_login(self) -> bool:
        """`divisions: all`."""
        return self._choice == "all"

    @cached_property
    def to_read(self) -> list[int]:
        """The divisions this run reads, in order; found (and checked for moves) once."""
        session = self._session
        choice = self._choice
        divisions: list[int]
        if choice == "all":
            divisions = sorted(self.of_login)
            session.logger.info(
                "`divisions: all`: reading the %d divisions system/Divisions lists: %s.",
                len(divisions),
                ", ".join(map(str, divisions)),
            )
        elif choice == "current":
            divisions = [session.current_division]
            session.logger.info("Reading the login's current division %d.", divisions[0])
        else:
            divisions = self.configured
        shard = parse_shard(session.config.get("division_shard"))  # validated before
        if shard is not None:
            every = divisions
            divisions = [division for division in every if in_shard(division, shard)]
            session.logger.info(
                "`division_shard` %d/%d: this job reads %d of the %d divisions: %s.",
                *shard,
                len(divisions),
                len(every),
                ", ".join(map(str, divisions)) or "none",
            )
        self._resync_moved(divisions)
        return divisions

    @cached_property
    def of_login(self) -> dict[int, str | None]:
        """Every division system/Divisions lists for the user -> its DivisionMoveDate."""
        session = self._session
        url: str | None = (
            f"{session.api_base}/{session.current_division}/system/Divisions"
            "?$select=Code,DivisionMoveDate"
        )
        found: dict[int, str | None] = {}
        # The streams' paginator: it follows `__next` only to our own host (it carries the token).
        next_page = ODataNextLinkPaginator(origin=session.origin, may_continue=lambda: True)
        while url:
            response = session.get(url)
            for row in odata_rows(response):
                moved = row.get("DivisionMoveDate")
                found[int(row["Code"])] = moved and str(session.clock.read_instant(moved))
            url = next_page.get_next_url(response)
        return found

    def _resync_moved(self, divisions: list[int]) -> None:
        """Exact renumbers every Timestamp of a division that moves database: when a division's
        DivisionMoveDate differs from the one in the state, its sync bookmarks are void."""
        session = self._session
        sync_streams = [s for s in session.streams().values() if s.uses_timestamps]
        if not any(stream.selected for stream in sync_streams):
            return  # nothing here depends on Timestamps: no call for it
        try:
            self.of_login  # noqa: B018 - fetched here so a refusal is only a warning
        except EntityRefusedError as error:
            session.logger.warning(
                "Cannot check whether a division moved database (%s); sync streams continue "
                "from their bookmarks.",
                error,
            )
            return
        known: dict[str, str | None] = session.state.setdefault(DIVISION_MOVES_STATE_KEY, {})
        for division in divisions:
            if division not in self.of_login:
                continue  # not listed for this user: its streams will say so
            moved = self.of_login[division]
            if str(division) in known and known[str(division)] != moved:
                session.logger.warning(
                    "Division %d moved to another Exact database (DivisionMoveDate %s, was %s): "
                    "Exact renumbered its Timestamps, so its sync streams are read again from "
                    "the start.",
                    division,
                    moved,
                    known[str(division)],
                )
                for stream in sync_streams:
                    stream.get_context_state({"division": division}).pop(
                        "replication_key_value", None
                    )
            known[str(division)] = moved

    # --- access ---------------------------------------------------------------------------------

    def closed(self, division: int | None) -> bool:
        """Found closed to this login in this run (asked for every parent row: a lookup)."""
        return division is not None and self._access.get(division) is False

    @property
    def forbidden(self) -> list[int]:
        return sorted(d for d, ok in self._access.items() if not ok)

    def forbids(self, division: int | None, error: EntityRefusedError) -> bool:
        """Is a 403 about the whole division rather than this entity? Exact's `Reason` header
        says so when it names a division-wide reason; without one, ask once per division with a
        request every user with access to it may make."""
        if division is None or error.status != HTTPStatus.FORBIDDEN:
            return False
        if division not in self._access:
            # When Exact says why, a probe would only cost another counted error.
            closed = error if error.reason in DIVISION_WIDE_REASONS else self._probe(division)
            self._access[division] = closed is None
            if closed is not None:
                self._report_closed(division, error, closed.reason)
        return not self._access[division]

    def _probe(self, division: int) -> EntityRefusedError | None:
        """The 403 a cheap request into the division gets, or None if the division is open."""
        session = self._session
        try:
            session.get(f"{session.api_base}/{division}/system/Divisions?$select=Code&$top=1")
        except EntityRefusedError as probe:
            return probe if probe.status == HTTPStatus.FORBIDDEN else None
        except RUN_ENDING_ERRORS as failure:  # the probe may find the user blocked, say
            session.stop_with_error(failure)
        return None

    def _report_closed(self, division: int, error: EntityRefusedError, reason: str | None) -> None:
        logger = self._session.logger
        advice = DIVISION_WIDE_REASONS.get(reason or "")
        if advice is not None:
            logger.error(
                "Division %d cannot be read: Exact answers HTTP 403 (Reason: %s): %s. Skipping "
                "it for every stream; the other divisions go on.",
                division,
                reason,
                advice,
            )
            return
        logger.error(
            "Division %d is not accessible to this login (%s): skipping it for every stream; "
            "the other divisions go on. Check the user's rights to it in Exact and the "
            "divisions granted when the app was authorized.",
            division,
            error,
        )
