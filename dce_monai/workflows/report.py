"""``dce-monai report RUN_DIR``: one Markdown + HTML report of every experiment found in a run folder.

The report collects, from anywhere under ``RUN_DIR``:

- every predictions CSV in the shared format of :mod:`dce_monai.metrics.results`
  (recognised by its header, whatever its file name): per-experiment summary tables
  (pooled AUC [95 % CI], sensitivity / specificity / accuracy at 0.5, per-fold AUC mean ± SD,
  folds whose scores collapse, n), ROC curves with bootstrap bands, per-fold AUC plots;
- known tables: the channel ranking of ``search-channels`` (``ranking.csv``/``ranking.md``,
  drawn as a bar chart), the masking comparison (``*compar*.md``) and the kinetic baseline
  table (``baseline_kinetics_table.md``), included as they are;
- the kinetic baseline's feature cache (``features.csv`` with ``re_top_<phase>`` columns):
  mean ± SD hot-spot enhancement curve per class;
- class-activation-map overlays (PNG files with ``cam`` in their name or folder), copied next to the report;
- each workflow's ``run.json`` (its arguments and settings).

Held-out figures (the overview, the ROC curves, the comparison against the kinetic baseline)
use only predictions of a model that did not train on the patient
(:data:`~dce_monai.metrics.results.HELD_OUT_SPLITS`): split ``test`` (the held-out fold of
cross-validation) or ``external`` (an independent cohort that no fold trains on), each shown
on its own. Rows of split ``train`` or ``inference`` (a model applied to a whole cohort, e.g.
bundle inference) are shown in a separate "not held-out" table. A predictions file of an older
version, whose held-out rows say ``val``, stops the report with an error naming the file and
the value (:class:`~dce_monai.metrics.results.OldSplitNameError`) rather than being read
under today's names. When a ``folds.json`` lies next to a predictions file or in a
folder above it (within the run folder), each held-out row of fold f is checked against it:
a patient of fold f's training folds is not held-out, whatever the row says; such rows are
left out of the held-out figures and named under "Problems". Each group's scores are checked
for collapse (:func:`dce_monai.metrics.collapse.score_collapse`); a collapsed group is flagged
and never chosen as an experiment's best model while a non-collapsed one exists.

It says which of the known experiments are missing and which command produces them.
Output: ``<out>/report.md``, ``<out>/report.html`` and the PNGs they reference relatively
(the folder is self-contained: move or zip it as a whole). The HTML comes from
python-markdown when it is installed, else from :func:`markdown_to_html`, a small converter
for the subset of Markdown this report writes.
"""

from __future__ import annotations

import argparse
import csv
import html
import json
import math
import re
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dce_monai.metrics.results import COLUMNS, HELD_OUT_SPLITS, OldSplitNameError, read_predictions, summarize

__all__ = [
    "KNOWN_EXPERIMENTS",
    "RunContents",
    "add_cli_arguments",
    "cli_main",
    "discover",
    "markdown_to_html",
    "write_report",
]

#: Experiments the toolkit's workflows write, with the command that produces each.
KNOWN_EXPERIMENTS: dict[str, str] = {
    "channel_search": "dce-monai search-channels MANIFEST --out DIR && dce-monai search-channels MANIFEST --out DIR --merge",
    "compare_masking": "dce-monai compare-masking MANIFEST --out DIR",
    "baseline_kinetics": "dce-monai baseline-kinetics MANIFEST --out DIR",
}
#: Known tables: (title, glob pattern of the Markdown file under the run folder).
KNOWN_TABLES: tuple[tuple[str, str], ...] = (
    ("Channel-triplet ranking (search-channels)", "ranking.md"),
    ("Masking comparison (compare-masking)", "*compar*.md"),
    ("Kinetic baseline (baseline-kinetics)", "baseline_kinetics_table.md"),
    ("Kinetic baseline: single-feature AUCs (baseline-kinetics)", "baseline_kinetics_feature_auc.md"),
)
_MAX_CAMS = 24
_MAX_ROC_MODELS = 6


@dataclass
class RunContents:
    """What :func:`discover` found under a run folder (paths are absolute)."""

    run_dir: Path
    predictions: list[Path] = field(default_factory=list)
    tables: list[tuple[str, Path]] = field(default_factory=list)
    rankings: list[Path] = field(default_factory=list)
    features: list[Path] = field(default_factory=list)
    cams: list[Path] = field(default_factory=list)
    run_jsons: list[Path] = field(default_factory=list)

    def empty(self) -> bool:
        return not (self.predictions or self.tables or self.rankings or self.features or self.cams)


def _csv_header(path: Path) -> list[str]:
    try:
        with open(path, newline="") as f:
            return next(csv.reader(f), [])
    except (OSError, UnicodeDecodeError):
        return []


def _unique_rows(files: Sequence[Path], src: Any, problems: list[str]) -> tuple[list[dict[str, Any]], int]:
    """Rows of all predictions files, each (experiment, model, fold, split, lesion) once.

    Workflows write per-cell files and a merged file with the same rows; both are found.
    A key seen twice with a different probability or label is a conflict, listed in
    ``problems`` (the first file's row is kept). A file that cannot be read is skipped and
    listed in ``problems``.

    Raises:
        OldSplitNameError: a file of an older version (held-out rows with split ``val``).
    """
    seen: dict[tuple[str, ...], dict[str, Any]] = {}
    dropped = 0
    for p in files:
        try:
            file_rows = read_predictions(p)
        except OldSplitNameError:
            raise
        except ValueError as e:
            problems.append(f"`{src(p)}` skipped: {e}")
            continue
        for r in file_rows:
            r["_file"] = p
            key = tuple(str(r[c]) for c in ("experiment", "model", "fold", "split", "lesion_id"))
            if key in seen:
                dropped += 1
                old = seen[key]
                if str(old["label"]) != str(r["label"]) or abs(float(old["prob"]) - float(r["prob"])) > 1e-9:
                    problems.append(f"`{src(p)}`: {key} conflicts with an earlier file (prob {old['prob']} vs {r['prob']}); first kept")
                continue
            seen[key] = r
    return list(seen.values()), dropped


def _nearest_folds(path: Path, root: Path) -> Path | None:
    """The ``folds.json`` in ``path``'s folder or the nearest folder above it, up to ``root``."""
    for d in [path.parent, *path.parent.parents]:
        if (d / "folds.json").is_file():
            return d / "folds.json"
        if d == root:
            break
    return None


def _drop_trained_on(rows: Sequence[dict[str, Any]], root: Path, src: Any, problems: list[str]) -> list[dict[str, Any]]:
    """Held-out rows minus those whose patient is in the training folds of the row's fold (per the nearest folds.json).

    A row of split ``test``/``external`` and fold ``f >= 0`` claims that the model of fold ``f`` did
    not train on its patient; with the folds file that claim is checked (patients in no fold, e.g.
    an independent cohort, pass). Dropped rows are counted in ``problems`` per file and fold.
    """
    from dce_monai.data.folds import read_folds

    cache: dict[Path, list[set[str]] | None] = {}
    kept: list[dict[str, Any]] = []
    bad: dict[tuple[Path, Path, int], list[str]] = {}
    for r in rows:
        fold = int(r["fold"])
        ff = _nearest_folds(r["_file"], root) if fold >= 0 else None
        if ff is not None and ff not in cache:
            try:
                cache[ff] = [set(f) for f in read_folds(ff)]
            except ValueError as e:
                problems.append(f"`{src(ff)}` not used to check held-out rows: {e}")
                cache[ff] = None
        folds = cache.get(ff) if ff is not None else None
        if folds is not None and fold < len(folds):
            if any(str(r["patient_id"]) in f for j, f in enumerate(folds) if j != fold):
                bad.setdefault((r["_file"], ff, fold), []).append(str(r["patient_id"]))  # type: ignore[arg-type]
                continue
        elif folds is not None:
            problems.append(f"`{src(r['_file'])}`: fold {fold} is not in `{src(ff)}` ({len(folds)} folds); its held-out rows are not checked")
        kept.append(r)
    for (p, ff, fold), pids in bad.items():
        problems.append(f"`{src(p)}`: {len(pids)} held-out row(s) (split test/external), fold {fold}, are patients of that fold's training folds "
                        f"per `{src(ff)}` (e.g. {sorted(set(pids))[:3]}): not counted as held-out")
    return kept


def discover(run_dir: str | Path, exclude: str | Path | None = None) -> RunContents:
    """Find predictions CSVs, known tables, kinetic feature caches, CAM PNGs and ``run.json`` files.

    Args:
        run_dir: folder searched recursively (files in hidden folders are skipped).
        exclude: a folder inside ``run_dir`` to skip (the report's own output folder).

    Returns:
        A :class:`RunContents`, each list sorted by path.

    Raises:
        FileNotFoundError: ``run_dir`` is not a folder.

    Example:
        >>> discover("runs/demo").predictions  # doctest: +SKIP
    """
    root = Path(run_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"run folder {str(root)!r} does not exist or is not a folder.")
    root = root.resolve()
    ex = Path(exclude).resolve() if exclude is not None else None
    out = RunContents(root)
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root)
        if not p.is_file() or any(part.startswith(".") for part in rel.parts):
            continue
        if ex is not None and (p == ex or ex in p.parents):
            continue
        name = p.name.lower()
        if name.endswith(".csv"):
            header = _csv_header(p)
            if all(c in header for c in COLUMNS):
                out.predictions.append(p)
            elif name == "ranking.csv" and "auc" in header and ("model" in header or "channels" in header):
                out.rankings.append(p)
            elif "lesion_id" in header and any(c.startswith("re_top_") for c in header):
                out.features.append(p)
        elif name.endswith(".md"):
            for title, pattern in KNOWN_TABLES:
                if p.match(pattern):
                    out.tables.append((title, p))
                    break
        elif name.endswith(".png") and any("cam" in part.lower() for part in rel.parts):
            out.cams.append(p)
        elif name == "run.json":
            out.run_jsons.append(p)
    return out


# ----------------------------------------------------------------------------- Markdown -> HTML


def _inline(text: str) -> str:
    t = html.escape(text, quote=False)
    t = re.sub(r"!\[([^\]]*)\]\(([^)\s]+)\)", lambda m: f'<img alt="{m.group(1)}" src="{m.group(2)}">', t)
    t = re.sub(r"\[([^\]]+)\]\(([^)\s]+)\)", lambda m: f'<a href="{m.group(2)}">{m.group(1)}</a>', t)
    t = re.sub(r"`([^`]+)`", r"<code>\1</code>", t)
    t = re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", t)
    return t


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def markdown_to_html(md: str) -> str:
    """Convert the Markdown subset of this report to an HTML fragment.

    Supported: ATX headings (``#``..``####``), paragraphs, ``-`` bullet lists, fenced code
    blocks, GitHub pipe tables, images ``![alt](src)``, links, inline code and ``**bold**``.
    Written by hand so the report needs no extra dependency; python-markdown is used instead
    when it is installed.

    Example:
        >>> markdown_to_html("# Title\\n\\n| a |\\n|---|\\n| 1 |\\n")
        '<h1>Title</h1>\\n<table>\\n<thead><tr><th>a</th></tr></thead>\\n<tbody>\\n<tr><td>1</td></tr>\\n</tbody></table>'
    """
    lines = md.splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        s = line.strip()
        if not s:
            i += 1
            continue
        if s.startswith("```"):
            j = i + 1
            body = []
            while j < len(lines) and not lines[j].strip().startswith("```"):
                body.append(lines[j])
                j += 1
            out.append("<pre><code>" + html.escape("\n".join(body), quote=False) + "</code></pre>")
            i = j + 1
            continue
        m = re.match(r"^(#{1,4})\s+(.*)$", s)
        if m:
            n = len(m.group(1))
            out.append(f"<h{n}>{_inline(m.group(2))}</h{n}>")
            i += 1
            continue
        if s.startswith("|") and i + 1 < len(lines) and re.match(r"^\|?\s*:?-{1,}", lines[i + 1].strip()):
            head = _cells(s)
            rows = []
            j = i + 2
            while j < len(lines) and lines[j].strip().startswith("|"):
                rows.append(_cells(lines[j]))
                j += 1
            t = ["<table>", "<thead><tr>" + "".join(f"<th>{_inline(c)}</th>" for c in head) + "</tr></thead>", "<tbody>"]
            t += ["<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in r) + "</tr>" for r in rows]
            out.append("\n".join(t) + "\n</tbody></table>")
            i = j
            continue
        if s.startswith("- "):
            items = []
            while i < len(lines) and lines[i].strip().startswith("- "):
                items.append(f"<li>{_inline(lines[i].strip()[2:])}</li>")
                i += 1
            out.append("<ul>\n" + "\n".join(items) + "\n</ul>")
            continue
        para = []
        while i < len(lines) and lines[i].strip() and not re.match(r"^(#{1,4}\s|```|\||- )", lines[i].strip()):
            para.append(lines[i].strip())
            i += 1
        out.append("<p>" + _inline(" ".join(para)) + "</p>")
    return "\n".join(out)


_CSS = (
    "body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
    "table{border-collapse:collapse;margin:1em 0;font-size:0.85em}th,td{border:1px solid #bbb;padding:3px 7px;text-align:left}"
    "th{background:#eee}img{max-width:100%;margin:0.5em 0}pre{background:#f6f6f6;padding:0.7em;overflow-x:auto;font-size:0.8em}"
    "code{background:#f2f2f2}"
)


def _to_html(md: str, title: str) -> str:
    try:
        import markdown  # optional; not a dependency

        body = markdown.markdown(md, extensions=["tables", "fenced_code"])
    except ImportError:
        body = markdown_to_html(md)
    return f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{html.escape(title)}</title><style>{_CSS}</style></head>\n<body>\n{body}\n</body></html>\n'


# ----------------------------------------------------------------------------- report


def _f(v: Any, nd: int = 3) -> str:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return str(v)
    return "–" if math.isnan(x) else f"{x:.{nd}f}"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "x"


def _collapsed(r: Mapping[str, Any]) -> bool:
    return int(r.get("collapsed_folds", 0)) > 0


def _auc_cell(r: Mapping[str, Any]) -> str:
    flag = f" (collapsed in {r['collapsed_folds']} of {r['n_folds']} folds)" if _collapsed(r) else ""
    return f"{_f(r['auc'])} [{_f(r['auc_ci_low'])}, {_f(r['auc_ci_high'])}]{flag}"


def _summary_table(summary: Sequence[Mapping[str, Any]]) -> str:
    lines = [
        "| model | split | pooled AUC [95 % CI] | sensitivity | specificity | accuracy | per-fold AUC mean ± SD | n (pos) | folds | collapsed folds |",
        "|---|---|---|---:|---:|---:|---|---:|---:|---:|",
    ]
    for r in summary:
        lines.append(
            f"| {r['model']} | {r['split']} | {_auc_cell(r)} | {_f(r['sensitivity'])} | "
            f"{_f(r['specificity'])} | {_f(r['accuracy'])} | {_f(r['auc_fold_mean'])} ± {_f(r['auc_fold_sd'])} | {r['n']} ({r['n_pos']}) | "
            f"{r['n_folds']} | {r.get('collapsed_folds', 0)} |"
        )
    notes = [f"- `{r['model']}` ({r['split']}): {r['collapse']}" for r in summary if _collapsed(r)]
    if notes:
        lines += ["", "Collapsed scores (near-constant, or one predicted class at 0.5): the AUC of these groups is not a finding.", "", *notes]
    return "\n".join(lines)


def _sort_key(r: Mapping[str, Any]) -> tuple[bool, float, str]:
    a = float(r["auc"])
    return (_collapsed(r), -a if not math.isnan(a) else math.inf, str(r["model"]))


def _read_ranking(path: Path) -> list[dict[str, Any]]:
    with open(path, newline="") as f:
        return [dict(r) for r in csv.DictReader(f)]


def _kinetic_curves(features: Path, rows_by_lesion: Mapping[str, int]) -> tuple[dict[str, list[list[float]]], list[float] | None, list[str], int]:
    from dce_monai.sequences import post_index
    from dce_monai.workflows.baseline_kinetics import read_feature_table

    table = read_feature_table(features)
    cols = sorted({c for r in table for c in r if c.startswith("re_top_") and not math.isnan(r[c])}, key=lambda c: post_index(c[7:]) or 0)
    common = [c for c in cols if all(c in r and not math.isnan(r[c]) for r in table)]
    curves: dict[int, list[list[float]]] = {0: [], 1: []}
    unmatched = 0
    for r in table:
        y = rows_by_lesion.get(str(r["lesion_id"]))
        if y is None:
            unmatched += 1
            continue
        curves[y].append([float(r[c]) for c in common])
    phases = [c[7:] for c in common]
    times = None
    tcols = [f"time_{p}_s" for p in phases]
    if table and all(all(t in r and not math.isnan(r[t]) for t in tcols) for r in table):
        import numpy as np

        times = [float(np.median([r[t] for r in table])) for t in tcols]
    return {str(k): v for k, v in curves.items()}, times, phases, unmatched


def _delong_vs_baseline(best_rows: Mapping[str, tuple[str, str, list[dict[str, Any]]]]) -> str:
    """Markdown table: best model of each experiment vs the best kinetic-baseline model, DeLong on shared lesions."""
    from dce_monai.metrics.stats import delong_test

    b_model, b_split, b_rows = best_rows["baseline_kinetics"]
    base = {r["lesion_id"]: r for r in b_rows}
    lines = [
        f"Paired DeLong test against the kinetic baseline (`{b_model}`, {b_split}) on the lesions both predicted:",
        "",
        "| experiment | model | split | shared lesions | AUC | baseline AUC | z | p |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for exp, (model, split, rows) in best_rows.items():
        if exp == "baseline_kinetics":
            continue
        shared = [r for r in rows if r["lesion_id"] in base]
        y = [r["label"] for r in shared]
        if len(set(y)) < 2 or any(base[r["lesion_id"]]["label"] != r["label"] for r in shared):
            why = "labels differ from the baseline's" if len(set(y)) == 2 else "one class only"
            lines.append(f"| {exp} | {model} | {split} | {len(shared)} | – | – | – | – ({why}) |")
            continue
        t = delong_test(y, [r["prob"] for r in shared], [base[r["lesion_id"]]["prob"] for r in shared])
        p = f"n/a ({t['reason']})" if math.isnan(t["p"]) else f"{t['p']:.3g}"  # NaN when a class holds one lesion
        lines.append(f"| {exp} | {model} | {split} | {len(shared)} | {_f(t['auc_a'])} | {_f(t['auc_b'])} | {_f(t['z'], 2)} | {p} |")
    return "\n".join(lines)


def write_report(run_dir: str | Path, out_dir: str | Path | None = None, n_boot: int = 500, seed: int = 0, progress: bool = True) -> dict[str, Path]:
    """Write ``report.md`` and ``report.html`` (with PNG figures) for everything found under ``run_dir``.

    Args:
        run_dir: folder holding one or more workflow outputs (searched recursively).
        out_dir: report folder (default ``<run_dir>/report``; skipped when searching).
        n_boot: bootstrap resamples for AUC CIs and ROC bands.
        seed: bootstrap seed.
        progress: print what was found.

    Returns:
        ``{"markdown": ..., "html": ...}`` paths.

    Raises:
        FileNotFoundError: ``run_dir`` missing.
        ValueError: nothing to report under ``run_dir`` (no predictions, table, features or CAM).
        OldSplitNameError: a predictions file of an older version (split ``val`` for the held-out
            fold), named with its line and value.

    Example:
        >>> write_report("runs/demo")["html"]  # doctest: +SKIP
    """
    from dce_monai.workflows.plots import (
        plot_channel_ranking,
        plot_fold_metrics,
        plot_kinetic_curves,
        plot_roc_curves,
    )

    root = Path(run_dir)
    out = Path(out_dir) if out_dir is not None else root / "report"
    found = discover(root, exclude=out)
    if found.empty():
        raise ValueError(
            f"nothing to report under {str(root)!r}: no predictions CSV (columns {', '.join(COLUMNS)}), known table, "
            f"kinetic feature table or CAM PNG; run a workflow with --out inside it first."
        )
    out.mkdir(parents=True, exist_ok=True)
    fig_dir = out / "figures"
    fig_dir.mkdir(exist_ok=True)

    def rel(p: Path) -> str:
        return p.relative_to(out).as_posix()

    def src(p: Path) -> str:
        return p.relative_to(found.run_dir).as_posix()

    problems: list[str] = []
    rows, dropped = _unique_rows(found.predictions, src, problems)
    n_claimed = sum(r["split"] in HELD_OUT_SPLITS for r in rows)
    held = _drop_trained_on([r for r in rows if r["split"] in HELD_OUT_SPLITS], found.run_dir, src, problems)
    not_held = [r for r in rows if r["split"] not in HELD_OUT_SPLITS]
    by_exp: dict[str, list[dict[str, Any]]] = {}
    for r in held:
        by_exp.setdefault(r["experiment"], []).append(r)
    other_by_exp: dict[str, list[dict[str, Any]]] = {}
    for r in not_held:
        other_by_exp.setdefault(r["experiment"], []).append(r)
    experiments = list(dict.fromkeys([r["experiment"] for r in rows]))
    md: list[str] = [f"# dce_monai report: `{root.name}`", ""]
    md.append(f"Run folder: `{found.run_dir}`. Predictions files: {len(found.predictions)}; experiments: "
              f"{', '.join(f'`{e}`' for e in experiments) or 'none'}."
              + (f" {dropped} row(s) present in more than one file (per-cell files and their merge) are counted once." if dropped else ""))
    md.append("")
    md += ["Held-out means predicted by a model that did not train on the patient (split `test`: the held-out fold of "
           "cross-validation, or `external`: an independent cohort; checked against the folds file where one is found): " + f"{len(held)} held-out row(s)"
           + (f", {n_claimed - len(held)} row(s) labelled held-out but from a model that trained on the patient left out" if n_claimed > len(held) else "")
           + f", {len(not_held)} row(s) of split `train`/`inference` shown apart. **Pooled AUC**: one AUC over the held-out "
           "lesions of all folds together; **per-fold AUC**: mean ± SD of each fold's AUC.", ""]
    missing = [e for e in KNOWN_EXPERIMENTS if e not in by_exp]
    if missing:
        md += ["**Missing experiments** (no held-out predictions found):", ""]
        md += [f"- `{e}`: run `{KNOWN_EXPERIMENTS[e]}`" for e in missing]
        md.append("")
    problems_at = len(md)

    overview_at = len(md)
    overview: list[str] = []
    best_per_exp: dict[str, Any] = {}
    best_rows: dict[str, tuple[str, str, list[dict[str, Any]]]] = {}
    baseline_auc = None
    for exp in experiments:
        rs = by_exp.get(exp, [])
        md += [f"## Experiment `{exp}`", ""]
        summary = sorted(summarize(rs, by=("experiment", "model", "split"), n_boot=n_boot, seed=seed), key=_sort_key) if rs else []
        if summary:
            intro = (f"Held-out predictions: {len(summary)} model/split group(s); pooled AUC over all folds' held-out lesions with a "
                     "patient-level bootstrap CI, per-fold AUC mean ± SD, thresholds at 0.5.")
            md += [intro, "", _summary_table(summary), ""]
        else:
            md += ["No held-out predictions.", ""]
        for split in [s for s in HELD_OUT_SPLITS if any(r["split"] == s for r in summary)]:
            models = [r for r in summary if r["split"] == split and not math.isnan(float(r["auc"]))][:_MAX_ROC_MODELS]
            if not models:
                continue
            groups = {}
            for r in models:
                sel = [x for x in rs if x["model"] == r["model"] and x["split"] == split]
                groups[str(r["model"])] = ([x["label"] for x in sel], [x["prob"] for x in sel], [x["patient_id"] for x in sel])
            png = plot_roc_curves(groups, fig_dir / f"roc_{_slug(exp)}_{split}.png", n_boot=n_boot, seed=seed,
                                  title=f"{exp} ({split}): ROC per lesion" + (f", best {len(models)} of {len([r for r in summary if r['split'] == split])}" if len(summary) > len(models) else ""))
            md += [f"![ROC {exp} {split}]({rel(png)})", ""]
            if exp not in best_per_exp:
                m0 = models[0]
                overview.append(f"| {exp} | {m0['model']} | {split} | {_auc_cell(m0)} | {_f(m0['auc_fold_mean'])} ± {_f(m0['auc_fold_sd'])} ({m0['n_folds']}) | "
                                f"{_f(m0['sensitivity'])} | {_f(m0['specificity'])} | {m0['n']} ({m0['n_pos']}) |")
                best_per_exp[exp] = (f"{exp}: {m0['model']}", groups[str(m0["model"])])
                # the reference for the deep models is the kinetic-only baseline when there is one
                # (a shape-feature model is no kinetic baseline)
                ref = [r for r in summary if r["split"] == split and str(r["model"]).endswith("_kinetic") and not math.isnan(float(r["auc"]))]
                r0 = ref[0] if exp == "baseline_kinetics" and ref else models[0]
                best_rows[exp] = (str(r0["model"]), split, [x for x in rs if x["model"] == r0["model"] and x["split"] == split])
                if exp == "baseline_kinetics" and baseline_auc is None:
                    baseline_auc = float(r0["auc"])
        fold_models = [r for r in summary if r["n_folds"] > 1][:12]
        if fold_models:
            fv: dict[str, list[float]] = {}
            from dce_monai.metrics.stats import binary_metrics

            for r in fold_models:
                sel = [x for x in rs if x["model"] == r["model"] and x["split"] == r["split"]]
                folds: dict[int, list[dict[str, Any]]] = {}
                for x in sel:
                    folds.setdefault(x["fold"], []).append(x)
                fv[f"{r['model']} ({r['split']})"] = [binary_metrics([x["label"] for x in f], [x["prob"] for x in f])["auc"] for f in folds.values()]
            fv = {k: v for k, v in fv.items() if any(not math.isnan(a) for a in v)}
            if fv:
                png = plot_fold_metrics(fv, fig_dir / f"folds_{_slug(exp)}.png", title=f"{exp}: per-fold AUC")
                md += [f"![per-fold AUC {exp}]({rel(png)})", ""]
        others = other_by_exp.get(exp, [])
        if others:
            osum = sorted(summarize(others, by=("experiment", "model", "split"), n_boot=n_boot, seed=seed), key=_sort_key)
            md += ["Not held-out (split `train`: the model trained on these patients; `inference`: a model applied to a whole "
                   "cohort, which may include its training patients). These AUCs say how well a model fits, not how it generalises:",
                   "", _summary_table(osum), ""]
    if overview:
        head = ["## Overview: best model of each experiment (held-out lesions)", "",
                "Pooled AUC over all folds' held-out lesions (95 % CI by patient bootstrap) and the mean ± SD of the per-fold AUCs "
                "(number of folds); a model whose scores collapse is only chosen when every model of the experiment does.", "",
                "| experiment | best model | split | pooled AUC [95 % CI] | per-fold AUC mean ± SD (folds) | sensitivity | specificity | n (pos) |",
                "|---|---|---|---|---|---:|---:|---:|"]
        md[overview_at:overview_at] = [*head, *overview, ""]
    if len(best_per_exp) > 1:
        png = plot_roc_curves(dict(best_per_exp.values()), fig_dir / "roc_best_per_experiment.png", n_boot=n_boot, seed=seed,
                              title="Best model of each experiment (held-out lesions)")
        md += ["## Best model of each experiment", "", f"![ROC best per experiment]({rel(png)})", ""]
        if "baseline_kinetics" in best_rows:
            md += [_delong_vs_baseline(best_rows), ""]

    if found.rankings or "channel_search" in by_exp:
        md += ["## Channel ranking", ""]
        ranking = _read_ranking(found.rankings[0]) if found.rankings else sorted(
            summarize([r for r in by_exp["channel_search"] if r["split"] == "test"], by=("model",), n_boot=n_boot, seed=seed), key=_sort_key)
        try:
            png = plot_channel_ranking(ranking, fig_dir / "channel_ranking.png", reference=baseline_auc,
                                       title="Channel triplets: per-lesion AUC (best on top)" + (", dashed: kinetic baseline" if baseline_auc is not None else ""))
            md += [f"Source: `{src(found.rankings[0])}`." if found.rankings else "From the channel_search predictions.", "", f"![channel ranking]({rel(png)})", ""]
        except ValueError as e:
            problems.append(f"channel ranking not drawn: {e}")
            md += [f"Channel ranking not drawn: {e}", ""]

    if found.tables:
        md += ["## Tables written by the workflows", ""]
        for title, p in found.tables:
            md += [f"### {title}", "", f"Source: `{src(p)}`", "", p.read_text().strip(), ""]

    md += ["## Mean kinetic curves per class", ""]
    if found.features:
        labels = {r["lesion_id"]: int(r["label"]) for r in by_exp.get("baseline_kinetics", [])}
        if not labels:
            labels = {r["lesion_id"]: int(r["label"]) for r in rows}
        label_name = "malignant"
        for rj in found.run_jsons:
            if rj.parent == found.features[0].parent:
                try:
                    label_name = str(json.loads(rj.read_text()).get("label", label_name))
                except json.JSONDecodeError:
                    pass
        names = {"1": "malignant", "0": "benign"} if label_name == "malignant" else {"1": f"{label_name} = 1", "0": f"{label_name} = 0"}
        curves, times, phases, unmatched = _kinetic_curves(found.features[0], labels)
        curves = {names[k]: v for k, v in sorted(curves.items(), key=lambda kv: -int(kv[0])) if v}
        if curves and phases:
            png = plot_kinetic_curves(curves, times, fig_dir / "kinetic_curves.png",
                                      title=f"Hot-spot (top 10 % wash-in) enhancement, mean ± SD (label: {label_name})")
            md += [f"Source: `{src(found.features[0])}`; phases {', '.join(phases)}"
                   + (f"; {unmatched} lesion(s) without a label in the predictions left out" if unmatched else "") + ".", "",
                   f"![kinetic curves]({rel(png)})", ""]
        else:
            md += [f"`{src(found.features[0])}` has no lesion with a label in the predictions; no curve drawn.", ""]
    else:
        md += ["Not available: no kinetic feature table found (run `dce-monai baseline-kinetics`).", ""]

    md += ["## Class-activation-map overlays", ""]
    if found.cams:
        cam_dir = out / "cam"
        cam_dir.mkdir(exist_ok=True)
        for p in found.cams[:_MAX_CAMS]:
            dst = cam_dir / _slug(src(p).replace("/", "__"))
            shutil.copyfile(p, dst)
            md += [f"`{src(p)}`", "", f"![CAM {src(p)}]({rel(dst)})", ""]
        if len(found.cams) > _MAX_CAMS:
            md += [f"{len(found.cams) - _MAX_CAMS} more CAM overlay(s) not shown (first {_MAX_CAMS} of {len(found.cams)}).", ""]
    else:
        md += ["None found (PNG files with `cam` in their name or folder).", ""]

    md += ["## Commands and settings", ""]
    if found.run_jsons:
        for p in found.run_jsons:
            try:
                text = json.dumps(json.loads(p.read_text()), indent=1)
            except json.JSONDecodeError as e:
                text = f"(not valid JSON: {e})"
            md += [f"`{src(p)}`:", "", "```json", text, "```", ""]
    else:
        md += ["No `run.json` found.", ""]
    if problems:  # listed near the top, after everything that may find one
        md[problems_at:problems_at] = ["**Problems:**", "", *[f"- {p}" for p in problems], ""]
    text = "\n".join(md).rstrip() + "\n"
    md_path = out / "report.md"
    md_path.write_text(text)
    html_path = out / "report.html"
    html_path.write_text(_to_html(text, f"dce_monai report: {root.name}"))
    if progress:
        print(f"[report] {len(found.predictions)} predictions file(s), experiments {list(by_exp)}; missing {missing}; "
              f"{len(found.tables)} table(s), {len(found.cams)} CAM PNG(s), {len(found.run_jsons)} run.json")
        print(f"[report] written {md_path} and {html_path}")
    return {"markdown": md_path, "html": html_path}


def add_cli_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``dce-monai report RUN_DIR [--out DIR] [--n-boot 500] [--seed 0]``."""
    parser.add_argument("run_dir", help="folder holding workflow outputs (searched recursively)")
    parser.add_argument("--out", default=None, help="report folder (default RUN_DIR/report)")
    parser.add_argument("--n-boot", type=int, default=500, help="bootstrap resamples for CIs and ROC bands (default 500)")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")


def cli_main(args: argparse.Namespace) -> int:
    """Run ``dce-monai report``; return 0."""
    write_report(args.run_dir, args.out, n_boot=args.n_boot, seed=args.seed)
    return 0
