"""34-fold augmentation benchmark: dce_monai (MONAI/torch) vs the same operations in TorchIO and scipy.ndimage.

    .venv/bin/python benchmarks/bench_augmentation.py [--repeats 3]

Volume 1x128x128x64 float32; all 34 variants per volume. Peer: numpy.rot90 for the 24 cube
rotations, scipy.ndimage.shift (order 0) for the 8 corner shifts, scipy.ndimage.rotate
(order 1, reshape=False) for the +-10 deg axial rotations. TorchIO (``pip install -e .[bench]``):
``tio.Affine`` with 90-degree rotations (nearest), translations of 10 voxels and +-10 deg
(linear), the way a TorchIO user writes these variants. Also checks that the 32 exact
variants are value permutations of the input (no interpolation).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from monai.data import MetaTensor
from scipy import ndimage

from dce_monai.transforms.augmentation import CornerShift, expand_34

ROT = [((0, 1), k1) for k1 in range(4)] + [((0, 2), 1), ((0, 2), 3)]


def scipy_34(v: np.ndarray) -> list[np.ndarray]:
    out = []
    for plane, k1 in ROT:
        a = np.rot90(v, k1, axes=(plane[0] + 1, plane[1] + 1))
        for k2 in range(4):
            out.append(np.ascontiguousarray(np.rot90(a, k2, axes=(2, 3))))
    for i in range(8):
        out.append(ndimage.shift(v, (0,) + CornerShift(i).offsets, order=0, cval=0.0))
    for ang in (10, -10):
        out.append(ndimage.rotate(v, ang, axes=(1, 2), reshape=False, order=1))
    return out


def torchio_34(v: np.ndarray) -> list:
    import torchio as tio

    img = tio.ScalarImage(tensor=torch.as_tensor(v), affine=np.eye(4))
    out = []
    for a in range(6):  # 6 faces x 4 in-plane turns, as cube rotations
        face = [(0, 0, 0), (0, 0, 90), (0, 0, 180), (0, 0, 270), (0, 90, 0), (0, 270, 0)][a]
        for k in range(4):
            deg = (face[0] + 90 * k, face[1], face[2])
            out.append(tio.Affine(scales=1, degrees=deg, translation=0, image_interpolation="nearest")(img).data)
    for i in range(8):
        offs = CornerShift(i).offsets
        out.append(tio.Affine(scales=1, degrees=0, translation=offs, image_interpolation="nearest", default_pad_value=0)(img).data)
    for ang in (10, -10):
        out.append(tio.Affine(scales=1, degrees=(0, 0, ang), translation=0, image_interpolation="linear")(img).data)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    v = np.random.default_rng(0).random((1, 128, 128, 64), dtype=np.float32)
    x = MetaTensor(torch.as_tensor(v))
    expand_34({"image": x}, ["image"])  # warm-up
    t = time.perf_counter()
    for _ in range(args.repeats):
        ours = expand_34({"image": x}, ["image"])
    t_ours = (time.perf_counter() - t) / args.repeats
    t = time.perf_counter()
    for _ in range(args.repeats):
        scipy_34(v)
    t_scipy = (time.perf_counter() - t) / args.repeats
    try:
        torchio_34(v)  # warm-up
        t = time.perf_counter()
        for _ in range(args.repeats):
            torchio_34(v)
        t_tio: float | None = (time.perf_counter() - t) / args.repeats
    except ImportError:
        t_tio = None
    exact = all(np.array_equal(np.sort(o["image"].numpy().ravel()), np.sort(v.ravel())) for o in ours[:24])
    print(f"34 variants of 1x128x128x64, torch threads {torch.get_num_threads()}, {args.repeats} repeats")
    print(f"  dce_monai (MONAI Rotate90/Rotate, torch shifts): {t_ours:.3f} s per volume = {1 / t_ours:.2f} volumes/s ({34 / t_ours:.0f} variants/s)")
    print(f"  scipy.ndimage / numpy                          : {t_scipy:.3f} s per volume = {1 / t_scipy:.2f} volumes/s")
    if t_tio is None:
        print("  TorchIO not installed (pip install -e .[bench]): peer skipped")
    else:
        print(f"  TorchIO tio.Affine                             : {t_tio:.3f} s per volume = {1 / t_tio:.2f} volumes/s")
        print(f"  ratio vs TorchIO: {t_tio / t_ours:.2f}x")
    print(f"  ratio vs scipy: {t_scipy / t_ours:.2f}x; 24 cube rotations are exact value permutations: {exact}")


if __name__ == "__main__":
    main()
