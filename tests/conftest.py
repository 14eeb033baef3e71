"""Shared fixtures: a tiny phantom cohort built once per test session."""

from __future__ import annotations

import socket

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
