"""Tests of dce_monai.workflows.cells: fingerprints, atomic JSON writes, checked cell reads."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from dce_monai.workflows import cells


def test_fingerprint_is_order_free_and_setting_sensitive():
    a = cells.fingerprint({"epochs": 5, "lr": 1e-3, "sizes": [32, 32, 16]})
    assert a == cells.fingerprint({"sizes": (32, 32, 16), "lr": 1e-3, "epochs": 5}) and len(a) == 16
    for key, value in [("epochs", 6), ("lr", 1e-4), ("sizes", [32, 32, 8])]:
        assert cells.fingerprint({"epochs": 5, "lr": 1e-3, "sizes": [32, 32, 16], key: value}) != a
    assert len(cells.fingerprint({"x": 1}, length=64)) == 64


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (lambda: cells.fingerprint({"p": Path("x")}), TypeError, "fingerprint settings must be JSON values"),
        (lambda: cells.fingerprint({"x": 1}, length=4), ValueError, r"length must be an integer in \[8, 64\], got 4"),
        (lambda: cells.file_sha256("/nonexistent/manifest.json"), FileNotFoundError, "cannot fingerprint '/nonexistent/manifest.json'"),
    ],
)
def test_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_file_sha256_follows_content(tmp_path):
    p = tmp_path / "a.json"
    p.write_text("{}")
    h = cells.file_sha256(p)
    p.write_text("{ }")
    assert cells.file_sha256(p) != h


def test_atomic_write_leaves_no_temp_and_keeps_old_file_on_failure(tmp_path):
    p = tmp_path / "sub" / "cell.json"
    cells.write_json_atomic(p, {"a": 1})
    assert json.loads(p.read_text()) == {"a": 1} and [q.name for q in p.parent.iterdir()] == ["cell.json"]
    with pytest.raises(TypeError):
        cells.write_json_atomic(p, {"a": object()})  # fails while writing the temporary file
    assert json.loads(p.read_text()) == {"a": 1} and [q.name for q in p.parent.iterdir()] == ["cell.json"]


@pytest.mark.parametrize("content", ['{"complete": true, "fing', "\x00\x01garbage", ""], ids=["truncated", "binary", "empty"])
def test_corrupt_cell_is_logged_by_name_and_recomputed(tmp_path, caplog, content):
    p = tmp_path / "c.json"
    p.write_text(content)
    with caplog.at_level(logging.WARNING, logger="dce_monai.workflows.cells"):
        assert cells.read_cell(p, "f" * 16) is None
    assert any(str(p) in r.getMessage() and "corrupt or half-written" in r.getMessage() for r in caplog.records)


def test_read_cell(tmp_path, caplog):
    p = tmp_path / "c.json"
    assert cells.read_cell(p, "abc") is None  # absent
    cells.write_json_atomic(p, {"fingerprint": "abc", "settings": {"epochs": 1}})
    with caplog.at_level(logging.WARNING, logger="dce_monai.workflows.cells"):
        assert cells.read_cell(p, "abc") is None  # no "complete": true
    assert "not a finished cell" in caplog.text
    cells.write_json_atomic(p, {"fingerprint": "abc", "settings": {"epochs": 1, "lr": 0.1}, "complete": True, "auc": 0.7})
    assert cells.read_cell(p, "abc")["auc"] == 0.7
    with pytest.raises(ValueError, match=r"c.json was computed with other data or settings .*settings that differ: epochs: 1 -> 2; "
                                         r"width: '\(absent\)' -> 8\. Use another folder\."):
        cells.read_cell(p, "def", {"epochs": 2, "lr": 0.1, "width": 8}, remedy="Use another folder.")
    cells.write_json_atomic(p, {"complete": True})
    with pytest.raises(ValueError, match=r"fingerprint None, this run 'def'"):
        cells.read_cell(p, "def")


def test_settings_diff():
    assert cells.settings_diff({"a": 1, "b": [1, 2]}, {"a": 1, "b": (1, 2)}) == []
    assert cells.settings_diff(None, {"a": 1}) == ["a: '(absent)' -> 1"]


def test_run_lock_refuses_a_second_live_run_and_lets_shards_share(tmp_path):
    import json as _json
    import os as _os
    import subprocess
    import sys

    from dce_monai.workflows.cells import run_lock

    with run_lock(tmp_path, "search-channels", "shard-0-of-2"):
        with run_lock(tmp_path, "search-channels", "shard-1-of-2"):  # shards of one run share the folder
            pass
        with pytest.raises(ValueError, match=r"in use by another search-channels run \(pid \d+ on .*\.lock-shard-0-of-2\)"):
            with run_lock(tmp_path, "search-channels", "shard-0-of-2"):
                pass
        with pytest.raises(ValueError, match=r"in use by another search-channels run .*\.lock-shard-0-of-2"):
            with run_lock(tmp_path, "search-channels", "all"):
                pass
    assert not list(tmp_path.glob(".lock-*"))  # released
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    import socket

    (tmp_path / ".lock-all").write_text(_json.dumps({"pid": int(dead.stdout), "host": socket.gethostname()}))
    with run_lock(tmp_path, "search-channels", "shard-0-of-2"):  # the stale lock of a finished process is removed
        assert not (tmp_path / ".lock-all").exists()
    (tmp_path / ".lock-all").write_text(_json.dumps({"pid": _os.getpid(), "host": socket.gethostname()}))
    with pytest.raises(ValueError, match=r"delete .*\.lock-all if that run is gone"):
        with run_lock(tmp_path, "search-channels", "shard-1-of-2"):
            pass

