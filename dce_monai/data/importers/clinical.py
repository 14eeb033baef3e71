"""Clinical tables and targets shared by the importers.

Real cohorts come with a clinical table (MAMA-MIA's ``clinical_and_imaging_info.xlsx``, a
CSV export of it, BreastDCEDL's metadata CSV, a user's own CSV) holding patient-level
endpoints: ``pcr``, ``her2``, ``hr``, ``er``, ``pr``, days to recurrence, ... One of them is
the run's *target*, chosen on the command line (``--target``); :func:`target_values`
reads it for every patient, strictly: a value outside {0, 1} stops the import naming the
patient, the column and the value; a blank cell is *missing* and such patients are
listed and left out by the importer (never silently).

Derived endpoints ``<event>_<N>y`` (``recurrence_5y``, ``metastasis_3y``, ``death_5y``) are
computed from ``days_to_<event>`` and ``days_to_follow_up``::

    1     if days_to_<event> <= N * 365.25
    0     if no event up to then and days_to_follow_up >= N * 365.25
    None  otherwise (followed for less than N years without the event: censored)

Reading ``.xlsx`` needs ``openpyxl`` (a dependency of dce_monai); the sheet ``dataset_info``
is read when present (MAMA-MIA's layout), else the first sheet.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "DERIVED_TARGET",
    "apply_target",
    "binary_cell",
    "clinical_value",
    "column_key",
    "read_table",
    "rows_by_id",
    "target_values",
]

#: ``<event>_<N>y`` targets derived from day columns.
DERIVED_TARGET = re.compile(r"^(?P<event>recurrence|metastasis|death)_(?P<years>[1-9][0-9]?)y$")
_DAYS_PER_YEAR = 365.25
_TRUE = {"1", "1.0", "yes", "true", "positive", "pos"}
_FALSE = {"0", "0.0", "no", "false", "negative", "neg"}


def column_key(name: Any) -> str:
    """A column header as a manifest key: lower case, runs of other characters as ``_``.

    Example:
        >>> column_key("Days To Recurrence")
        'days_to_recurrence'
    """
    key = re.sub(r"[^a-z0-9]+", "_", str(name).strip().lower()).strip("_")
    if key and key[0].isdigit():
        key = f"c_{key}"
    return key


def read_table(path: str | Path, sheet: str | None = None) -> list[dict[str, Any]]:
    """Rows of a clinical table (``.csv`` or ``.xlsx``) with headers as :func:`column_key` keys.

    Cells keep their type from xlsx (numbers stay numbers); CSV cells are strings. Empty
    cells are ``None``.

    Args:
        path: the table.
        sheet: xlsx sheet name (default ``dataset_info`` when present, else the first sheet).

    Returns:
        One dict per data row.

    Raises:
        FileNotFoundError: no such file.
        ValueError: an unknown file type, a missing sheet, an empty table or two headers
            that give the same key (each naming the file).

    Example:
        >>> rows = read_table("MAMA-MIA/clinical_and_imaging_info.xlsx")  # doctest: +SKIP
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"clinical table not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        with open(path, newline="", encoding="utf-8-sig") as f:
            raw = list(csv.reader(f))
    elif suffix in (".xlsx", ".xlsm"):
        import openpyxl

        try:
            wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
        except Exception as e:  # noqa: BLE001 - openpyxl raises several types for broken files
            raise ValueError(f"{path}: not a readable xlsx workbook ({type(e).__name__}: {e}).") from None
        try:
            name = sheet or ("dataset_info" if "dataset_info" in wb.sheetnames else wb.sheetnames[0])
            if name not in wb.sheetnames:
                raise ValueError(f"{path}: no sheet {name!r}; sheets: {wb.sheetnames}.")
            raw = [list(r) for r in wb[name].iter_rows(values_only=True)]
        finally:
            wb.close()
    else:
        raise ValueError(f"{path}: clinical tables must be .csv or .xlsx, got {suffix or 'no suffix'!r}.")
    raw = [r for r in raw if any(c not in (None, "") for c in r)]
    if not raw:
        raise ValueError(f"{path}: the table is empty.")
    keys = [column_key(h) if h not in (None, "") else "" for h in raw[0]]
    seen: dict[str, int] = {}
    for i, k in enumerate(keys):
        if k and k in seen:
            raise ValueError(f"{path}: columns {raw[0][seen[k]]!r} and {raw[0][i]!r} both read as {k!r}.")
        seen[k] = i
    rows = []
    for r in raw[1:]:
        rows.append({k: (None if c == "" else c) for k, c in zip(keys, r) if k})
    return rows


def rows_by_id(path: str | Path, id_column: str = "patient_id") -> dict[str, dict[str, Any]]:
    """Rows of a clinical table keyed by patient id (as written, stripped).

    Args:
        path: the table (see :func:`read_table`).
        id_column: the patient id column (matched through :func:`column_key`).

    Returns:
        ``{patient_id: row}``.

    Raises:
        ValueError: the table lacks ``id_column`` (the columns are listed), a row without an
            id, or an id in two rows (ids compared case-insensitively; each naming the file).

    Example:
        >>> rows = rows_by_id("clinical.csv", "Patient ID")  # doctest: +SKIP
    """
    key = column_key(id_column)
    out: dict[str, dict[str, Any]] = {}
    seen: set[str] = set()
    for i, row in enumerate(read_table(path), start=2):
        if key not in row:
            raise ValueError(f"{path}: no column {id_column!r}; columns: {sorted(row)}.")
        pid = str(row[key] if row[key] is not None else "").strip()
        if not pid:
            raise ValueError(f"{path}: row {i} has no {id_column!r}.")
        if pid.lower() in seen:
            raise ValueError(f"{path}: patient {pid.lower()!r} appears in two rows.")
        seen.add(pid.lower())
        out[pid] = row
    return out


def binary_cell(value: Any, where: str) -> int | None:
    """A 0/1 cell: ``0``, ``1``, ``"1.0"``, ``yes``/``no``, ``positive``/``negative``; blank or NaN -> None.

    Raises:
        ValueError: any other value, naming ``where`` and the value.

    Example:
        >>> binary_cell("1.0", "row 2"), binary_cell("", "row 3")
        (1, None)
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, bool):
        return int(value)
    text = str(value).strip().lower()
    if text in ("", "nan", "na", "n/a", "none", "null"):
        return None
    if text in _TRUE:
        return 1
    if text in _FALSE:
        return 0
    raise ValueError(f"{where}: expected 0 or 1 (or blank for missing), got {value!r}.")


def _number(value: Any, where: str) -> float | None:
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "nan", "na", "n/a", "none", "null")):
        return None
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: expected a number of days (or blank), got {value!r}.") from None
    if math.isnan(f):
        return None
    if not math.isfinite(f) or f < 0:
        raise ValueError(f"{where}: expected a non-negative number of days, got {value!r}.")
    return f


def clinical_value(value: Any) -> float | int | str | bool | None:
    """A cell as a JSON value for a manifest's ``clinical`` entry (NaN and blanks -> None)."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return None if isinstance(value, float) and not math.isfinite(value) else value
    text = str(value).strip()
    return text or None


def target_values(rows: Mapping[str, Mapping[str, Any]], target: str, source: str = "clinical table") -> dict[str, int | None]:
    """The 0/1 target of every patient of a clinical table.

    Args:
        rows: clinical rows keyed by patient id (keys of each row from :func:`column_key`).
        target: a column (``her2``, ``pcr``, ``hr``, ...) or a derived ``<event>_<N>y``.
        source: the table's name, used in messages.

    Returns:
        ``{patient_id: 0, 1 or None}`` (None: missing or censored).

    Raises:
        ValueError: the column does not exist (the columns and derivable targets are
            listed), or a value is not 0/1 (patient, column and value named).

    Example:
        >>> target_values({"P1": {"her2": "1"}, "P2": {"her2": ""}}, "her2")
        {'P1': 1, 'P2': None}
    """
    columns = sorted({k for r in rows.values() for k in r})
    m = DERIVED_TARGET.match(target)
    if m and target not in columns:
        event, years = m.group("event"), int(m.group("years"))
        need = [f"days_to_{event}", "days_to_follow_up"]
        absent = [c for c in need if c not in columns]
        if absent:
            raise ValueError(f"{source}: target {target!r} is derived from columns {need}; missing {absent}.")
        horizon = years * _DAYS_PER_YEAR
        out: dict[str, int | None] = {}
        for pid, r in rows.items():
            ev = _number(r.get(need[0]), f"{source}: patient {pid!r} column {need[0]!r}")
            fu = _number(r.get(need[1]), f"{source}: patient {pid!r} column {need[1]!r}")
            if ev is not None and ev <= horizon:
                out[pid] = 1
            elif fu is not None and fu >= horizon:
                out[pid] = 0
            else:
                out[pid] = None
        return out
    if target not in columns:
        derivable = [f"{e}_<N>y" for e in ("recurrence", "metastasis", "death") if f"days_to_{e}" in columns and "days_to_follow_up" in columns]
        raise ValueError(f"{source}: no column {target!r} for the target; columns: {columns}" + (f"; derivable: {derivable}" if derivable else "") + ".")
    return {pid: binary_cell(r.get(target), f"{source}: patient {pid!r} column {target!r}") for pid, r in rows.items()}


def apply_target(data: dict[str, Any], target: str, values: Mapping[str, int | None] | None = None) -> list[tuple[str, str]]:
    """Record ``target`` in manifest data and leave out the patients without it (in place).

    Args:
        data: manifest data built by an importer.
        target: the endpoint; ``malignant`` is read from the lesions, any other name from
            ``values`` (or, without ``values``, from each patient's ``labels``).
        values: ``{patient_id: 0/1/None}`` from :func:`target_values` (ids matched
            case-insensitively).

    Returns:
        ``[(patient_id, reason)]`` of the patients left out (target missing).

    Example:
        >>> data = {"dataset": {"name": "x"}, "patients": [{"patient_id": "P1", "labels": {}, "lesions": []}]}
        >>> apply_target(data, "her2", {"p1": None})
        [('P1', "target 'her2' is missing")]
    """
    lowered = None if values is None else {str(k).lower(): v for k, v in values.items()}
    kept, left = [], []
    for p in data["patients"]:
        if target == "malignant":
            ok = bool(p["lesions"]) and all(les.get("malignant") is not None for les in p["lesions"])
        else:
            v = p.get("labels", {}).get(target) if lowered is None else lowered.get(p["patient_id"].lower())
            if lowered is not None:
                p.setdefault("labels", {})[target] = v
            ok = v is not None
        if ok:
            kept.append(p)
        else:
            left.append((p["patient_id"], f"target {target!r} is missing"))
    data["patients"] = kept
    data["dataset"]["target"] = target
    return left
