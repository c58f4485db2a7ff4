"""Who may read a token file, and where its tokens could leak: the file's owner and mode, the
folders made for it, the temporary files written next to it (and left by a killed run), git."""

from __future__ import annotations

import logging
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tap_exactonline.tokens import TokenStoreError

LOGGER = logging.getLogger("tap_exactonline.token_stores")

# Temporary files are `.tokens.json.XXXXXXXX.tmp` (named after their store, so two stores in
# one folder never remove each other's). Versions before issue 23 named them `.tokens-XXXXXXXX`
# for every store: such a leftover may be another store's write in progress, so it is removed
# only once it is older than any write.
_TEMP_SUFFIX = ".tmp"
_MKSTEMP_NAME = "[a-z0-9_]{8}"
_OLD_TEMP_NAME = re.compile(rf"\.tokens-{_MKSTEMP_NAME}")
_WRITE_SECONDS = 60.0


def os_reason(exc: OSError) -> str:
    """`No space left on device` and the like: what the user can act on."""
    return exc.strerror or type(exc).__name__


def make_temp_file(path: Path) -> tuple[int, str]:
    """A new file next to the token file `path`, only this user can read (mkstemp: 0600)."""
    return tempfile.mkstemp(prefix=f".{path.name}.", suffix=_TEMP_SUFFIX, dir=path.parent)


def temp_pattern(path: Path) -> str:
    """The .gitignore pattern of the temporary files written next to the token file `path`:
    each holds the tokens until it is renamed over the file (or, if its writer is killed, until
    the next run removes it)."""
    return f".{path.name}.*{_TEMP_SUFFIX}"


def make_private_folders(folder: Path) -> None:
    """Make `folder` and its missing parents readable by their owner only (0700), whatever the
    umask: a token file's folder lists its temporary files, and a folder open to others lets
    them watch every write."""
    missing = []
    for candidate in (folder, *folder.parents):
        if candidate.exists():
            break
        missing.append(candidate)
    for candidate in reversed(missing):
        try:
            os.mkdir(candidate, 0o700)
        except FileExistsError:
            continue  # another job made it meanwhile, or a file is in the way (found later)
        os.chmod(candidate, 0o700)  # mkdir's mode is masked by the umask


def trust(fd: int, path: Path) -> None:
    """Refuse the open token file `fd` if another user owns it or others may write it: they
    could read every token written into it (in a shared folder such as /tmp such a file cannot
    be replaced, only written in place, and a writer keeps what it opened), or have planted
    tokens of their own. Make it private if it is ours and others may only read it: earlier
    versions created token files 0600, but a file made by `touch` or `cp` (for a single-file
    mount, a restore) is usually 0644, and writing in place kept that."""
    if sys.platform == "win32":  # no owner and mode bits to go by
        return
    info = os.fstat(fd)
    if info.st_uid != os.geteuid():
        raise TokenStoreError(
            f"token_store {path} belongs to another user (uid {info.st_uid}), who could read or "
            "replace its tokens: remove it, or chown it to the user running the tap and chmod "
            "600 it."
        )
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o022:
        raise TokenStoreError(
            f"token_store {path} can be written by other users (mode {mode:o}), who could plant "
            "tokens of their own in it or read the new ones: chmod 600 it if you trust what it "
            "holds, else delete it and authorize again (tap-exactonline-auth)."
        )
    if not mode & 0o077:
        return
    try:
        os.fchmod(fd, 0o600)
    except OSError as exc:
        raise TokenStoreError(
            f"token_store {path} is open to other users (mode {mode:o}) and cannot be made "
            f"private ({os_reason(exc)}): chmod 600 it."
        ) from None
    LOGGER.warning(
        "token_store %s was open to other users (mode %o): made it private (mode 600).",
        path,
        mode,
    )


def _is_leftover(path: Path, name: str, age: float, under_lock: bool) -> bool:
    prefix = f".{path.name}."
    own = (
        name.startswith(prefix)
        and name.endswith(_TEMP_SUFFIX)
        and re.fullmatch(_MKSTEMP_NAME, name[len(prefix) : -len(_TEMP_SUFFIX)]) is not None
    )
    if own:  # written only under the store's lock: without it, one may be written right now
        return under_lock or age > _WRITE_SECONDS
    return _OLD_TEMP_NAME.fullmatch(name) is not None and age > _WRITE_SECONDS


def remove_leftovers(path: Path, *, under_lock: bool) -> None:
    """Remove the temporary files of runs killed while writing the token file `path`: each
    holds tokens. Only this user's regular files, named as this store names them (or as
    earlier versions did), and never one being written."""
    if sys.platform == "win32":
        return
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return
    now = time.time()
    for entry in entries:
        try:
            info = entry.stat(follow_symlinks=False)
            if (
                not stat.S_ISREG(info.st_mode)
                or info.st_uid != os.geteuid()
                or not _is_leftover(path, entry.name, now - info.st_mtime, under_lock)
            ):
                continue
            os.unlink(entry.path)
        except OSError:
            continue  # gone meanwhile, or not ours to remove: never a reason to fail
        LOGGER.info(
            "token_store %s: removed %s, a temporary token file left by a run killed while "
            "writing.",
            path,
            entry.name,
        )


def git_exposure(path: Path) -> str | None:
    """Why a token file could end up in a git commit: it, or the temporary files written next
    to it, lie in a git work tree that does not ignore them (one `git add .` from being pushed).
    None when they are ignored, outside any work tree, or git is not installed."""
    folder = path.resolve().parent
    work_tree = next((d for d in (folder, *folder.parents) if (d / ".git").exists()), None)
    git = shutil.which("git")
    if work_tree is None or git is None:
        return None

    def not_ignored(name: Path) -> bool:
        try:
            answer = subprocess.run(
                [git, "-C", str(work_tree), "check-ignore", "--quiet", "--no-index", str(name)],
                capture_output=True,
                timeout=10,
                check=False,
            )
        except (OSError, subprocess.SubprocessError):
            return False
        return answer.returncode == 1  # 0: ignored; 128: git could not tell

    pattern = temp_pattern(path)
    where = f"token_store {path} is in the git work tree {work_tree} and git does not ignore"
    if not_ignored(path):
        return (
            f"{where} it: add it and `{pattern}` (its temporary files) to .gitignore (or keep "
            "it outside the repository) so the tokens are never committed."
        )
    if not_ignored(folder / pattern.replace("*", "a1b2c3d4")):
        return (
            f"{where} the temporary files written next to it, which hold the tokens: add "
            f"`{pattern}` to .gitignore so the tokens are never committed."
        )
    return None
