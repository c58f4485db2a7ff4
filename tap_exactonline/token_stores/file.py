"""Tokens in a local JSON file, locked with a file lock on a sibling `.lock` file."""

from __future__ import annotations

import errno
import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import filelock

from tap_exactonline.token_stores.common import LOCK_POLL_SECONDS, LOCK_WAIT_SECONDS
from tap_exactonline.token_stores.file_safety import (
    git_exposure,
    make_private_folders,
    make_temp_file,
    os_reason,
    remove_leftovers,
    trust,
)
from tap_exactonline.tokens import TokenCodec, TokenSet, TokenStoreError

LOGGER = logging.getLogger("tap_exactonline.token_stores")


# A rename onto the token file that these refuse may still allow writing the file in place:
# a file bind-mounted on its own (`docker run -v tokens.json:/app/tokens.json`: EBUSY), a mount
# point of another filesystem (EXDEV), a directory the job may not write in (EACCES, EPERM).
_RENAME_REFUSALS = {errno.EBUSY, errno.EXDEV, errno.EACCES, errno.EPERM}
# Room a token file may need: an encrypted one is about 1 KiB.
_PROBE_BYTES = 4096


class FileTokenStore:
    """Tokens in a local JSON file, replaced atomically so a crash never leaves half a file.

    The lock is an flock on a sibling `.lock` file, which (unlike the token file) is never
    replaced, so every process locks the same inode. Where the file cannot be replaced (a file
    bind-mounted on its own into a container), it is rewritten in place with one write of at
    least its old length (padded with spaces, which JSON ignores), then fsynced.

    A token file is trusted only when the user running the tap owns it and nobody else may read
    or write it: one another user made (in a shared folder such as /tmp, where it cannot be
    replaced) or others may write is refused before it is read or written; one of ours others
    may only read is made private. Temporary files a killed run left are removed.
    """

    def __init__(self, path: str | os.PathLike[str], codec: TokenCodec | None = None) -> None:
        self.path = Path(path).expanduser()
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self.codec = codec or TokenCodec(None)
        self._in_place = False
        self._found_empty = False

    def __repr__(self) -> str:
        return f"FileTokenStore({self.path})"

    def exposure(self) -> str | None:
        """Why these tokens could be committed to git, if they could."""
        return git_exposure(self.path)

    def _fail(self, action: str, exc: OSError, path: Path | None = None) -> TokenStoreError:
        where = path or self.path
        return TokenStoreError(
            f"token_store {self.path} cannot be {action}: {os_reason(exc)} ({where})"
        )

    @contextmanager
    def locked(self) -> Iterator[None]:
        try:
            if self.path.is_dir():
                raise IsADirectoryError(errno.EISDIR, "it is a directory")
            for folder in (self.path.parent, *self.path.parent.parents):
                if folder.exists() and not folder.is_dir():
                    raise NotADirectoryError(errno.ENOTDIR, f"Not a directory: {folder}")
            if self.lock_path.is_dir():
                raise IsADirectoryError(errno.EISDIR, "Is a directory")
            make_private_folders(self.path.parent)
        except OSError as exc:
            where = self.lock_path if self.lock_path.exists() else None
            raise self._fail("locked", exc, where) from None
        self._make_lock_file()
        # flock on Linux and macOS, LockFileEx on Windows; released when the process dies.
        lock = filelock.FileLock(self.lock_path, mode=0o600)
        try:
            lock.acquire(timeout=LOCK_WAIT_SECONDS, poll_interval=LOCK_POLL_SECONDS)
        except filelock.Timeout:
            raise TokenStoreError(
                f"token_store {self.path}: another run has held its lock for "
                f"{LOCK_WAIT_SECONDS:.0f} s"
            ) from None
        except OSError as exc:
            raise self._fail("locked", exc, self.lock_path) from None
        try:
            # Every write happens under this lock: a temporary file of this store is a leftover.
            remove_leftovers(self.path, under_lock=True)
            yield
        finally:
            lock.release()

    def _make_lock_file(self) -> None:
        """Create the lock file if it is missing. filelock takes a lock file it cannot create in
        a folder that exists (under /proc, or a mounted folder deleted on the host) for one
        another run holds, and would wait out LOCK_WAIT_SECONDS."""
        try:
            os.close(os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600))
        except OSError as exc:
            raise self._fail("locked", exc, self.lock_path) from None

    def _read_bytes(self) -> bytes | None:
        try:
            with self.path.open("rb") as handle:
                trust(handle.fileno(), self.path)
                return handle.read()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise self._fail("read", exc) from None

    def read(self) -> TokenSet | None:
        remove_leftovers(self.path, under_lock=False)
        raw = self._read_bytes()
        self._found_empty = raw is not None and not raw.strip()
        if raw is None or self._found_empty:
            return None  # absent, or created empty (by touch, or a mount of an empty file)
        where = f"token_store {self.path}"
        try:
            data = json.loads(raw)
        except ValueError:
            raise TokenStoreError(
                f"{where} does not hold JSON. Restore it from a backup, or delete it and "
                "authorize again (tap-exactonline-auth)."
            ) from None
        return self.codec.load(data, where)

    def found_empty(self) -> bool:
        return self._found_empty

    def write(self, tokens: TokenSet) -> None:
        self._write(json.dumps(self.codec.dump(tokens)).encode())

    def prove_writable(self) -> None:
        """Write the current contents back, the way `write` will write new ones, after
        checking there is room for a token file."""
        current = self._read_bytes()
        if current is None:
            self._probe_new()
        else:
            self._write(current, room=_PROBE_BYTES)

    def _probe_new(self) -> None:
        try:
            make_private_folders(self.path.parent)
            fd, temp_name = make_temp_file(self.path)
        except OSError as exc:
            raise self._fail("written", exc, self.path.parent) from None
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(b" " * _PROBE_BYTES)
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as exc:
            raise self._fail("written", exc) from None
        finally:
            Path(temp_name).unlink(missing_ok=True)

    def _write(self, data: bytes, room: int = 0) -> None:
        if not self._in_place:
            try:
                self._replace(data, room)
            except OSError as exc:
                if exc.errno not in _RENAME_REFUSALS or not self.path.is_file():
                    raise self._fail("written", exc) from None
                LOGGER.info(
                    "token_store %s cannot be replaced (%s): writing it in place instead "
                    "(a file mounted on its own, or a directory the job may not write in).",
                    self.path,
                    os_reason(exc),
                )
                self._in_place = True
            else:
                return
        try:
            self._rewrite_in_place(data)
        except OSError as exc:
            raise self._fail("written", exc) from None

    def _replace(self, data: bytes, room: int) -> None:
        make_private_folders(self.path.parent)
        fd, temp_name = make_temp_file(self.path)
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "wb") as handle:
                if room > len(data):  # claim the room first: a full disk fails here
                    handle.write(b" " * room)
                    handle.flush()
                    os.fsync(handle.fileno())
                    handle.seek(0)
                    handle.truncate()
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp_name, self.path)
        except BaseException:
            Path(temp_name).unlink(missing_ok=True)
            raise
        directory = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)  # make the rename itself durable
        finally:
            os.close(directory)

    def _rewrite_in_place(self, data: bytes) -> None:
        """One write from the start, padded to the old length so nothing of the old tokens
        stays behind and no truncation is needed: a process killed mid-way leaves the old
        file or the new one (a write of a few KiB is not split)."""
        with self.path.open("r+b") as handle:
            trust(handle.fileno(), self.path)  # the file in place may not be the one read
            old_length = os.fstat(handle.fileno()).st_size
            handle.write(data.ljust(old_length))
            handle.flush()
            os.fsync(handle.fileno())
