"""Regenerate the PNG figures of docs/transforms.md from a phantom case.

    .venv/bin/python docs/figures.py
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from monai.data import MetaTensor  # noqa: E402

from dce_monai.data.phantom import simulate_patient  # noqa: E402
from dce_monai.transforms import (  # noqa: E402
    Augment34d,
    EnhancementMapsd,
    EnhancementThresholdMaskd,
    FuzzyCMeansMaskd,
    LesionPatchesd,
    N4BiasFieldCorrectiond,
    SelectSequencesd,
    Subtractd,
)

OUT = Path(__file__).parent / "img"


def show(ax, img, title, cmap="gray", contour=None):
    ax.imshow(np.rot90(np.asarray(img)), cmap=cmap)
    if contour is not None:
        ax.contour(np.rot90(np.asarray(contour)), [0.5], colors="r", linewidths=0.8)
    ax.set_title(title, fontsize=9)
    ax.axis("off")


def main() -> None:
    OUT.mkdir(exist_ok=True)
    c = simulate_patient(3, patient_id="PH0003")
    aff = torch.as_tensor(c.affine)
    d = {k: MetaTensor(torch.as_tensor(v.astype(np.float32))[None], affine=aff) for k, v in c.images.items()}
    d.update(label_map=MetaTensor(torch.as_tensor(c.label_map)[None], affine=aff), breast_mask=MetaTensor(torch.as_tensor(c.breast_mask)[None], affine=aff))
    d["body"] = MetaTensor(torch.as_tensor(c.tissue_map > 0)[None], affine=aff)
    phases = ["T1pre", "T1post1", "T1post2", "T1post3", "T1post4"]
    n4 = N4BiasFieldCorrectiond(phases, mask_key="body", log_bias_key="log_bias")(dict(d))
    z = c.lesions[0]["centre_vox"][2]
    truth = c.label_map[..., z] > 0

    fig, ax = plt.subplots(1, 4, figsize=(14, 3.8))
    show(ax[0], d["T1pre"][0, ..., z], "T1pre (with bias)")
    show(ax[1], n4["T1pre"][0, ..., z], "N4-corrected T1pre")
    show(ax[2], np.log(c.bias_field[..., z]), "true log bias", "coolwarm")
    show(ax[3], n4["log_bias"][0, ..., z], "N4 log bias (shrink 4)", "coolwarm")
    fig.tight_layout()
    fig.savefig(OUT / "transform_n4.png", dpi=70)

    k = EnhancementMapsd()(Subtractd()(dict(d)))
    k = EnhancementThresholdMaskd(breast_mask_key="breast_mask")(k)
    k = FuzzyCMeansMaskd(candidate_key="breast_mask", output_key="fcm_mask", membership_threshold=None)(k)
    fig, ax = plt.subplots(1, 5, figsize=(17, 3.8))
    show(ax[0], k["sub"][0, ..., z], "sub = T1post1 - T1pre", contour=truth)
    show(ax[1], k["washin"][0, ..., z].clamp(0, 3), "wash-in (relative enhancement)", "magma")
    im = ax[2].imshow(np.rot90(k["curve_type"][0, ..., z].numpy()), cmap="viridis", vmin=0, vmax=3)
    ax[2].set_title("curve type 0 none/1 persistent/2 plateau/3 washout", fontsize=8)
    ax[2].axis("off")
    fig.colorbar(im, ax=ax[2], fraction=0.046)
    show(ax[3], k["mask"][0, ..., z], "70 % enhancement threshold", contour=truth)
    show(ax[4], k["fcm_mask"][0, ..., z], "FCM mask (c=2, in breast)", contour=truth)
    fig.tight_layout()
    fig.savefig(OUT / "transform_masks.png", dpi=70)

    s = SelectSequencesd(("T1pre", "T1post3", "sub"))(Subtractd()(dict(d)))
    s["label_value"], s["patient_id"], s["lesion_id"] = 1, "PH0003", "PH0003-L1"
    patches = LesionPatchesd(size_mm=(35.0, 35.0))(s)
    fig, ax = plt.subplots(1, min(6, len(patches)) or 1, figsize=(14, 2.8), squeeze=False)
    for a, p in zip(ax[0], patches):
        show(a, p["image"][2], f"sub, slice {p['slice_index']}")
    fig.suptitle(f"LesionPatchesd: {len(patches)} kept, {patches[0]['n_patches_dropped_other_lesion'] if patches else 0} dropped (other lesion)", fontsize=9)
    fig.tight_layout()
    fig.savefig(OUT / "transform_patches.png", dpi=70)

    cube = MetaTensor(k["sub"][:, 32:96, 64:128, :32].clone())
    fig, ax = plt.subplots(2, 6, figsize=(14, 5))
    for a, i in zip(ax.ravel(), [0, 1, 2, 5, 13, 17, 24, 27, 31, 32, 33, 20]):
        v = Augment34d(["image"], i)({"image": cube.clone()})["image"]
        show(a, v[0, ..., v.shape[-1] // 2], f"variant {i}")
    fig.tight_layout()
    fig.savefig(OUT / "transform_augment34.png", dpi=70)
    print("figures written to", OUT)


if __name__ == "__main__":
    main()
