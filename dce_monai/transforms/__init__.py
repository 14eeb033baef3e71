"""MONAI transforms for breast DCE-MRI (array forms and dictionary ``...d`` forms)."""

from __future__ import annotations

from .augmentation import (
    AXIAL_ONLY_ROTATIONS,
    N_VARIANTS,
    Augment34,
    Augment34d,
    AxialRotation,
    CornerShift,
    CubeSymmetry,
    RandAugment34d,
    expand_34,
    variant_names,
)
from .bias_field import N4BiasFieldCorrection, N4BiasFieldCorrectiond
from .breast_mask import BreastMask, BreastMaskd
from .channels import SelectSequences, SelectSequencesd
from .crop import BoundingBoxCrop, BoundingBoxCropd, LesionMaskd, mask_bounding_box
from .fcm import (
    FCMResult,
    FuzzyCMeansMask,
    FuzzyCMeansMaskd,
    fuzzy_cmeans,
    fuzzy_cmeans_histogram,
)
from .intensity import (
    ImageNetNormalize,
    ImageNetNormalized,
    ScaleIntensityDCE,
    ScaleIntensityDCEd,
)
from .kinetics import (
    CURVE_TYPES,
    EnhancementMaps,
    EnhancementMapsd,
    EnhancementThresholdMask,
    EnhancementThresholdMaskd,
    Subtract,
    Subtractd,
    relative_enhancement,
)
from .patches import LesionPatchesd, lesion_centre
from .registration import RegisterPhases, RegisterPhasesd

__all__ = [
    "AXIAL_ONLY_ROTATIONS",
    "CURVE_TYPES",
    "N_VARIANTS",
    "Augment34",
    "Augment34d",
    "AxialRotation",
    "BoundingBoxCrop",
    "BreastMask",
    "BreastMaskd",
    "BoundingBoxCropd",
    "CornerShift",
    "CubeSymmetry",
    "EnhancementMaps",
    "EnhancementMapsd",
    "EnhancementThresholdMask",
    "EnhancementThresholdMaskd",
    "FCMResult",
    "FuzzyCMeansMask",
    "FuzzyCMeansMaskd",
    "ImageNetNormalize",
    "ImageNetNormalized",
    "LesionMaskd",
    "LesionPatchesd",
    "N4BiasFieldCorrection",
    "N4BiasFieldCorrectiond",
    "RandAugment34d",
    "RegisterPhases",
    "RegisterPhasesd",
    "ScaleIntensityDCE",
    "ScaleIntensityDCEd",
    "SelectSequences",
    "SelectSequencesd",
    "Subtract",
    "Subtractd",
    "expand_34",
    "fuzzy_cmeans",
    "fuzzy_cmeans_histogram",
    "lesion_centre",
    "mask_bounding_box",
    "relative_enhancement",
    "variant_names",
]
