"""Singer messages to stdout: RECORD lines in batches, everything else at once, all in order.

The SDK's msgspec writer flushes stdout after every message: one write system call per record,
about a sixth of the tap's CPU on a wide stream. Here RECORD lines collect in a buffer that goes
out when it holds `FLUSH_BYTES`, when any other message comes (STATE, SCHEMA, ACTIVATE_VERSION),
and before the tap waits for Exact (`flush`, called before every request). So a STATE always
follows the records it covers, and the target is never left waiting on records the tap holds
while it waits itself.

A run that dies before a flush loses only records no STATE has covered yet: the next run reads
them again. A flush holds SIGTERM and SIGINT until its bytes are all out and the buffer is empty:
with a loader slower than the tap, the write waits on a full pipe, and the STATE a stop writes
must come after whole lines, neither inside one nor repeating it.
"""

from __future__ import annotations

import logging
import os
import sys

from singer_sdk.contrib.msgspec import MsgSpecWriter
from singer_sdk.singerlib import Message, RecordMessage
from typing_extensions import override

from tap_exactonline.termination import GUARD

LOGGER = logging.getLogger("tap_exactonline.output")
# About 25 records of a wide stream; below the 64 KiB a Linux pipe holds.
FLUSH_BYTES = 60 * 1024


class BatchingWriter(MsgSpecWriter):
    def __init__(self) -> None:
        super().__init__()
        self._pending = bytearray()
        self._broken = False  # the target stopped taking lines: nothing more can reach it

    @override
    def write_message(self, message: Message) -> None:
        self._pending += self.format_message(message)
        if type(message) is not RecordMessage or len(self._pending) >= FLUSH_BYTES:
            self.flush()

    def flush(self) -> None:
        if not self._pending or self._broken:
            return
        with GUARD.hold():
            try:
                _write_out(self._pending)
            except OSError as error:
                # The loader died (EPIPE) or its disk is full: every further line would fail
                # alike, so the run ends here; no later line may claim what was not written.
                self._broken = True
                LOGGER.error(  # noqa: TRY400 - one line, no traceback
                    "Cannot write to the target (%s): stopping the run; the last STATE it "
                    "received stands, and the next run continues from it.",
                    error.strerror or type(error).__name__,
                )
                raise SystemExit(1) from None


def _write_out(pending: bytearray) -> None:
    """Write `pending` to stdout, removing each part once it is written: whatever ends the
    write (an error, a signal), what is left is exactly what has not gone out.

    Not through `sys.stdout.buffer`: a BufferedWriter blocked on a full pipe, whose wait a
    signal interrupts (even one whose handler returns), can report fewer bytes written than it
    was given and drop the rest (seen: 4 KiB of a record gone, the next line glued on).
    `os.write` reports what the kernel took.
    """
    stdout = sys.stdout
    try:
        fd = stdout.fileno()
    except (AttributeError, OSError, ValueError):  # in-memory stdout (the SDK's test runner)
        stdout.buffer.write(pending)
        stdout.buffer.flush()
        del pending[:]
        return
    stdout.flush()  # anything written through Python's layers goes first
    while pending:
        with memoryview(pending) as view:
            written = os.write(fd, view)
        del pending[:written]
