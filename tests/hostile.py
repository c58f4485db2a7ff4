"""The world as operations meet it, made for real in a test: small or full filesystems, read-only
mounts, a file bind-mounted on its own (as `docker run -v tokens.json:/app/tokens.json` does), a
machine whose clock is fast, a job that is not root, a umask of 0, a process killed at one
moment.

Mounts need root (CI runs as root); where mounting is not permitted the test is skipped with
the reason, never faked.
"""

from __future__ import annotations

import errno
import functools
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


@functools.cache
def _can_mount() -> str | None:
    """None if this process may mount filesystems, else why not."""
    if os.geteuid() != 0:
        return "mounting needs root"
    probe = Path(tempfile.mkdtemp(prefix="mount-probe-"))
    try:
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(probe)],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            return f"mount is not permitted here: {done.stderr.strip()}"
        subprocess.run(["umount", str(probe)], check=True)
        return None
    finally:
        probe.rmdir()


def require_mounts() -> None:
    reason = _can_mount()
    if reason is not None:
        pytest.skip(reason)


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True)


def _umount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], check=False, capture_output=True)


@contextmanager
def tmpfs(path: Path, *, size: str = "1m", inodes: int | None = None) -> Iterator[Path]:
    """A small tmpfs of its own at `path` (made if missing), removed afterwards."""
    require_mounts()
    path.mkdir(parents=True, exist_ok=True)
    options = f"size={size},mode=0755" + (f",nr_inodes={inodes}" if inodes else "")
    _mount("-t", "tmpfs", "-o", options, "tmpfs", str(path))
    try:
        yield path
    finally:
        _umount(path)


def remount(path: Path, *, read_only: bool) -> None:
    _mount("-o", f"remount,{'ro' if read_only else 'rw'}", str(path))


def fill_blocks(directory: Path) -> Path:
    """Write a file until the filesystem is full (ENOSPC); return it (delete it to free)."""
    filler = directory / "filler.bin"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for size in (65536, 4096, 1):  # down to the last byte
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
    finally:
        os.close(fd)
    return filler


def fill_inodes(directory: Path) -> Path:
    """Create empty files until no inode is left; return their folder (delete it to free)."""
    folder = directory / "inodes"
    folder.mkdir()
    number = 0
    try:
        while True:
            (folder / str(number)).touch()
            number += 1
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
    return folder


@contextmanager
def bind_file(source: Path, target: Path) -> Iterator[Path]:
    """Mount the file `source` on the file `target`, as Docker mounts a single file."""
    require_mounts()
    target.touch()
    _mount("--bind", str(source), str(target))
    try:
        yield target
    finally:
        _umount(target)


@contextmanager
def vanished_folder(path: Path) -> Iterator[Path]:
    """A folder still shown at `path` whose directory was deleted (a host folder mounted into a
    container, then removed on the host): nothing can be created in it (ENOENT)."""
    require_mounts()
    source = path.with_name(path.name + "-deleted")
    source.mkdir(parents=True)
    path.mkdir()
    _mount("--bind", str(source), str(path))
    source.rmdir()
    try:
        yield path
    finally:
        _umount(path)


def fast_clock_env(directory: Path, seconds_ahead: float) -> dict[str, str]:
    """Environment for a Python process whose clock (time.time) runs `seconds_ahead` ahead,
    like a machine whose clock has drifted: a sitecustomize module that Python imports at
    start-up."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "sitecustomize.py").write_text(
        "import time\n"
        "_real_time = time.time\n"
        f"time.time = lambda: _real_time() + {float(seconds_ahead)!r}\n"
    )
    return {"PYTHONPATH": str(directory)}


NOBODY = 65534


def as_nobody() -> list[str]:
    """Command prefix that runs a program as the user nobody: a job that is not root, which may
    not replace another user's file in a sticky folder such as /tmp. It keeps the right to read
    every file (CAP_DAC_READ_SEARCH) only because this Python may live under root's home."""
    setpriv = shutil.which("setpriv")
    if os.geteuid() != 0 or setpriv is None:
        pytest.skip("running a program as another user needs root and setpriv")
    return [
        setpriv,
        f"--reuid={NOBODY}",
        f"--regid={NOBODY}",
        "--clear-groups",
        "--inh-caps=+dac_read_search",
        "--ambient-caps=+dac_read_search",
    ]


@contextmanager
def umask(mask: int) -> Iterator[None]:
    """Processes started meanwhile inherit `mask` (a container or a cron job set to 0)."""
    before = os.umask(mask)
    try:
        yield
    finally:
        os.umask(before)


def killed_at_rename_env(directory: Path, file_name: str) -> dict[str, str]:
    """Environment for a Python process that is SIGKILLed the moment it renames a file onto one
    named `file_name` (everything written, nothing renamed): a sitecustomize module that Python
    imports at start-up, as for `fast_clock_env`."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "sitecustomize.py").write_text(
        "import os, signal\n"
        "_real_replace = os.replace\n"
        "def _replace(source, target, *args, **kwargs):\n"
        f"    if os.path.basename(os.fspath(target)) == {file_name!r}:\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
        "    return _real_replace(source, target, *args, **kwargs)\n"
        "os.replace = _replace\n"
    )
    return {"PYTHONPATH": str(directory)}
