"""Shared checks for the transform tests: MONAI's lazy-vs-eager pattern (``test_resampler_lazy``)."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

import pytest
import torch
from monai.data import MetaTensor, set_track_meta
from monai.transforms import InvertibleTransform, MapTransform
from monai.transforms.lazy.functional import apply_pending


def check_lazy(
    xform: Any,
    call: Callable[[], Any],
    expected: Any,
    key: Hashable | None = None,
    overrides: dict | None = None,
    atol: float = 1e-5,
) -> MetaTensor:
    """Run ``call()`` with ``xform.lazy = True`` and compare with the eager ``expected`` output.

    As MONAI's own lazy tests: the pending affine and shape equal the eager output's affine and
    shape before anything is resampled; ``apply_pending`` (with ``overrides``: the interpolation
    mode etc.) gives the eager voxels in ONE pending operation; the trace then names the same
    transforms; and for an array transform the inverse of both outputs agree and empty the trace.
    Returns the lazily computed output.
    """
    set_track_meta(True)
    xform.lazy = True
    try:
        out = call()
    finally:
        xform.lazy = False
    lazy_out, eager_out = (out[key], expected[key]) if key is not None else (out, expected)
    assert isinstance(lazy_out, MetaTensor) and len(lazy_out.pending_operations) == 1
    torch.testing.assert_close(lazy_out.peek_pending_affine().double(), eager_out.affine.double(), rtol=1e-6, atol=1e-6)
    assert tuple(int(s) for s in lazy_out.peek_pending_shape()) == tuple(eager_out.shape[1:])
    done = apply_pending(lazy_out, overrides=overrides or {})[0]
    assert not done.pending_operations
    torch.testing.assert_close(done.as_tensor().float(), eager_out.as_tensor().float(), rtol=1e-4, atol=atol)
    torch.testing.assert_close(done.affine.double(), eager_out.affine.double())
    assert [op["class"] for op in done.applied_operations] == [op["class"] for op in eager_out.applied_operations]
    if isinstance(xform, InvertibleTransform) and not isinstance(xform, MapTransform):
        back_lazy, back_eager = xform.inverse(done.clone()), xform.inverse(eager_out.clone())
        assert not back_lazy.applied_operations and not back_lazy.pending_operations
        torch.testing.assert_close(back_lazy.as_tensor().float(), back_eager.as_tensor().float(), rtol=1e-3, atol=1e-3)
    return done


@pytest.fixture
def lazy_check() -> Callable[..., MetaTensor]:
    """:func:`check_lazy` as a fixture."""
    return check_lazy
