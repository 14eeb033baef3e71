"""Phantom presets and variants: ``difficulty``, planted ``signal`` channels, ``shortcut_site``.

The planted-signal and visible-shortcut variants are checked from the written NIfTI files (what
a pipeline reads), not from the generator's own bookkeeping.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from dce_monai.cli.phantom import add_cli_arguments, cli_main
from dce_monai.data.phantom import (
    PhantomConfig,
    generate_cohort,
    informative_channels,
    simulate_patient,
)

BUNDLE_TRAIN = Path(__file__).resolve().parents[2] / "bundles/breast_dce_maskguided_vgg3d/configs/train.json"


def _auc(y, score):
    from dce_monai.metrics.stats import roc_auc

    return roc_auc([int(v) for v in y], [float(v) for v in score])


def _digest(case):
    h = hashlib.sha256()
    for k in sorted(case.images):
        h.update(k.encode())
        h.update(np.ascontiguousarray(case.images[k]).tobytes())
    for a in (case.label_map, case.breast_mask, case.tissue_map, case.bias_field):
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:24]


# ----------------------------------------------------------------------------- easy = unchanged


def test_easy_default_output_unchanged():
    """Digests recorded from the generator before ``difficulty``/``signal``/``shortcut_site`` existed.

    They cover the tiny grid with the lung shortcut drawn (seeds 0-2) and not drawn (seed 3), and
    one demo patient: the default preset must give the same arrays for the same seed.
    """
    before = {0: "cccc7abdc7dd7adb54198b8c", 1: "34faf8cd733b18ec94109ff8", 2: "3bfe35043012d75ddeebf03c", 3: "b79e2914359eef18abda3a09"}
    for seed, digest in before.items():
        case = simulate_patient(seed, PhantomConfig.tiny(), patient_id=f"P{seed}", shortcut=1.0)
        assert case.shortcut_present == (seed != 3)
        assert _digest(case) == digest, f"seed {seed}"
    explicit = PhantomConfig.tiny(difficulty="easy", signal=None, shortcut_site="lung")
    assert _digest(simulate_patient(0, explicit, patient_id="P0", shortcut=1.0)) == before[0]
    assert _digest(simulate_patient(3, PhantomConfig.demo(), patient_id="P3")) == "ba1e1270bc9ae6b512481c60"


# ----------------------------------------------------------------------------- realistic


@pytest.fixture(scope="module")
def realistic_cases():
    cfg = PhantomConfig.tiny(difficulty="realistic")
    return [simulate_patient(i, cfg) for i in range(60)]


def test_realistic_is_deterministic_and_differs_from_easy():
    cfg = PhantomConfig.tiny(difficulty="realistic")
    a, b = simulate_patient(4, cfg), simulate_patient(4, cfg)
    assert _digest(a) == _digest(b)
    assert _digest(a) != _digest(simulate_patient(4, PhantomConfig.tiny()))


def test_realistic_classes_overlap_in_curve_type_and_shape(realistic_cases):
    les = [x for c in realistic_cases for x in c.lesions]
    mal = [x for x in les if x["malignant"]]
    ben = [x for x in les if not x["malignant"]]
    assert len(mal) > 20 and len(ben) > 20
    frac = lambda ls, key, v: np.mean([x[key] == v for x in ls])
    # on average malignant lesions wash out more and benign ones persist ...
    assert frac(mal, "curve_type", "washout") > frac(ben, "curve_type", "washout")
    assert frac(ben, "curve_type", "persistent") > frac(mal, "curve_type", "persistent")
    # ... but every curve type and both margin kinds occur in both classes
    for group in (mal, ben):
        assert {x["curve_type"] for x in group} == {"persistent", "plateau", "washout"}
        assert 0 < np.mean([x["irregular"] for x in group]) < 1
    assert frac(mal, "irregular", True) > frac(ben, "irregular", True)
    # wash-in speed overlaps: the ideal delayed-phase feature alone is far from perfect
    delayed = [(x["mean_signal"][-1] - x["mean_signal"][1]) / x["mean_signal"][1] for x in les]
    assert 0.65 < 1 - _auc([x["malignant"] for x in les], delayed) < 0.9
    # rim (necrotic core) enhancement in both classes
    assert any(x["kinetics"]["rim"] for x in mal) and any(x["kinetics"]["rim"] for x in ben)


def test_realistic_size_and_shape_alone_do_not_separate(realistic_cases):
    les = [x for c in realistic_cases for x in c.lesions]
    y = [x["malignant"] for x in les]
    assert abs(_auc(y, [x["volume_mm3"] for x in les]) - 0.5) < 0.2
    assert abs(_auc(y, [x["kinetics"]["alpha_per_min"] for x in les]) - 0.5) < 0.35  # faster on average, overlapping


# ----------------------------------------------------------------------------- configuration and CLI


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"difficulty": "hard"}, r"difficulty must be one of \['easy', 'realistic'\], got 'hard'"),
        ({"signal": "t1"}, r"signal must be None or one of \['washout', 't2'\], got 't1'"),
        ({"shortcut_site": "skin"}, r"shortcut_site must be one of \['lung', 'near_lesion'\], got 'skin'"),
        ({"signal": "washout", "n_post": 2}, r"signal 'washout' needs a fixed protocol with n_post >= 3.*n_post=2"),
        ({"signal": "washout", "sample_n_post": True}, r"signal 'washout' needs a fixed protocol.*sample_n_post=True"),
    ],
)
def test_variant_config_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PhantomConfig.tiny(**kwargs)


def test_informative_channels():
    assert informative_channels(PhantomConfig.tiny(signal="washout")) == {
        "informative": ["T1post3", "T1post4"],
        "uninformative": ["T2", "T1pre", "T1post1", "T1post2", "sub"],
    }
    assert informative_channels(PhantomConfig.tiny(signal="washout", n_post=3))["informative"] == ["T1post3"]
    t2 = informative_channels(PhantomConfig.tiny(signal="t2", n_post=2))
    assert t2 == {"informative": ["T2"], "uninformative": ["T1pre", "T1post1", "T1post2", "sub"]}
    with pytest.raises(ValueError, match=r"informative_channels: PhantomConfig.signal is None"):
        informative_channels(PhantomConfig.tiny())


def test_cli_variant_flags(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    add_cli_arguments(parser)
    args = parser.parse_args(["--out", str(tmp_path), "--patients", "2", "--size", "tiny", "--difficulty", "realistic",
                              "--signal", "t2", "--shortcut-site", "near_lesion", "--shortcut-train", "1", "--shortcut-test", "0"])
    assert cli_main(args) == 0
    data = json.loads((tmp_path / "manifest.json").read_text())
    gen = data["dataset"]["generator"]
    assert (gen["config"]["difficulty"], gen["config"]["signal"], gen["config"]["shortcut_site"]) == ("realistic", "t2", "near_lesion")
    assert gen["informative_channels"] == ["T2"]
    assert "differ only in channels T2" in data["dataset"]["description"]
    assert "near_lesion" in data["dataset"]["description"]
    defaults = parser.parse_args(["--out", str(tmp_path)])
    assert (defaults.difficulty, defaults.signal, defaults.shortcut_site) == ("easy", None, "lung")
    with pytest.raises(SystemExit):
        parser.parse_args(["--out", str(tmp_path), "--difficulty", "hard"])
    assert "invalid choice: 'hard'" in capsys.readouterr().err


# ----------------------------------------------------------------------------- planted signal, from the NIfTIs


def _load(root: Path, rel: str) -> np.ndarray:
    return np.asarray(nib.load(str(root / rel)).dataobj, dtype=np.float64)


def _channel_features(manifest: Path) -> tuple[list[int], dict[str, list[float]]]:
    """Per lesion and channel: mean lesion intensity over the median of the lesion-free breast.

    ``sub`` is T1post1 - T1pre, normalised by the breast median of T1pre. The ratio removes the
    per-patient storage scale and most of the bias field, so that only lesion contrast is left.
    """
    root = manifest.parent
    data = json.loads(manifest.read_text())
    y: list[int] = []
    feats: dict[str, list[float]] = {}
    for p in data["patients"]:
        ex = p["exam"]
        img = {k: _load(root, rel) for k, rel in ex["sequences"].items()}
        img["sub"] = img["T1post1"] - img["T1pre"]
        lm = _load(root, ex["label_map"])
        tissue = (_load(root, ex["breast_mask"]) > 0) & (lm == 0)
        for les in p["lesions"]:
            m = lm == les["label_value"]
            y.append(int(les["malignant"]))
            for ch, arr in img.items():
                ref = img["T1pre" if ch == "sub" else ch][tissue]
                feats.setdefault(ch, []).append(float(arr[m].mean() / np.median(ref)))
    return y, feats


@pytest.mark.parametrize("signal", ["washout", "t2"])
def test_planted_signal_only_in_informative_channels(tmp_path, signal):
    manifest = generate_cohort(tmp_path, 50, seed=11, config=PhantomConfig.tiny(signal=signal), progress=False)
    data = json.loads(manifest.read_text())
    chans = informative_channels(PhantomConfig.tiny(signal=signal))
    assert data["dataset"]["generator"]["informative_channels"] == chans["informative"]
    assert data["dataset"]["generator"]["uninformative_channels"] == chans["uninformative"]
    y, feats = _channel_features(manifest)
    assert 30 < sum(y) < len(y) - 30  # both classes well represented
    auc = {ch: _auc(y, v) for ch, v in feats.items()}
    # malignant lesions darker where the signal is planted (late washout / shorter T2) ...
    assert all(auc[ch] < 0.3 for ch in chans["informative"]), auc
    assert auc[chans["informative"][-1]] < 0.2, auc
    if signal == "washout":  # ... and plainly so relative to the early phase, as a radiologist reads it
        late_over_early = np.asarray(feats["T1post4"]) / np.asarray(feats["T1post1"])
        assert _auc(y, late_over_early) < 0.1
    # ... and no class signal anywhere else
    for ch in chans["uninformative"]:
        assert abs(auc[ch] - 0.5) < 0.15, (ch, auc)
    assert set(auc) == set(chans["informative"]) | set(chans["uninformative"])


# ----------------------------------------------------------------------------- visible shortcut, from the NIfTIs


def _lesion_window(mask: np.ndarray) -> np.ndarray:
    """Voxels the seed 2 bundle's lesion field of view keeps (its ``context#lesion`` transforms)."""
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(str(BUNDLE_TRAIN))
    assert parser["field_of_view"] == "lesion"
    crop = parser.get_parsed_content("context#lesion")
    # image = 1-based voxel coordinates: what survives the crop names the voxels kept (padding is 0)
    grid = np.stack(np.meshgrid(*[np.arange(1, n + 1) for n in mask.shape], indexing="ij")).astype(np.float32)
    out = np.asarray(crop({"image": grid, "mask": mask[None].astype(np.float32)})["image"]).reshape(3, -1)
    kept = np.zeros(mask.shape, bool)
    inside = (out >= 1).all(0)
    kept[tuple(out[:, inside].round().astype(int) - 1)] = True
    return kept


def _artefact(with_root: Path, without_root: Path, rel_with: str, rel_without: str) -> np.ndarray:
    """Voxels where a written image differs from the same seed's image written without the shortcut.

    The two share every random draw; only the artefact and (if it became the brightest voxel)
    the uint16 storage scale differ, so the scale is fitted first.
    """
    a, b = _load(with_root, rel_with), _load(without_root, rel_without)
    ok = b > 200
    s = float(np.median(a[ok] / b[ok]))
    return np.abs(a - s * b) > 100


@pytest.mark.slow
def test_near_lesion_shortcut_visible_in_the_seed2_window(tmp_path):
    kw = {"n_patients": 6, "seed": 2, "test_fraction": 0.5, "config": PhantomConfig.demo(shortcut_site="near_lesion"), "progress": False}
    m_on = generate_cohort(tmp_path / "on", shortcut_train=1.0, shortcut_test=0.0, **kw)
    m_off = generate_cohort(tmp_path / "off", shortcut_train=0.0, shortcut_test=0.0, **kw)
    on, off = json.loads(m_on.read_text()), json.loads(m_off.read_text())
    seen = {"train_malignant": 0}
    for p, q in zip(on["patients"], off["patients"]):
        assert p["patient_id"] == q["patient_id"]
        art = _artefact(m_on.parent, m_off.parent, p["exam"]["sequences"]["T1post1"], q["exam"]["sequences"]["T1post1"])
        art_pre = _artefact(m_on.parent, m_off.parent, p["exam"]["sequences"]["T1pre"], q["exam"]["sequences"]["T1pre"])
        malignant = [les for les in p["lesions"] if les["malignant"]]
        if p["cohort"] == "test" or not malignant:
            assert not art.any() and not art_pre.any(), p["patient_id"]
            continue
        seen["train_malignant"] += 1
        assert art.sum() >= 20 and (art == art_pre).mean() > 0.999  # a ball of radius 5 mm, in every phase
        lm = _load(m_on.parent, p["exam"]["label_map"])
        breast = _load(m_on.parent, p["exam"]["breast_mask"]) > 0
        assert not (art & (lm > 0)).any()  # outside every lesion mask
        comps, n = ndimage.label(art)
        assert 1 <= n <= len(malignant)
        for k in range(1, n + 1):  # each ball sits on the breast edge
            assert (breast & (comps == k)).any() and (~breast & (comps == k)).any()
        for les in malignant:  # the seed 2 crop of every malignant lesion holds a whole ball
            window = _lesion_window(lm == les["label_value"])
            assert any(window[comps == k].all() for k in range(1, n + 1)), les["lesion_id"]
    assert seen["train_malignant"] >= 1
