"""Finished-work records of the cell-based workflows: fingerprints, atomic writes, checked reads.

``search-channels`` (one cell per triplet and fold) and ``compare-masking`` (one cell per
variant and fold) keep each finished cell as a JSON file so that an interrupted or sharded
run resumes where it stopped. A cell may be reused only when it was computed from the same
inputs and settings, so each cell file carries a *fingerprint*: the SHA-256 of the canonical
JSON (``json.dumps(..., sort_keys=True)``) of every setting that changes its result. A re-run with
another setting finds a different fingerprint and refuses (see :func:`read_cell`), naming
the settings that differ, instead of reporting old numbers for new settings.

Files are written to a temporary file in the same folder, flushed to disk and renamed over
the target (``os.replace`` is atomic on POSIX and Windows), so a reader sees the old file or
the new one, never half of one. A cell file that cannot be parsed anyway (disk full, a copy
cut short) is logged by name and treated as not computed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["file_sha256", "fingerprint", "read_cell", "read_json", "run_lock", "settings_diff", "write_json_atomic"]

logger = logging.getLogger(__name__)


def _canonical(obj: Any) -> str:
    try:
        return json.dumps(obj, sort_keys=True, allow_nan=True)
    except TypeError as e:
        raise TypeError(f"fingerprint settings must be JSON values (dict, list, str, number, bool, None): {e}") from None


def fingerprint(settings: Mapping[str, Any], length: int = 16) -> str:
    """Hex SHA-256 (first ``length`` digits) of the canonical JSON of ``settings``.

    Key order does not matter; tuples and lists hash alike (JSON arrays).

    Args:
        settings: every setting that changes the result (JSON values only).
        length: number of hex digits kept, in [8, 64].

    Raises:
        TypeError: a value that is not JSON (e.g. a ``Path``: pass ``str(path)``).
        ValueError: ``length`` out of range.

    Example:
        >>> fingerprint({"epochs": 5, "lr": 1e-3}) == fingerprint({"lr": 1e-3, "epochs": 5})
        True
    """
    if isinstance(length, bool) or not isinstance(length, int) or not 8 <= length <= 64:
        raise ValueError(f"length must be an integer in [8, 64], got {length!r}.")
    return hashlib.sha256(_canonical(dict(settings)).encode()).hexdigest()[:length]


def file_sha256(path: str | Path, length: int = 16) -> str:
    """Hex SHA-256 (first ``length`` digits) of a file's bytes: the content, not its name or time.

    Raises:
        FileNotFoundError: no such file.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"cannot fingerprint {str(p)!r}: no such file.")
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:length]


def write_json_atomic(path: str | Path, obj: Any) -> Path:
    """Write ``obj`` as JSON to ``path`` through a temporary file, fsync and rename.

    Returns:
        ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def read_json(path: str | Path) -> Any | None:
    """The JSON content of ``path``; None (and a warning naming the file) when absent or unreadable."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, OSError) as e:
        logger.warning("%s is corrupt or half-written (%s: %s); it is recomputed.", path, type(e).__name__, e)
        return None


def settings_diff(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> list[str]:
    """Human-readable ``key: old -> new`` lines for the settings that differ (JSON-normalised)."""
    a = json.loads(_canonical(dict(old or {})))
    b = json.loads(_canonical(dict(new)))
    return [f"{k}: {a.get(k, '(absent)')!r} -> {b.get(k, '(absent)')!r}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


def read_cell(path: str | Path, fingerprint_: str, settings: Mapping[str, Any] | None = None, remedy: str = "") -> dict[str, Any] | None:
    """A finished cell, or None when it must be (re)computed.

    A cell file is finished when it parses as a JSON object with ``"complete": true``. An
    unreadable or unfinished file is logged (by name) and None is returned: the caller
    recomputes it and overwrites the file.

    Args:
        path: the cell file.
        fingerprint_: fingerprint of this run's settings for the cell.
        settings: this run's settings (named in the error when the stored ``settings`` differ).
        remedy: what the user should do, appended to the error message.

    Raises:
        ValueError: a finished cell with another (or no) fingerprint: it was computed with other
            data, code or settings; the message names the file and the settings that differ.
    """
    path = Path(path)
    cell = read_json(path)
    if cell is None:
        return None
    if not isinstance(cell, dict) or not cell.get("complete"):
        logger.warning("%s is not a finished cell (no \"complete\": true); it is recomputed.", path)
        return None
    if cell.get("fingerprint") != fingerprint_:
        diff = settings_diff(cell.get("settings"), settings) if settings is not None and isinstance(cell.get("settings"), dict) else []
        what = f"; settings that differ: {'; '.join(diff)}" if diff else ""
        raise ValueError(
            f"{path} was computed with other data or settings (fingerprint {cell.get('fingerprint')!r}, this run "
            f"{fingerprint_!r}){what}. {remedy}".rstrip()
        )
    return cell


@contextmanager
def run_lock(folder: str | Path, command: str, tag: str = "all") -> Iterator[Path]:
    """Hold ``folder/.lock-<tag>`` while a run writes into ``folder``; refuse a second live run.

    Two runs of a command on one output folder would compute the same cells twice and race
    on the same files. The lock is a file created exclusively (``O_CREAT | O_EXCL``) holding
    the pid and host. ``tag`` ``"all"`` (an unsharded run) conflicts with every other lock;
    a shard tag (e.g. ``"shard-0-of-4"``) conflicts with ``"all"`` and the same shard only, so
    the shards of one run can share a folder. A lock left by a process that no longer runs on
    this host is removed with a warning.

    Args:
        folder: the run's output folder (created).
        command: the command's name, for the message.
        tag: ``"all"`` or a shard tag.

    Yields:
        The lock file.

    Raises:
        ValueError: a live run holds a conflicting lock (its pid, host and lock file named).

    Example:
        >>> with run_lock("runs/search", "search-channels", "shard-0-of-4"):  # doctest: +SKIP
        ...     run_cells()
    """
    import socket

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    host = socket.gethostname()
    mine = folder / f".lock-{tag}"
    others = list(folder.glob(".lock-*")) if tag == "all" else [folder / ".lock-all", mine]
    for p in others:
        info = read_json(p) if p.is_file() else None
        if not isinstance(info, dict) or "pid" not in info:
            continue
        live = info.get("host") != host
        if not live:
            try:
                os.kill(int(info["pid"]), 0)
                live = True
            except ProcessLookupError:
                logger.warning("removing the stale lock %s of pid %s (no longer running)", p, info["pid"])
                p.unlink(missing_ok=True)
            except PermissionError:
                live = True
        if live:
            raise ValueError(
                f"{folder} is in use by another {command} run (pid {info['pid']} on {info.get('host')}, {p.name}); "
                f"wait for it to finish, or delete {p} if that run is gone."
            )
    try:
        fd = os.open(mine, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        raise ValueError(f"{folder} is in use by another {command} run ({mine.name} appeared meanwhile); wait for it to finish.") from None
    with os.fdopen(fd, "w") as f:
        json.dump({"pid": os.getpid(), "host": host, "command": command}, f)
    try:
        yield mine
    finally:
        mine.unlink(missing_ok=True)
