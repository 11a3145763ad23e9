"""File modes of what Herald keeps on disk: only the account Herald runs as may read it.

The data directory (0700) holds the database, ``secret.key`` and snapshots; the
SQLite database and its ``-wal``/``-shm``/``-journal`` files are 0600 (SQLite gives
the side files the mode of the database file, so the database file is created
0600 before SQLite first opens it). Existing installs are tightened at start.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

DIR_MODE = 0o700
FILE_MODE = 0o600
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")


def _tighten(path: Path, mode: int) -> None:
    try:
        if path.stat().st_mode & 0o777 != mode:
            path.chmod(mode)
    except FileNotFoundError:
        pass
    except OSError as exc:  # a mount that does not keep modes, or a file of another user
        log.warning("could not set %s to mode %o: %s", path, mode, exc)


def private_dir(path: Path) -> Path:
    """Make (or tighten) a directory only its owner may enter."""
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    _tighten(path, DIR_MODE)
    return path


def private_file(path: Path) -> Path:
    """Create an empty file 0600 if it is missing, or tighten it to 0600."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
    except FileExistsError:
        _tighten(path, FILE_MODE)
    return path


def private_sqlite(database: Path) -> None:
    """The database file 0600 before SQLite opens it, and its side files 0600 where they exist."""
    if not database.parent.exists():
        private_dir(database.parent)
    private_file(database)
    for suffix in SQLITE_SIDE_FILES:
        _tighten(database.with_name(database.name + suffix), FILE_MODE)
