"""Shared fixtures: tiny phantom cohorts built once per test session.

``bundle_cohort`` is a 6-patient tiny cohort plus a 2-fold patient-wise folds file, so a test
can run a bundle, or build a fold's datalist, with ``--manifest``/``--folds``/``--fold`` overrides
without building its own data.

Example:
    >>> def test_x(bundle_cohort):  # doctest: +SKIP
    ...     manifest, folds = bundle_cohort["manifest"], bundle_cohort["folds"]
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest


def pytest_configure(config: pytest.Config) -> None:
    """Under ``pytest -n N`` each worker gets its share of the CPUs, not all of them.

    N workers that each size torch's, BLAS's and ITK's pools from the whole machine run
    N x CPUs threads on CPUs cores; the pools then wait on threads that share a core, and a
    search test that takes 10 s alone took 113 s in the suite. ``OMP_NUM_THREADS`` carries the
    share to the worker's subprocesses (bundle runs, spawned search workers) and to
    :func:`dce_monai.workflows.threads.resolve_threads`, so in-process CLI calls keep it too.
    """
    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if not workers or "OMP_NUM_THREADS" in os.environ:
        return
    from dce_monai.workflows.threads import available_cpus, set_process_threads

    share = max(1, available_cpus() // int(workers))
    os.environ["OMP_NUM_THREADS"] = str(share)
    set_process_threads(share)

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


@pytest.fixture(scope="session")
def bundle_cohort(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny 6-patient phantom cohort plus a 2-fold folds file.

    Returns:
        ``{"root": cohort folder, "manifest": manifest.json path, "folds": folds.json path}``.
        Fold 0 and fold 1 each hold patients of both classes when the cohort allows it
        (stratified by the per-patient maximum ``malignant`` label).
    """
    from dce_monai.data.folds import patient_folds, write_folds
    from dce_monai.data.manifest import load_manifest
    from dce_monai.data.phantom import generate_cohort

    root = tmp_path_factory.mktemp("bundle_cohort")
    manifest = generate_cohort(root, n_patients=6, seed=3, size="tiny", progress=False)
    datalist = load_manifest(manifest).to_datalist(level="lesion")
    folds = patient_folds(datalist, k=2, seed=0)
    folds_path = write_folds(folds, root / "folds.json", seed=0, k_requested=2)
    return {"root": root, "manifest": Path(manifest), "folds": folds_path}
