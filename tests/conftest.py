"""Shared fixtures: a tiny phantom cohort built once per test session."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

_real_connect = socket.socket.connect


def _guarded_connect(self, address):  # no network at run time: only loopback/unix sockets
    host = address[0] if isinstance(address, tuple) else None
    if host is not None and not (str(host).startswith("127.") or host in ("localhost", "::1")):
        raise RuntimeError(f"tests must not use the network (connect to {address!r} refused)")
    return _real_connect(self, address)


socket.socket.connect = _guarded_connect  # type: ignore[method-assign]


@pytest.fixture(scope="session")
def tiny_cohort(tmp_path_factory):
    """Manifest path of a 4-patient demo-size phantom cohort."""
    from dce_monai.data.phantom import generate_cohort

    out = tmp_path_factory.mktemp("cohort")
    return generate_cohort(out, n_patients=4, seed=7, progress=False)


@pytest.fixture(scope="session")
def broken_cohort(tmp_path_factory):
    """A 6-patient tiny phantom cohort in which one patient's T1post2 file is truncated.

    Returns ``(manifest path, id of the broken patient)``: every workflow must refuse it
    before any work, naming that patient, or go on without it when asked to skip invalid cases.
    """
    import json
    from pathlib import Path

    from dce_monai.data.phantom import generate_cohort

    out = tmp_path_factory.mktemp("broken_cohort")
    manifest = Path(generate_cohort(out, n_patients=6, seed=3, size="tiny", progress=False))
    patient = json.loads(manifest.read_text())["patients"][-1]
    f = out / patient["exam"]["sequences"]["T1post2"]
    f.write_bytes(f.read_bytes()[: 200])
    return manifest, patient["patient_id"]


@pytest.fixture
def reference_csv(tmp_path: Path) -> Path:
    """A reference cohort CSV in the BreastDCEDL layout: 20 rows of 64x64x48, HER2 rate 5/20, one row of blank cells."""
    header = "pid,n_xy,n_z,n_times,slice_thick,xy_spacing,tum_vol,HER2\n"
    rows = [f"R{i},64,48,{3 + i % 2},4.0,0.7,{500 + 100 * i},{int(i % 4 == 0)}" for i in range(20)]
    rows.append("R99,64,48,3,4.0,0.7,,")  # blank cells are skipped
    path = tmp_path / "ref.csv"
    path.write_text(header + "\n".join(rows) + "\n")
    return path
