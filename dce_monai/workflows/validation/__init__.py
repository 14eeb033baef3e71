"""Planted-truth validation: does each method do what its paper claims, on data where the truth is known?

``dce-monai validation --out runs/validation --page docs/validation.md`` runs the experiments
below on phantom cohorts whose class signal is known and writes one Markdown page with their
tables, figures and a plain reading of each (works / does not, and why). Every experiment is
resumable (its cells are cached under ``OUT/<name>/``), so a rerun after an interruption only
computes what is missing and a rerun after completion only rewrites the page; the numbers on
the page are exactly those the command printed.

Experiments (each a module of this package with ``run(out, quick=False, progress=True) ->
Section``; ``quick`` shrinks every setting so a test runs it in seconds):

- ``learns``: the seed 1 model against the kinetic-feature baseline on the same folds of a
  cohort with realistic difficulty (:mod:`.learns`);
- ``channels``: the channel search on cohorts whose class signal lives only in known channels,
  over several cohort seeds (:mod:`.channels`);
- ``shortcut``: seed 2's no_mask / mask_only / mask_guided with a shortcut the network sees,
  present with malignancy in training and absent in the external cohort (:mod:`.shortcut`).
"""

from __future__ import annotations

import argparse
import importlib
import json
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["EXPERIMENTS", "PAPER_SCALE", "Section", "add_cli_arguments", "cli_main", "render_page", "run_validation"]

# name -> module (imported only when run, so one experiment's imports never slow another)
EXPERIMENTS: dict[str, str] = {
    "learns": "dce_monai.workflows.validation.learns",
    "channels": "dce_monai.workflows.validation.channels",
    "shortcut": "dce_monai.workflows.validation.shortcut",
}


@dataclass
class Section:
    """One experiment's part of the page.

    Attributes:
        name: the experiment's key in :data:`EXPERIMENTS`.
        title: the section heading.
        question: what the experiment asks (one or two sentences).
        settings: the settings as a short Markdown paragraph or list (cohorts, folds, epochs...).
        body: Markdown tables of the results (exactly the printed numbers).
        reading: the plain reading: works / does not, and why.
        verdict: ``"works"``, ``"does not"`` or ``"partly"``.
        figures: ``(path, caption)`` of PNGs written under the experiment's folder.
        seconds: wall time of the run that produced the numbers (cached cells count their own time).
        extra: anything machine-readable worth keeping in ``section.json`` (per-seed numbers...).
    """

    name: str
    title: str
    question: str
    settings: str
    body: str
    reading: str
    verdict: str
    figures: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.verdict not in ("works", "does not", "partly"):
            raise ValueError(f"experiment {self.name!r}: verdict must be 'works', 'does not' or 'partly' (got {self.verdict!r}).")


def _experiment(name: str) -> Any:
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown validation experiment {name!r}; choose from {list(EXPERIMENTS)}.")
    return importlib.import_module(EXPERIMENTS[name])


def run_validation(out: str | Path, experiments: Sequence[str] = tuple(EXPERIMENTS), page: str | Path | None = None,
                   quick: bool = False, progress: bool = True) -> dict[str, Section]:
    """Run ``experiments`` (resumable) under ``out`` and write the page.

    Args:
        out: run folder; experiment ``name`` works in ``out/name`` and leaves ``section.json`` there.
        experiments: which to run, in this order.
        page: Markdown file to write (figures are copied next to it, into ``img/``); ``None``:
            ``out/validation.md``.
        quick: tiny settings for tests (the page then says so in its title).
        progress: print progress.

    Returns:
        ``{name: Section}``.

    Raises:
        ValueError: an unknown experiment name.
    """
    out = Path(out)
    names = list(experiments)
    for n in names:
        _experiment(n)  # fail on a bad name before any work
    sections: dict[str, Section] = {}
    for n in names:
        t0 = time.perf_counter()
        if progress:
            print(f"[validation] {n}: running in {out / n}", flush=True)
        sec = _experiment(n).run(out / n, quick=quick, progress=progress)
        if not isinstance(sec, Section):
            raise TypeError(f"experiment {n!r} returned {type(sec).__name__}, not a Section.")
        (out / n).mkdir(parents=True, exist_ok=True)
        (out / n / "section.json").write_text(json.dumps(asdict(sec), indent=1, default=str))
        sections[n] = sec
        if progress:
            print(f"[validation] {n}: {sec.verdict} ({time.perf_counter() - t0:.0f} s)\n{sec.body}\n", flush=True)
    render_page(sections, Path(page) if page is not None else out / "validation.md", quick=quick)
    return sections


def render_page(sections: dict[str, Section], page: Path, quick: bool = False) -> Path:
    """Write the Markdown page of ``sections``; figures are copied to ``page.parent/img/validation_<name>_<file>``."""
    page.parent.mkdir(parents=True, exist_ok=True)
    img = page.parent / "img"
    lines = ["# Validation: do the methods work where the truth is known?" + (" (quick settings: a test run, not evidence)" if quick else ""), "",
             "Written by `bash docs/validation.sh` (`dce-monai validation --out runs/validation --page docs/validation.md`);",
             "every number below is what that command printed. Phantom cohorts only: the class signal is planted,",
             "so each experiment can say whether a method found it.", "",
             "| experiment | verdict | wall time |", "|---|---|---:|"]
    lines += [f"| [{s.title}](#{_anchor(s.title)}) | {s.verdict} | {s.seconds:.0f} s |" for s in sections.values()]
    for s in sections.values():
        lines += ["", f"## {s.title}", "", f"**Question.** {s.question}", "", f"**Settings.** {s.settings}", "", s.body.rstrip(), ""]
        for path, caption in s.figures:
            src = Path(path)
            if not src.is_file():
                raise FileNotFoundError(f"experiment {s.name!r}: figure {str(src)!r} does not exist.")
            img.mkdir(parents=True, exist_ok=True)
            dst = img / f"validation_{s.name}_{src.name}"
            shutil.copyfile(src, dst)
            lines += [f"![{caption}](img/{dst.name})", "", f"*{caption}*", ""]
        lines += [f"**Reading ({s.verdict}).** {s.reading}"]
    lines += ["", PAPER_SCALE]
    page.write_text("\n".join(lines) + "\n")
    return page


#: The last section of the page: each paper's protocol at full scale, its command and its projected GPU time
#: (projections from the measured figures of docs/benchmarks.md and docs/channel_search.md, not from a run).
PAPER_SCALE = """## Paper scale, on a GPU

The experiments above are scaled to what two CPU cores do in about 20 minutes each. Each paper's
protocol at full scale is one command; none was run here (no GPU was at hand for this page).

**Seed 1**, all 35 triplets x 10 patient-wise folds, 50x50 patches resized to 224x224, ImageNet
ResNet34 from a local weights file, 15 epochs, SGD lr 1e-3 x 0.05 every 7 epochs:

```bash
dce-monai search-channels cohort/manifest.json --out search --k 10 --max-epochs 15 --image-size 224 \\
    --patch-size 50 --device cuda --pretrained-weights resnet34-b627a593.pth
```

Projected at 1.26 h on one H100 for seed 1's cohort size (350 cells x 15 epochs x 1693 training
patches), from per-epoch times measured with the search's former trainer
([channel_search.md](channel_search.md)); the bundle-driven search has not been timed on a GPU.

**Seed 2**, no_mask / mask_only / mask_guided x 5 patient-wise folds, Adam lr 2.5e-5, lambda 10,
the 34-variant augmentation, 250 epochs, the bundle's VGG widths 32-64-128-256:

```bash
dce-monai compare-masking cohort/manifest.json --out masking --k 5 --max-epochs 250 \\
    --learning-rate 2.5e-5 --spatial-size 128 128 64 --batch-size 10
```

Projected from one training step of 0.106 s (batch 10, 128x128x64, fp32, H100;
[benchmarks.md](benchmarks.md#networks-benchmarksbench_networkspy)): with seed 2's 115 patients
(92 training patients per fold, 9 steps per epoch, one random variant per volume and epoch as
the bundle draws them) 2,250 steps per cell, about 4 minutes, 1 hour for the 15 cells; if every
epoch shows all 34 variants of every volume, 34 times that (about 34 GPU-hours)."""


def _anchor(title: str) -> str:
    keep = "".join(c for c in title.lower() if c.isalnum() or c in " -_")
    return keep.replace(" ", "-")


def add_cli_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``dce-monai validation``."""
    parser.add_argument("--out", default="runs/validation", help="run folder (resumable; default runs/validation)")
    parser.add_argument("--experiments", nargs="+", default=list(EXPERIMENTS), choices=list(EXPERIMENTS),
                        help="experiments to run (default: all)")
    parser.add_argument("--page", default=None, help="Markdown page to write (default OUT/validation.md)")
    parser.add_argument("--quick", action="store_true", help="tiny settings (tests; not evidence)")


def cli_main(args: argparse.Namespace) -> int:
    run_validation(args.out, args.experiments, page=args.page, quick=args.quick)
    return 0
