"""Layering of dce_monai: a lower layer never imports a higher one.

The order, from the data flow of the design (files -> data -> transforms -> networks ->
losses -> engines -> bundles/workflows -> outputs; "lower layers never import higher ones:
data and transforms know nothing of networks or bundles; networks know nothing of
engines"), and from the imports of the tree as it is:

====  ==========================  ====================================================
rank  packages                    why there
====  ==========================  ====================================================
base  ``sequences``,              canonical names, warning filters, small helpers:
      ``runtime_warnings``,       anyone may import them; they import only each other
      ``utils``, ``dce_monai``
0     ``data``                    manifests, phantom, DICOM ingest, folds: the start of
                                  the flow
1     ``transforms``, ``metrics`` transforms consume data's datalists; metrics
                                  (aggregation, bootstrap, DeLong) are plain statistics
                                  on arrays, used by handlers and workflows
2     ``networks``                nets know nothing of losses or engines
3     ``losses``                  the CAM-Dice loss takes a network's outputs
4     ``engines``, ``handlers``   ignite glue over networks, losses, transforms, metrics
5     ``workflows``               experiments wiring everything (bundles included)
6     ``cli``                     the ``dce-monai`` entry point over all of the above
====  ==========================  ====================================================

A module may import its own package and any package of a lower rank; two different
packages of the same rank may not import each other (so no cycle can form among them).
Every ``import``/``from ... import`` of ``dce_monai`` counts, wherever it is (inside a
function or an ``if TYPE_CHECKING:`` block too), and so does ``importlib.import_module``
with a literal ``"dce_monai..."`` name. The walk reads the sources with :mod:`ast`;
nothing is imported.
"""

from __future__ import annotations

import ast
from pathlib import Path

import dce_monai

ROOT = Path(dce_monai.__file__).parent

BASE = "base"
RANKS: dict[str, int | str] = {
    "dce_monai": BASE,
    "sequences": BASE,
    "runtime_warnings": BASE,
    "utils": BASE,
    "data": 0,
    "transforms": 1,
    "metrics": 1,
    "networks": 2,
    "losses": 3,
    "engines": 4,
    "handlers": 4,
    "workflows": 5,
    "cli": 6,
}

#: Faults known today and owned elsewhere, as ``(importing module, imported module)`` exactly
#: as the failure message names them, each with a comment saying why it is tolerated, e.g.
#: ``("dce_monai.handlers.x", "dce_monai.metrics.results"),  # moves to metrics with ...``.
#: The test fails when a listed fault is gone, so the list only shrinks: delete the entry in
#: the change that fixes it. Empty: the walk of this tree finds no fault.
KNOWN_FAULTS: set[tuple[str, str]] = set()


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(source: str, module: str, is_package: bool) -> list[tuple[int, str]]:
    """``(line, imported dce_monai module)`` for every import in ``source``, relative ones resolved.

    ``module`` is the dotted name of the file (``is_package`` for an ``__init__.py``).
    """
    return [(line, name) for line, name, _ in _import_statements(source, module, is_package)]


def _import_statements(source: str, module: str, is_package: bool) -> list[tuple[int, str, str]]:
    """:func:`_imports` with the statement's source text as third item."""
    package = module.split(".") if is_package else module.split(".")[:-1]
    found: list[tuple[int, str, ast.AST]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name, node) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            found.append((node.lineno, name, node))
            if name == "dce_monai":  # ``from dce_monai import workflows``: the names are the packages
                found += [(node.lineno, f"{name}.{a.name}", node) for a in node.names if a.name != "*"]
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.append((node.lineno, node.args[0].value, node))
    out = {
        (line, name, " ".join((ast.get_source_segment(source, node) or "").split()))
        for line, name, node in found
        if name == "dce_monai" or name.startswith("dce_monai.")
    }
    return sorted(out)


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "dce_monai"


def _allowed(importer: str, imported: str) -> bool:
    a, b = _package(importer), _package(imported)
    if a == b:
        return True
    ra, rb = RANKS[a], RANKS[b]
    if rb == BASE:
        return True
    if ra == BASE:
        return False
    return rb < ra  # type: ignore[operator]


def _faults(files: list[tuple[str, str, bool]]) -> dict[tuple[str, str], list[str]]:
    """``{(importer, imported): ["file:line: message", ...]}`` over ``(relative path, source, is_package)``."""
    faults: dict[tuple[str, str], list[str]] = {}
    for rel, source, is_package in files:
        importer = ".".join(Path(rel).with_suffix("").parts[: -1 if is_package else None])
        for line, imported, statement in _import_statements(source, importer, is_package):
            if _package(imported) not in RANKS:  # an unknown top-level name: test_every_package_has_a_rank
                continue
            if not _allowed(importer, imported):
                a, b = _package(importer), _package(imported)
                faults.setdefault((importer, imported), []).append(
                    f"{rel}:{line}: {importer} ({a}, rank {RANKS[a]}) imports {imported} ({b}, rank {RANKS[b]}): {statement}"
                )
    return faults


def _tree() -> list[tuple[str, str, bool]]:
    return [
        (str(p.relative_to(ROOT.parent)), p.read_text(), p.name == "__init__.py") for p in sorted(ROOT.rglob("*.py"))
    ]


def test_every_package_has_a_rank() -> None:
    packages = {p.name for p in ROOT.iterdir() if (p / "__init__.py").is_file()}
    modules = {p.stem for p in ROOT.glob("*.py") if p.name != "__init__.py"}
    unranked = sorted((packages | modules) - set(RANKS))
    assert unranked == [], f"give these a rank in RANKS (and the docstring table): {unranked}"


def test_no_lower_layer_imports_a_higher_one() -> None:
    faults = _faults(_tree())
    new = [msg for key, msgs in sorted(faults.items()) if key not in KNOWN_FAULTS for msg in msgs]
    assert new == [], "a lower layer imports a higher one (order: tests/test_layers.py docstring):\n" + "\n".join(new)


def test_known_faults_are_still_there() -> None:
    fixed = sorted(KNOWN_FAULTS - set(_faults(_tree())))
    assert fixed == [], f"these KNOWN_FAULTS are fixed: delete them from the list: {fixed}"


def test_the_walk_finds_relative_function_level_and_importlib_imports() -> None:
    """The checker itself: a fault hidden in each kind of import is found, with its file and line."""
    probe = (
        "import importlib\n"
        "from . import manifest\n"
        "def f():\n"
        "    from ..networks import nets\n"
        "    return importlib.import_module('dce_monai.workflows.report')\n"
    )
    found = _imports(probe, "dce_monai.data.probe", is_package=False)
    assert (2, "dce_monai.data") in found and (4, "dce_monai.networks") in found
    assert (5, "dce_monai.workflows.report") in found
    faults = _faults([("dce_monai/data/probe.py", probe, False)])
    assert set(faults) == {("dce_monai.data.probe", "dce_monai.networks"), ("dce_monai.data.probe", "dce_monai.workflows.report")}
    assert faults["dce_monai.data.probe", "dce_monai.networks"] == [
        "dce_monai/data/probe.py:4: dce_monai.data.probe (data, rank 0) imports dce_monai.networks (networks, rank 2): "
        "from ..networks import nets"
    ]
    # a package's relative import resolves from the package itself; ``from dce_monai import x`` names packages
    assert _imports("from .cohort import x\n", "dce_monai.data.phantom", is_package=True) == [(1, "dce_monai.data.phantom.cohort")]
    assert _imports("from dce_monai import workflows\n", "dce_monai.data.m", is_package=False) == [
        (1, "dce_monai"), (1, "dce_monai.workflows")
    ]


def test_rules() -> None:
    assert _allowed("dce_monai.handlers.lesion_auc", "dce_monai.metrics.stats")
    assert _allowed("dce_monai.data.phantom.cohort", "dce_monai.sequences")
    assert not _allowed("dce_monai.sequences", "dce_monai.data.manifest")  # base modules stay at the bottom
    assert not _allowed("dce_monai.engines.x", "dce_monai.handlers.y")  # same rank, different packages
    assert not _allowed("dce_monai.data.dicom", "dce_monai.transforms.spatial")  # no back-flow
