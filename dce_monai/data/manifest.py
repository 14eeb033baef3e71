"""Cohort manifests: load, validate and turn into MONAI datalists.

A manifest is JSON data (never evaluated) following ``data_manifest/schema.json``: a dataset
header and patients, each with one exam (image paths by canonical sequence name, acquisition
times, label map) and lesions with labels. Paths are relative to the manifest's folder.

Validation happens in two layers. The JSON Schema catches structural errors; semantic rules
here catch what a schema cannot (duplicate ids, phase gaps, times out of order, a lesion
that cannot be located). Every problem names the case and the field, and all problems are
reported together in one :class:`ManifestError`. File contents are checked separately by
:mod:`dce_monai.data.validate`.

Example:
    >>> m = load_manifest("cohort/manifest.json")           # doctest: +SKIP
    >>> lesions = m.to_datalist(level="lesion")             # doctest: +SKIP
    >>> lesions[0]["T1pre"], lesions[0]["label"]            # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import pairwise
from pathlib import Path
from typing import Any

from dce_monai.sequences import (
    PRE,
    is_post,
    post_index,
    post_name,
    sort_sequences,
    validate_sequence_names,
)

__all__ = [
    "LESION_LABELS",
    "PATIENT_LABELS",
    "Manifest",
    "ManifestError",
    "Problem",
    "check_manifest",
    "load_manifest",
    "rebase",
    "save_manifest",
    "schema",
]

logger = logging.getLogger(__name__)

#: Patient labels with a fixed meaning; manifests may carry others (``hr``, ``recurrence_5y``, ...).
PATIENT_LABELS = ("her2", "er", "pr", "pcr", "recurrence_event", "malignant")
LESION_LABELS = ("malignant",)
#: Target of a manifest that names none (seed 1's lesion malignancy).
DEFAULT_TARGET = "malignant"


@dataclass(frozen=True)
class Problem:
    """One problem found in a manifest: which case, which field, what is wrong."""

    case: str
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.case} field {self.field!r}: {self.message}"


class ManifestError(ValueError):
    """A manifest (or its files) failed validation; ``problems`` lists every problem found."""

    def __init__(self, problems: Sequence[Problem], source: str = "manifest") -> None:
        self.problems = list(problems)
        self.source = source
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{source}: {len(self.problems)} problem(s):\n{lines}")


@lru_cache(maxsize=1)
def schema() -> dict[str, Any]:
    """The manifest JSON Schema shipped with the package."""
    return json.loads((Path(__file__).parent / "schema.json").read_text())


def _case(patient: Any, index: int) -> str:
    pid = patient.get("patient_id") if isinstance(patient, dict) else None
    return f"patient {pid!r}" if pid else f"patients[{index}]"


def _schema_problems(data: Any) -> list[Problem]:
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema())
    problems = []
    for err in sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path)):
        path = list(err.absolute_path)
        case = "manifest"
        if len(path) >= 2 and path[0] == "patients" and isinstance(path[1], int):
            patients = data.get("patients", []) if isinstance(data, dict) else []
            case = _case(patients[path[1]] if path[1] < len(patients) else None, path[1])
            path = path[2:]
        fld = ".".join(str(p) for p in path) or "(root)"
        msg = err.message
        if err.validator == "enum" and "sequence" not in msg:
            msg = f"value {err.instance!r} is not allowed; expected one of {err.validator_value}"
        if err.validator == "pattern" and isinstance(err.instance, str) and "sequences" in fld:
            msg = (
                f"unknown sequence name {err.instance!r}; expected T2, T1pre, T1post<k> (k >= 1) or sub"
            )
        problems.append(Problem(case, fld, msg))
    return problems


def _semantic_problems(data: dict[str, Any]) -> list[Problem]:
    problems: list[Problem] = []
    seen_pids: dict[str, int] = {}
    seen_lesions: dict[str, str] = {}
    used_files: dict[str, tuple[str, str]] = {}  # normalised path -> (case, field) of its first use
    for i, p in enumerate(data.get("patients", [])):
        case = _case(p, i)
        pid = p["patient_id"]
        if pid in seen_pids:
            problems.append(Problem(case, "patient_id", f"duplicate patient id (also patients[{seen_pids[pid]}])"))
        seen_pids.setdefault(pid, i)
        exam = p["exam"]
        seqs = list(exam["sequences"])
        posts: list[int] = sorted(k for s in seqs if (k := post_index(s)) is not None)
        missing = [k for k in range(1, (posts[-1] if posts else 0) + 1) if k not in posts]
        if missing:
            problems.append(
                Problem(case, "exam.sequences", f"post-contrast phases have gaps: {', '.join(post_name(k) for k in missing)} missing but {post_name(posts[-1])} present")
            )
        times = exam.get("acquisition_times_s", {})
        for name in times:
            if name not in exam["sequences"]:
                problems.append(Problem(case, f"exam.acquisition_times_s.{name}", "time given for a sequence the exam does not have"))
        order = [s for s in sort_sequences([s for s in seqs if s == PRE or is_post(s)]) if s in times]
        for a, b in pairwise(order):
            if not times[b] > times[a]:
                problems.append(
                    Problem(case, f"exam.acquisition_times_s.{b}", f"acquisition times must increase with phase: {a}={times[a]} s, {b}={times[b]} s")
                )
        values: dict[int, str] = {}
        for j, les in enumerate(p["lesions"]):
            lid = les["lesion_id"]
            lcase = f"{case} lesion {lid!r}"
            if lid in seen_lesions:
                problems.append(Problem(lcase, "lesion_id", f"duplicate lesion id (also in {seen_lesions[lid]})"))
            seen_lesions.setdefault(lid, case)
            v = les.get("label_value")
            if v is None and "mask" not in les:
                problems.append(Problem(lcase, f"lesions[{j}]", "lesion has neither label_value nor mask: it cannot be located"))
            if v is not None:
                if "label_map" not in exam and "mask" not in les:
                    problems.append(Problem(lcase, f"lesions[{j}].label_value", "label_value given but the exam has no label_map"))
                if v in values:
                    problems.append(Problem(lcase, f"lesions[{j}].label_value", f"label_value {v} already used by lesion {values[v]!r}"))
                values.setdefault(v, lid)
        problems.extend(_file_reuse_problems(p, case, used_files))
        problems.extend(_non_finite_problems(p, case))
    return problems


def _file_reuse_problems(p: dict[str, Any], case: str, used: dict[str, tuple[str, str]]) -> list[Problem]:
    """One file in two roles: two sequences (or a sequence and a map/mask) of a patient, or
    any file of two patients (``used`` carries the first use across patients)."""
    from os.path import normpath as norm

    exam = p["exam"]
    roles = [(f"exam.sequences.{s}", exam["sequences"][s]) for s in sort_sequences(list(exam["sequences"]))]
    roles += [(f"exam.{k}", exam[k]) for k in ("label_map", "breast_mask", "bias_field") if isinstance(exam.get(k), str)]
    roles += [(f"lesions[{j}].mask", les["mask"]) for j, les in enumerate(p["lesions"]) if isinstance(les.get("mask"), str)]
    problems: list[Problem] = []
    own: dict[str, str] = {}
    for fld, rel in roles:
        key = norm(rel)
        first = own.get(key)
        if first is not None and (first.startswith("exam.sequences.") or fld.startswith("exam.sequences.")):
            problems.append(Problem(case, fld, f"same file as {first} ({rel!r}); each sequence needs its own file"))
        other = used.get(key)
        if other is not None and other[0] != case:
            problems.append(Problem(case, fld, f"file {rel!r} is also used by {other[0]} ({other[1]}); each patient needs its own files"))
        own.setdefault(key, fld)
    for fld, rel in roles:
        used.setdefault(norm(rel), (case, fld))
    return problems


def _non_finite_problems(p: dict[str, Any], case: str) -> list[Problem]:
    """NaN or infinite numbers anywhere in a patient (the schema's ``number`` admits them)."""
    from math import isfinite

    problems: list[Problem] = []
    stack: list[tuple[Any, str]] = [(p, "")]
    while stack:
        v, where = stack.pop()
        if isinstance(v, float) and not isfinite(v):
            problems.append(Problem(case, where or "(root)", f"value {v} is not a finite number"))
        elif isinstance(v, dict):
            stack.extend((x, f"{where}.{k}" if where else str(k)) for k, x in v.items())
        elif isinstance(v, list):
            stack.extend((x, f"{where}.{i}" if where else str(i)) for i, x in enumerate(v))
    return sorted(problems, key=lambda q: q.field)


def check_manifest(data: Any, source: str = "manifest") -> None:
    """Validate manifest data (schema + semantic rules) without touching files.

    Schema problems are reported first; the semantic rules (duplicate patient/lesion ids,
    duplicate ``label_value`` in a patient, a lesion with neither ``label_value`` nor
    ``mask``, ``label_value`` without ``label_map``, post-contrast phase gaps, acquisition
    times not strictly increasing T1pre < T1post1 < T1post2 ..., times for absent
    sequences, one file in two roles of a patient or in two patients, NaN or infinite
    numbers) run once the structure is valid.

    Args:
        data: parsed JSON of a manifest.
        source: name used at the start of the error message (the file path).

    Raises:
        ManifestError: listing every problem with its case and field.

    Example:
        >>> check_manifest({"schema_version": "1.0", "dataset": {"name": "x"}, "patients": []})
    """
    problems = _schema_problems(data)
    if not problems:
        problems = _semantic_problems(data)
    if problems:
        raise ManifestError(problems, source)


@dataclass
class Manifest:
    """A validated cohort manifest.

    Attributes:
        path: the manifest file (None for in-memory data).
        root: folder relative paths are resolved against.
        dataset: the dataset header.
        patients: patient entries as in the file.
    """

    path: Path | None
    root: Path
    dataset: dict[str, Any]
    patients: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def from_dict(cls, data: dict[str, Any], root: str | Path = ".", source: str = "manifest") -> Manifest:
        check_manifest(data, source)
        return cls(None, Path(root), data["dataset"], list(data["patients"]))

    def to_dict(self) -> dict[str, Any]:
        return {"schema_version": "1.0", "dataset": self.dataset, "patients": self.patients}

    @property
    def target(self) -> str:
        """The endpoint this cohort is trained on (``dataset.target``; default ``malignant``)."""
        return str(self.dataset.get("target", DEFAULT_TARGET))

    @property
    def register_phases(self) -> bool:
        """Whether pipelines should register post-contrast phases to T1pre (``dataset.register_phases``)."""
        return bool(self.dataset.get("register_phases", False))

    def labels_available(self) -> list[str]:
        """Label names that can be a target: ``malignant`` plus every patient label in the manifest."""
        names = {DEFAULT_TARGET} | {k for p in self.patients for k in p.get("labels", {})}
        return sorted(names)

    def resolve(self, rel: str) -> str:
        """Absolute path string of a manifest path."""
        p = Path(rel)
        return str(p if p.is_absolute() else (self.root / p).resolve())

    def sequences(self) -> list[str]:
        """Sequences present in every patient, canonical order."""
        common: set[str] | None = None
        for p in self.patients:
            s = set(p["exam"]["sequences"])
            common = s if common is None else common & s
        return sort_sequences(sorted(common or ()))

    def select(self, patient_ids: Iterable[str]) -> Manifest:
        """A manifest with only the given patients (unknown ids are an error)."""
        wanted = list(patient_ids)
        have = {p["patient_id"]: p for p in self.patients}
        unknown = [w for w in wanted if w not in have]
        if unknown:
            raise KeyError(f"patients not in the manifest: {unknown}")
        return Manifest(self.path, self.root, self.dataset, [have[w] for w in wanted])

    def to_datalist(
        self,
        level: str = "lesion",
        sequences: Sequence[str] | None = None,
        label: str | None = None,
        cohort: str | None = None,
        skip_missing_labels: bool = False,
        report: dict[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        """Turn the manifest into a MONAI datalist.

        Args:
            level: ``"lesion"`` (one dict per lesion: seed 1 patches, seed 2 crops) or
                ``"patient"`` (one dict per patient: whole-volume work).
            sequences: sequence names to include (default: all of each patient's sequences);
                a requested sequence a patient lacks is an error naming both.
            label: target written to ``"label"`` (default: the manifest's target,
                :attr:`target`): ``malignant`` (lesion label at lesion level; at patient level,
                the patient's ``malignant`` or any malignant lesion) or a patient label
                (``her2``, ``pcr``, ``recurrence_event``, ...; at lesion level every lesion of
                the patient carries it).
            cohort: keep only patients of this ``cohort`` (e.g. ``"train"``).
            skip_missing_labels: skip entries whose target is missing instead of raising;
                the ids go into ``report`` and a warning with their count is logged (never
                silently).
            report: optional dict that receives ``{"skipped": [...ids...]}``.

        Returns:
            List of dicts with ``patient_id``, ``label``, each sequence name -> absolute path,
            ``label_map`` / ``breast_mask`` paths if present, ``acquisition_times_s``; lesion
            level adds ``lesion_id``, ``label_value`` and ``mask`` (a lesion's own mask path).
            A lesion given by its own ``mask`` (MAMA-MIA's expert segmentation, the
            ``generic`` importer), no ``label_value`` and no exam ``label_map`` gets ``label_map`` = its mask and
            ``label_value`` = 1 (instead of ``mask``), so every workflow reads lesions one way
            and no label map file has to be written; at patient level a patient whose only lesion has a mask
            gets that mask as ``label_map`` likewise.

        Raises:
            ValueError: unknown ``level``/``label``/``cohort``, a missing sequence or a
                missing label (each message names the case).

        Example:
            >>> m = Manifest.from_dict(data, root="cohort")                 # doctest: +SKIP
            >>> m.to_datalist(level="patient", label="her2", skip_missing_labels=True,
            ...               report=(rep := {}))                          # doctest: +SKIP
        """
        if level not in ("lesion", "patient"):
            raise ValueError(f"level must be 'lesion' or 'patient', got {level!r}.")
        label = self.target if label is None else label
        known = self.labels_available()
        if label not in known:
            raise ValueError(f"label must be one of the manifest's labels {known}, got {label!r}.")
        seqs = validate_sequence_names(sequences, "sequences") if sequences is not None else None
        if cohort is not None:
            cohorts = sorted({p["cohort"] for p in self.patients if "cohort" in p})
            if cohort not in cohorts:
                raise ValueError(f"cohort {cohort!r} matches no patient; cohorts in the manifest: {cohorts}.")
        out: list[dict[str, Any]] = []
        skipped: list[str] = []
        for p in self.patients:
            if cohort is not None and p.get("cohort") != cohort:
                continue
            pid = p["patient_id"]
            exam = p["exam"]
            names = seqs or sort_sequences(list(exam["sequences"]))
            missing = [s for s in names if s not in exam["sequences"]]
            if missing:
                raise ValueError(
                    f"patient {pid!r}: requested sequence(s) {missing} not in the exam; "
                    f"available: {sort_sequences(list(exam['sequences']))}."
                )
            base: dict[str, Any] = {"patient_id": pid}
            for s in names:
                base[s] = self.resolve(exam["sequences"][s])
            for key in ("label_map", "breast_mask"):
                if key in exam:
                    base[key] = self.resolve(exam[key])
            if level == "patient" and "label_map" not in base and len(p["lesions"]) == 1 and "mask" in p["lesions"][0]:
                base["label_map"], base["label_value"] = self.resolve(p["lesions"][0]["mask"]), 1
            if "acquisition_times_s" in exam:
                base["acquisition_times_s"] = {k: exam["acquisition_times_s"][k] for k in names if k in exam["acquisition_times_s"]}
            if "cohort" in p:
                base["cohort"] = p["cohort"]
            labels = p.get("labels", {})
            if level == "patient":
                y = labels.get(label)
                if y is None and label == "malignant" and p["lesions"] and all(les.get("malignant") is not None for les in p["lesions"]):
                    y = int(any(les["malignant"] for les in p["lesions"]))
                if y is None:
                    if not skip_missing_labels:
                        raise ValueError(f"patient {pid!r}: label {label!r} is missing; pass skip_missing_labels=True to skip such cases.")
                    skipped.append(pid)
                    continue
                out.append({**base, "label": y})
                continue
            for les in p["lesions"]:
                y = les.get(label) if label in LESION_LABELS else labels.get(label)
                lid = les["lesion_id"]
                if y is None:
                    if not skip_missing_labels:
                        raise ValueError(
                            f"patient {pid!r} lesion {lid!r}: label {label!r} is missing; pass skip_missing_labels=True to skip such cases."
                        )
                    skipped.append(lid)
                    continue
                d = {**base, "lesion_id": lid, "label": y}
                if "label_value" in les:
                    d["label_value"] = les["label_value"]
                if "mask" in les and "label_value" not in les and "label_map" not in exam:
                    d["label_map"], d["label_value"] = self.resolve(les["mask"]), 1  # its own mask is its label map
                elif "mask" in les:
                    d["mask"] = self.resolve(les["mask"])
                out.append(d)
        if report is not None:
            report["skipped"] = skipped
        if skipped:
            logger.warning("%d %s(s) without label %r skipped: %s", len(skipped), level, label, skipped)
        return out


def load_manifest(path: str | Path) -> Manifest:
    """Read and validate a manifest file (JSON, never evaluated).

    Relative paths in the manifest resolve against the manifest's folder (``Manifest.root``).
    The JSON is parsed strictly, because a manifest decides which file is read for which
    patient: a key given twice in one object (JSON keeps the last one silently), ``NaN`` /
    ``Infinity`` or a number that overflows to infinity, an integer of more than
    30 digits, nesting deeper than 64 levels, a file over 256 MiB and a path that is a
    symlink loop are each a problem naming the case and the field.

    Args:
        path: the manifest JSON file.

    Returns:
        A validated :class:`Manifest`.

    Raises:
        FileNotFoundError: the file does not exist (or is not a regular file).
        ManifestError: a symlink loop, invalid or refused JSON, schema or semantic problems
            (all listed).

    Example:
        >>> m = load_manifest("data_manifest/examples/minimal.json")  # doctest: +SKIP
    """
    import errno
    import stat

    path = Path(path)
    try:
        st = path.stat()
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise ManifestError([Problem("manifest", "(file)", f"symlink loop: {path} never reaches a file")], str(path)) from None
        raise FileNotFoundError(f"manifest not found: {path}") from None
    if not stat.S_ISREG(st.st_mode):
        raise FileNotFoundError(f"manifest not found: {path} is not a regular file")
    if st.st_size > _MAX_MANIFEST_BYTES:
        raise ManifestError(
            [Problem("manifest", "(file)", f"file is {st.st_size} bytes, over the {_MAX_MANIFEST_BYTES} byte limit for a manifest")],
            str(path),
        )
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise ManifestError([Problem("manifest", "(file)", f"not valid JSON: {e}")], str(path)) from None
    data = _parse_json(text, str(path))
    check_manifest(data, str(path))
    return Manifest(path, path.parent.resolve(), data["dataset"], list(data["patients"]))


_MAX_MANIFEST_BYTES = 256 * 2**20
_MAX_JSON_DEPTH = 64
_MAX_INT_DIGITS = 30


class _Refused:
    """A JSON value refused while parsing; reported with its place by :func:`_parse_json`."""

    __slots__ = ("why",)

    def __init__(self, why: str) -> None:
        self.why = why


class _DuplicateKeys(dict):  # type: ignore[type-arg]
    """A JSON object in which some key was given more than once (``duplicates``)."""

    duplicates: list[str]


def _json_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    dup: list[str] = []
    for k, v in pairs:
        if k in out and k not in dup:
            dup.append(k)
        out[k] = v
    if not dup:
        return out
    marked = _DuplicateKeys(out)
    marked.duplicates = dup
    return marked


def _json_int(s: str) -> int | _Refused:
    n = len(s.lstrip("-"))
    return int(s) if n <= _MAX_INT_DIGITS else _Refused(f"integer with {n} digits; numbers in a manifest have at most {_MAX_INT_DIGITS}")


def _json_float(s: str) -> float | _Refused:
    import math

    f = float(s)
    return f if math.isfinite(f) else _Refused(f"number {s[:24]}{'...' if len(s) > 24 else ''} overflows to {f}; a finite number is needed")


def _json_constant(s: str) -> _Refused:
    return _Refused(f"{s} is not a number (NaN and Infinity are not valid JSON); a finite number is needed")


def _parse_json(text: str, source: str) -> Any:
    """Parse manifest JSON strictly; every refused value becomes a problem naming case and field.

    Hand-written on top of :func:`json.loads` hooks because the standard parser accepts
    duplicate keys, NaN/Infinity and overflowing numbers silently, raises bare
    ``RecursionError``/``ValueError`` on deep nesting and huge integers, and no maintained
    strict JSON reader reports where in the document each refused value sits.
    """
    try:
        data = json.loads(text, object_pairs_hook=_json_object, parse_int=_json_int, parse_float=_json_float, parse_constant=_json_constant)
    except RecursionError:
        raise ManifestError(
            [Problem("manifest", "(file)", f"JSON nested too deeply to parse (RecursionError); a manifest is at most {_MAX_JSON_DEPTH} levels deep")],
            source,
        ) from None
    except ValueError as e:  # json.JSONDecodeError and any conversion error of the parser
        raise ManifestError([Problem("manifest", "(file)", f"not valid JSON: {e}")], source) from None
    problems: list[Problem] = []
    patients = data.get("patients") if isinstance(data, dict) else None

    def place(path: list[Any]) -> tuple[str, str]:
        if len(path) >= 2 and path[0] == "patients" and isinstance(path[1], int) and isinstance(patients, list):
            pt = patients[path[1]]
            pid = pt.get("patient_id") if isinstance(pt, dict) else None
            case = f"patient {pid!r}" if isinstance(pid, str) and pid else f"patients[{path[1]}]"
            return case, ".".join(str(x) for x in path[2:]) or "(root)"
        return "manifest", ".".join(str(x) for x in path) or "(root)"

    stack: list[tuple[Any, list[Any]]] = [(data, [])]
    while stack:
        value, path = stack.pop()
        if isinstance(value, _Refused):
            problems.append(Problem(*place(path), value.why))
        elif len(path) > _MAX_JSON_DEPTH and isinstance(value, (dict, list)):
            problems.append(Problem(*place(path[:_MAX_JSON_DEPTH]), f"nested more than {_MAX_JSON_DEPTH} levels deep"))
        elif isinstance(value, dict):
            for k in getattr(value, "duplicates", ()):
                problems.append(Problem(*place(path), f"key {k!r} given more than once in one object (JSON would keep only the last)"))
            stack.extend((v, [*path, k]) for k, v in reversed(list(value.items())))
        elif isinstance(value, list):
            stack.extend((v, [*path, i]) for i, v in reversed(list(enumerate(value))))
    if problems:
        raise ManifestError(problems, source)
    return data


def save_manifest(data: dict[str, Any] | Manifest, path: str | Path) -> Path:
    """Validate and write a manifest as JSON (atomically: temp file + rename).

    Args:
        data: manifest data (dict) or a :class:`Manifest`; relative paths are written as they
            are, so write the file where they resolve (or :func:`rebase` them first).
        path: output file; parent folders are created.

    Returns:
        The written path.

    Raises:
        ManifestError: the data is invalid; nothing is written.

    Example:
        >>> save_manifest(load_manifest("a/manifest.json"), "b/manifest.json")  # doctest: +SKIP
    """
    d = data.to_dict() if isinstance(data, Manifest) else data
    check_manifest(d, str(path))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")  # unique: concurrent writers never share it
    try:
        tmp.write_text(json.dumps(d, indent=1))
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def rebase(data: dict[str, Any], base: str | Path) -> dict[str, Any]:
    """Make the manifest's relative paths absolute against ``base`` (in place).

    Args:
        data: manifest data with ``patients``.
        base: folder the relative paths are relative to.

    Returns:
        ``data``, with every image, map and mask path absolute.
    """
    root = Path(base).resolve()

    def fix(v: str) -> str:
        return v if Path(v).is_absolute() else str(root / v)

    for p in data["patients"]:
        ex = p["exam"]
        ex["sequences"] = {k: fix(v) for k, v in ex["sequences"].items()}
        for key in ("label_map", "breast_mask", "bias_field"):
            if key in ex:
                ex[key] = fix(ex[key])
        for les in p["lesions"]:
            if "mask" in les:
                les["mask"] = fix(les["mask"])
    return data
