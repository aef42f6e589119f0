"""Atomic file writes: write to a temporary name beside the destination, then rename it into place."""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(dest: str | os.PathLike) -> Iterator[Path]:
    """Yields a fresh temporary path next to ``dest``; renames it onto ``dest`` if the block succeeds.

    The temporary name keeps ``dest``'s suffix (``np.savez`` and friends look at it) and lives in the
    same directory, so ``os.replace`` is atomic. If the block raises (or is interrupted), the temporary
    file is removed and ``dest`` is left as it was: a reader never sees a half-written file.
    """
    dest = Path(dest)
    tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:12]}.tmp{dest.suffix}")
    try:
        yield tmp
        os.replace(tmp, dest)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()  # nothing left to remove after a successful rename


def write_json(path: str | os.PathLike, data: dict) -> None:
    """Writes ``data`` as indented JSON atomically; the parent folder is created."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
