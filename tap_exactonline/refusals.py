"""What Exact refused in this run, and whether that fails the run.

A stream Exact refuses in a division (400, 403, 404) is reported once and skipped there; the run
goes on. At the end, the run fails only for what the user asked for by name: a refused stream
selected by name, or a division listed in `divisions` that could not be read.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tap_exactonline.run_report import described

if TYPE_CHECKING:
    from tap_exactonline.session import RunSession


class Refusals:
    def __init__(self, session: RunSession) -> None:
        self._session = session
        # (stream, division) pairs Exact refused: reported once, summed up at the end.
        self.refused: set[tuple[str, int | None]] = set()

    def report(self, stream: str, division: int | None, error: Exception) -> None:
        """Exact refuses this stream in this division: say so once; the rest of the run goes on."""
        if (stream, division) in self.refused:
            return
        self.refused.add((stream, division))
        self._session.logger.error("%s. Skipping it; the other streams and divisions go on.", error)

    def is_refused(self, stream: str, division: int | None) -> bool:
        # Asked for every parent row of a child stream: set and dict lookups only.
        return (stream, division) in self.refused or self._session.divisions.closed(division)

    def explicitly_selected(self, stream: str) -> bool:
        """Selected by name in the input catalog, not by default or by selecting everything."""
        catalog = self._session.input_catalog()
        entry = catalog.get(stream) if catalog else None
        if catalog is None or entry is None or entry.metadata.root.selected is not True:
            return False
        # Meltano's default `select: ["*.*"]` marks every stream, and `*.*` with a few
        # `!stream.*` exclusions nearly every one: nothing chosen in particular. Nobody names
        # half of the 300-odd streams one by one.
        selected = sum(other.metadata.root.selected is True for other in catalog.values())
        return selected * 2 <= len(self._session.streams())

    def judge(self) -> bool:
        """Fail the run (True) only for refused streams, or divisions, the user asked for by
        name."""
        logger = self._session.logger
        divisions = self._session.divisions
        named = [d for d in divisions.forbidden if d in divisions.configured]
        if named:
            logger.error(
                "Divisions you listed in `divisions` could not be read: %s. Failing the run; "
                "everything else was synced and its state saved.",
                ", ".join(map(str, named)),
            )
            return True
        if not self.refused:
            return False
        skipped = ", ".join(
            described(stream, division)
            for stream, division in sorted(self.refused, key=lambda key: (key[0], key[1] or 0))
        )
        wanted = sorted({stream for stream, _ in self.refused if self.explicitly_selected(stream)})
        if wanted:
            logger.error(
                "Exact refused streams you selected: %s. Failing the run; everything else was "
                "synced and its state saved.",
                ", ".join(wanted),
            )
            return True
        logger.warning(
            "Skipped because Exact refused them: %s. They were not selected by name, so they do "
            "not fail the run.",
            skipped,
        )
        return False
