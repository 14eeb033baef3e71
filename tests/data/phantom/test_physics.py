"""Tests for dce_monai.data.phantom.physics: the contrast-agent curves, AIF and SPGR signal model."""

from __future__ import annotations

import numpy as np
import pytest

from dce_monai.data.phantom import curve_type_from_signal, empirical_concentration, parker_aif, spgr_signal


def test_curve_type_rule():
    assert curve_type_from_signal([100, 200, 230]) == "persistent"
    assert curve_type_from_signal([100, 200, 205]) == "plateau"
    assert curve_type_from_signal([100, 200, 170]) == "washout"


def test_physics_functions():
    t = np.array([0, 1.5, 3.0, 6.0])
    c = empirical_concentration(t, 1.0, 3.0, 0.08)
    assert c[0] == 0 and c.argmax() == 1
    assert parker_aif(np.array([0.17046]))[0] > 5  # first-pass peak (mM, plasma)
    s0, s1 = spgr_signal(1.0, 1600.0, 0.0), spgr_signal(1.0, 1600.0, 0.3)
    assert s1 > s0 > 0


def test_physics_formulas_written_out():
    """Each model against its documented formula, computed independently here."""
    import math

    from dce_monai.data.phantom import physics

    t = np.array([0.0, 0.5, 1.0, 4.0])
    np.testing.assert_allclose(empirical_concentration(t, 2.0, 3.0, 0.1), 2.0 * (1 - np.exp(-3.0 * t)) * np.exp(-0.1 * t))
    assert empirical_concentration(t, [1.0, 2.0], [3.0, 3.0], [0.1, 0.1]).shape == (2, 4)  # (N,) parameters -> (N, T)
    tr, th = physics._TR_S, math.radians(physics._FLIP_DEG)
    r1 = 1000.0 / 1600.0 + physics._R1_RELAXIVITY * 0.3
    e1 = math.exp(-tr * r1)
    assert float(spgr_signal(2.0, 1600.0, 0.3)) == pytest.approx(2.0 * math.sin(th) * (1 - e1) / (1 - math.cos(th) * e1), rel=1e-12)
    assert physics._R1_RELAXIVITY == 4.0  # r1 = 4 /mM/s as documented
    # Parker AIF: 0 before injection; blood -> plasma by 1/(1 - Hct)
    assert parker_aif(np.array([0.0, -1.0])).tolist() == [0.0, 0.0]
    np.testing.assert_allclose(parker_aif(np.array([1.0]), hct=0.0) / (1 - 0.42), parker_aif(np.array([1.0])))
    # BI-RADS thresholds are strict +-10 % of the early signal
    assert curve_type_from_signal([100, 200, 220.0]) == "plateau" and curve_type_from_signal([100, 200, 220.2]) == "persistent"
    assert curve_type_from_signal([100, 200, 180.0]) == "plateau" and curve_type_from_signal([100, 200, 179.8]) == "washout"
    assert curve_type_from_signal([100, 150, 200, 170], early=2) == "washout"
