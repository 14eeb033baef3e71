"""Tests for dce_monai.data.phantom.config: PhantomConfig checks and the reference table read from a CSV."""

from __future__ import annotations

import pytest

from dce_monai.data.phantom import REFERENCE_QUANTILES, PhantomConfig, load_reference_csv, simulate_patient


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"size": "huge"}, r"size must be 'tiny', 'demo' or 'full', got 'huge'"),
        ({"n_post": 0}, r"n_post must be an integer in \[1, 12\], got 0"),
        ({"post_interval_s": 0}, r"must be > 0 s"),
        ({"snr": -1}, r"snr must be > 0, got -1"),
        ({"bias_strength": 1.5}, r"bias_strength must be in \[0, 1\), got 1.5"),
        ({"motion_mm": -1}, r"motion_mm must be >= 0"),
        ({"lesions": (2, 1)}, r"lesions must be \(lo, hi\)"),
        ({"malignant_fraction": 2}, r"malignant_fraction must be in \[0, 1\]"),
        ({"storage_max": 70000}, r"storage_max must be in \[100, 60000\]"),
        ({"her2_prevalence": 1.0}, r"her2_prevalence must be in \(0, 1\), got 1.0"),
        ({"reference_quantiles": {"n_xy": (1,) * 7}}, r"reference_quantiles lacks keys \['n_z'"),
        (
            {"reference_quantiles": {**REFERENCE_QUANTILES, "n_z": (5.0, 4.0, 3.0, 2.0, 1.0, 1.0, 1.0)}},
            r"reference_quantiles\['n_z'\] must be 7 positive non-decreasing values",
        ),
    ],
)
def test_config_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PhantomConfig(**kwargs)


def test_config_reference_table_type_error():
    with pytest.raises(TypeError, match=r"reference_quantiles must be a dict, got list"):
        PhantomConfig(reference_quantiles=[1, 2])  # type: ignore[arg-type]


_CSV_HEADER = "pid,n_xy,n_z,n_times,slice_thick,xy_spacing,tum_vol,HER2\n"


def test_load_reference_csv(reference_csv):
    table, her2 = load_reference_csv(reference_csv)
    assert table["n_xy"] == (64.0,) * 7 and table["tum_vol"][0] == 500.0 and table["tum_vol"][-1] == 2400.0
    assert her2 == pytest.approx(5 / 20)


def test_full_preset_samples_from_reference_csv(reference_csv):
    table, her2 = load_reference_csv(reference_csv)
    c = simulate_patient(2, PhantomConfig.full(reference_quantiles=table, her2_prevalence=her2))
    assert c.label_map.shape == (64, 64, 48) and c.spacing_mm[2] == 4.0
    assert len(c.times_s) - 1 == 2  # n_times 3-4 -> 2-3 post phases, clipped at >= 2
    # tumour volumes 500-2400 mm^3 -> nominal radius (3V/4pi)^(1/3) <= 8.3 mm (16 mm cap otherwise)
    assert c.lesions and all(4.0 <= les["radius_mm"] <= 8.31 for les in c.lesions)


@pytest.mark.parametrize(
    "content, exc, match",
    [
        (None, FileNotFoundError, r"reference_csv '.*missing.csv' does not exist"),
        ("pid,n_xy\nA,1\n", ValueError, r"lacks columns \['n_z', 'slice_thick'"),
        (_CSV_HEADER + "A,64,48,3,4.0,0.7,x,0\n", ValueError, r"line 2, column 'tum_vol': expected a number, got 'x'"),
        (_CSV_HEADER + "A,64,48,3,4.0,0.7,,0\n", ValueError, r"has no values in columns \['tum_vol'\]"),
        (_CSV_HEADER + "A,64,48,3,4.0,0.7,100,0\n", ValueError, r"HER2 prevalence must be in \(0, 1\), got 0.0"),
    ],
)
def test_reference_csv_errors(tmp_path, content, exc, match):
    path = tmp_path / "missing.csv"
    if content is not None:
        path.write_text(content)
    with pytest.raises(exc, match=match):
        load_reference_csv(path)
