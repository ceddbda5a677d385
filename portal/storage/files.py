"""Owner-only files and directories for everything the instance keeps (keys, the database)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def make_private_dir(path) -> None:
    """Create a directory only its owner can enter (0700), whatever the umask. An existing one
    is left alone: it may be a mount point or a directory the operator set up on purpose."""
    path = Path(path)
    if path.is_dir():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        path.mkdir(mode=0o700)
    except FileExistsError:
        return
    os.chmod(path, 0o700)  # mkdir's mode passes through the umask, which may even drop owner bits


def write_private(path: Path, text: str) -> None:
    """Create ``path`` with mode 0600 (never world-readable, not even briefly); never overwrite."""
    make_private_dir(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.fchmod(fd, 0o600)  # exactly 0600 even under an odd umask
    with os.fdopen(fd, "w") as fh:
        fh.write(text)


def create_private_once(path: Path, text: str) -> str:
    """Create ``path`` (0600) holding ``text`` unless it exists; the text it holds either way.

    Several processes may start on a new instance at once (gunicorn's workers each build the
    app): the file appears complete or not at all (written aside, then linked into place, which
    fails if another process won), so the loser reads the winner's key, never a half-written
    one."""
    aside = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")  # one per creator
    try:
        write_private(aside, text)
        try:
            os.link(aside, path)
        except FileExistsError:
            return path.read_text()
        return text
    finally:
        aside.unlink(missing_ok=True)
