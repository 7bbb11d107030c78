"""Files shared by every run under ``paths.cache``: written whole or not at all, checked when read.

Jobs of a sweep, later sweeps and concurrent jobs read what one of them wrote, so an entry is
written to a temporary name in its folder and renamed into place (a reader sees the old file, the
new one, or none: never half of one), and carries a checksum of its content so that a truncated or
altered file is detected and recomputed, never trusted.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def content_digest(chunks: Iterable[bytes | memoryview]) -> str:
    """The SHA-256 (hex) of the concatenated ``chunks``."""
    sha = hashlib.sha256()
    for chunk in chunks:
        sha.update(chunk)
    return sha.hexdigest()


def file_digest(path: Path, block: int = 1 << 22) -> str:
    """The SHA-256 (hex) of a file's bytes, read ``block`` bytes at a time."""
    with path.open("rb") as handle:
        return content_digest(iter(lambda: handle.read(block), b""))


def atomic_path(path: Path) -> Path:
    """A new, unique temporary file next to ``path`` (same folder, so that renaming it is atomic)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    return Path(name)


def publish(temporary: Path, path: Path) -> Path:
    """Flush ``temporary`` to disk and rename it to ``path`` (replacing it), atomically."""
    with temporary.open("rb") as handle:
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    return path


def write_atomic(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file and a rename."""
    temporary = atomic_path(path)
    try:
        temporary.write_bytes(data)
        return publish(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, payload: Any) -> Path:
    """``payload`` as sorted, indented JSON, written atomically."""
    return write_atomic(path, json.dumps(payload, sort_keys=True, indent=1).encode("utf-8"))


def read_json(path: Path) -> Any | None:
    """The JSON in ``path``, or None when it is missing or does not parse (a broken entry)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
