"""CAM of an unguided vs a mask-guided 3D VGG on toy volumes with a label-correlated shortcut.

    .venv/bin/python docs/figures_cam.py     # writes docs/img/cam_guided_vs_unguided.png
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from dce_monai.handlers import cam_overlay  # noqa: E402
from dce_monai.losses import MaskGuidedLoss  # noqa: E402
from dce_monai.metrics import attention_fraction  # noqa: E402
from dce_monai.networks import VGG3DCAM  # noqa: E402


def toy(n: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, 32, 32, 8, generator=g) * 0.2
    y = torch.randint(0, 2, (n,), generator=g)
    mask = torch.zeros(n, 1, 32, 32, 8)
    for i in range(n):
        cx, cy = int(torch.randint(4, 14, (1,), generator=g)), int(torch.randint(6, 26, (1,), generator=g))
        mask[i, 0, cx : cx + 7, cy - 3 : cy + 4, 2:6] = 1
        x[i, 0][mask[i, 0] > 0] += 0.5 + 0.5 * y[i]
        if y[i] == 1:
            x[i, 0, 24:31, 24:31, 0:8] += 1.5  # shortcut: bright artefact only in class 1
    return x, y, mask


def train(lam: float) -> VGG3DCAM:
    torch.manual_seed(0)
    net = VGG3DCAM(channels=(8, 16, 16), dropout=0.0)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    loss = MaskGuidedLoss(lambda_dice=lam)
    x, y, m = toy(32, 0)
    for _ in range(60):
        opt.zero_grad()
        loss(net(x), y, net.cam(x, class_idx=y), m).backward()
        opt.step()
    return net.eval()


def main() -> None:
    xt, yt, mt = toy(8, 1)
    nets = {"no mask (lambda = 0)": train(0.0), "mask-guided (lambda = 10)": train(10.0)}
    i = int((yt == 1).nonzero()[0])
    fig, ax = plt.subplots(1, 2, figsize=(8, 4.3))
    for a, (name, net) in zip(ax, nets.items()):
        with torch.no_grad():
            cam = net.cam(xt, class_idx=yt)
        frac = float(attention_fraction(cam, mt).mean())
        a.imshow(cam_overlay(xt[i, 0], cam[i, 0], mt[i, 0]))
        a.set_title(f"{name}\nCAM mass inside lesion: {frac:.0%}", fontsize=9)
        a.axis("off")
    fig.suptitle("green: lesion outline; bright square away from it: the class-1 shortcut artefact", fontsize=8)
    fig.tight_layout()
    out = Path(__file__).parent / "img" / "cam_guided_vs_unguided.png"
    fig.savefig(out, dpi=80)
    print(out)


if __name__ == "__main__":
    main()
