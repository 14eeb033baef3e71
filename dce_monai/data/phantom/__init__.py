"""Synthetic breast DCE-MRI cohort: a physically grounded digital reference object.

No real breast DCE-MRI can be shipped, so this generator is the default data of the toolkit
(demo, tests, benchmarks), and a pipeline-testing tool in its own right. Each patient is
simulated in four steps:

1. **Anatomy** (axial volume, X = left-right, Y = posterior->anterior, Z = slice): air, two
   breasts (half-ellipsoids of varied size) made of fat and fibroglandular tissue (a smoothed
   Gaussian random field thresholded at a per-patient density) under a skin shell, the chest
   wall muscle, the heart (blood pool) and the lungs.
2. **Lesions** (1-3 per patient, label map values 1..n) inside the fibroglandular/breast
   tissue. Malignant ones are mostly irregular/spiculated with fast wash-in, plateau/washout
   curves and rim enhancement; benign ones mostly round/oval, smooth and persistent, with
   a realistic overlap of the two.
3. **Contrast kinetics**: every tissue and lesion voxel gets a concentration curve from the
   empirical model of Fan et al. (2004, 2007), ``C(t) = A (1 - exp(-alpha t)) exp(-beta t)``
   (t in minutes, A in mM); the blood pool follows the Parker population AIF (Parker et al.
   2006) converted to plasma with Hct = 0.42. Signal is the spoiled gradient echo equation
   ``S = M0 sin(theta) (1 - E1) / (1 - cos(theta) E1)``, ``E1 = exp(-TR R1)``,
   ``R1 = 1/T1 + r1 C`` (r1 = 4 /mM/s), with tissue T1 at 3 T (fat 423 ms, fibroglandular
   1680 ms, tumour 1600 ms, blood 1440 ms). The T2-weighted image uses a spin-echo
   ``PD exp(-TE/T2)`` contrast with TE = 80 ms.
4. **Acquisition**: a smooth multiplicative bias field shared by all sequences of a patient,
   optional small rigid motion between phases, Rician noise at a set SNR, and storage as
   uint16 with ONE scale for all T1 phases (so relative enhancement survives).

Patient outcomes (HER2 status, 5-year recurrence) are drawn from latent tumour properties,
including a peritumoral (stromal) enhancement shell that is visible in the images, plus noise,
so they are harder to predict than malignancy. An optional label-correlated shortcut artefact
(a bright blob in the lung region, or with ``shortcut_site="near_lesion"`` a skin-marker-like
ball on the skin next to each malignant lesion, inside a lesion-centred field of view) makes
attention studies possible (seed 2).

Difficulty and variants (:class:`PhantomConfig` fields, ``dce-monai phantom`` flags):
``difficulty="easy"`` (default, the historical output) separates the classes clearly
(hand-crafted kinetic features: AUC ~0.99); ``"realistic"`` draws kinetics, margins and size
from overlapping continuous distributions and adds partial volume and a per-patient SNR, so
that hand-crafted baselines land near the clinical AUC 0.80-0.90. ``signal="washout"`` or
``"t2"`` plants the class signal in known channels only (:func:`informative_channels`).

Presets (:class:`PhantomConfig` ``.demo()``, ``.tiny()``, ``.full()``): ``demo`` is a fixed
128x128x32 grid at 1.6x1.6x3 mm, ``tiny`` the same field of view at 64x64x16 for fast
statistics, and ``full`` samples matrix, slices, slice thickness and the number of post phases
from quantiles of the 2,070 real patients of BreastDCEDL (Fridman et al. 2025, CC BY 4.0); see
:data:`REFERENCE_QUANTILES`, or pass a CSV of that layout (:func:`load_reference_csv`,
``generate_cohort(reference_csv=...)``, ``dce-monai phantom --reference-csv``) to recompute the
table at generation time. Tumour volumes and the HER2 prevalence come from the same table.

Example:
    >>> case = simulate_patient(0)
    >>> sorted(case.images)[:2], case.label_map.shape
    (['T1post1', 'T1post2'], (128, 128, 32))

Where things are (one module per concern, each importing only those above it):

- :mod:`.config`: reference quantile table, :class:`PhantomConfig` presets and validation,
  :func:`load_reference_csv`, the voxel grid, tissue classes, :class:`PhantomCase`.
- :mod:`.physics`: tissue properties, AIF, concentration model, signal equation, curve
  type, and the acquisition effects (bias field, motion, Rician noise).
- :mod:`.anatomy`: body, breasts, fibroglandular tissue, lesion placement and shape.
- :mod:`.cohort`: one patient (:func:`simulate_patient`, outcomes), its files
  (:func:`write_case`) and a seeded cohort with its manifest (:func:`generate_cohort`).
"""

from __future__ import annotations

from .cohort import generate_cohort, simulate_patient, write_case
from .config import (
    AIR,
    BLOOD,
    DIFFICULTIES,
    FAT,
    FIBRO,
    LESION,
    LUNG,
    MUSCLE,
    REFERENCE_HER2_PREVALENCE,
    REFERENCE_QUANTILES,
    SHORTCUT_SITES,
    SIGNALS,
    SKIN,
    TISSUE_NAMES,
    PhantomCase,
    PhantomConfig,
    informative_channels,
    load_reference_csv,
)
from .physics import curve_type_from_signal, empirical_concentration, parker_aif, spgr_signal

__all__ = [
    "AIR",
    "BLOOD",
    "DIFFICULTIES",
    "FAT",
    "FIBRO",
    "LESION",
    "LUNG",
    "MUSCLE",
    "REFERENCE_HER2_PREVALENCE",
    "REFERENCE_QUANTILES",
    "SHORTCUT_SITES",
    "SIGNALS",
    "SKIN",
    "TISSUE_NAMES",
    "PhantomCase",
    "PhantomConfig",
    "curve_type_from_signal",
    "empirical_concentration",
    "generate_cohort",
    "informative_channels",
    "load_reference_csv",
    "parker_aif",
    "simulate_patient",
    "spgr_signal",
    "write_case",
]
