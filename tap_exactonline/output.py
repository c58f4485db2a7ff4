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

import os
import sys

from singer_sdk.contrib.msgspec import MsgSpecWriter
from singer_sdk.singerlib import Message, RecordMessage
from typing_extensions import override

from tap_exactonline.termination import GUARD

# About 25 records of a wide stream; below the 64 KiB a Linux pipe holds.
FLUSH_BYTES = 60 * 1024


class BatchingWriter(MsgSpecWriter):
    def __init__(self) -> None:
        super().__init__()
        self._pending = bytearray()

    @override
    def write_message(self, message: Message) -> None:
        self._pending += self.format_message(message)
        if type(message) is not RecordMessage or len(self._pending) >= FLUSH_BYTES:
            self.flush()

    def flush(self) -> None:
        if self._pending:
            with GUARD.hold():
                _write_whole(self._pending)
                del self._pending[:]


def _write_whole(data: bytearray) -> None:
    """All of `data` to stdout, or an exception.

    Not through `sys.stdout.buffer`: a BufferedWriter blocked on a full pipe, whose wait a
    signal interrupts (even one whose handler returns), can report fewer bytes written than it
    was given and drop the rest (seen: 4 KiB of a record gone, the next line glued on).
    `os.write` reports what the kernel took; the loop writes the remainder.
    """
    stdout = sys.stdout
    try:
        fd = stdout.fileno()
    except (AttributeError, OSError, ValueError):  # in-memory stdout (the SDK's test runner)
        stdout.buffer.write(data)
        stdout.buffer.flush()
        return
    stdout.flush()  # anything written through Python's layers goes first
    written = 0
    with memoryview(data) as view:
        while written < len(view):
            with view[written:] as rest:
                written += os.write(fd, rest)
