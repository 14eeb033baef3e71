from __future__ import annotations

import pytest

from dce_monai.cli import COMMANDS, build_parser, main


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_help_for_every_subcommand(command, capsys):
    with pytest.raises(SystemExit) as e:
        main([command, "--help"])
    assert e.value.code == 0
    assert COMMANDS[command][1].split()[0] in capsys.readouterr().out


def test_top_level_help_lists_commands():
    text = build_parser().format_help()
    for name in COMMANDS:
        assert name in text


def test_phantom_then_validate_then_folds(tmp_path, capsys):
    assert main(["phantom", "--out", str(tmp_path / "c"), "--patients", "6", "--seed", "2"]) == 0
    manifest = tmp_path / "c" / "manifest.json"
    assert "manifest:" in capsys.readouterr().out
    assert main(["validate", str(manifest)]) == 0
    assert "6 valid, 0 invalid" in capsys.readouterr().out
    rc = main(["folds", str(manifest), "--k", "6", "--out", str(tmp_path / "f.json")])
    assert rc == 2 and "cannot stratify into k=6 folds" in capsys.readouterr().err
    # 3 of the 6 patients recur: two stratified folds are possible
    assert main(["folds", str(manifest), "--k", "2", "--label", "recurrence_event", "--out", str(tmp_path / "f.json")]) == 0
    from dce_monai.data.folds import read_folds

    assert sorted(sum(read_folds(tmp_path / "f.json"), [])) == [f"PH{i:04d}" for i in range(6)]
    # a benign-only patient has no HER2 status: named, not silently dropped
    assert main(["folds", str(manifest), "--k", "2", "--label", "her2", "--out", str(tmp_path / "g.json")]) == 2
    assert "patient 'PH0001': label 'her2' is missing" in capsys.readouterr().err


def test_user_error_is_a_message_not_a_traceback(tmp_path, capsys):
    assert main(["validate", str(tmp_path / "missing.json")]) == 2
    assert "manifest not found" in capsys.readouterr().err


def test_global_threads_option(monkeypatch, capsys):
    import torch

    from dce_monai.workflows import threads as th

    seen = {}
    monkeypatch.setattr(th, "set_process_threads", lambda n: seen.setdefault("threads", n))
    before = torch.get_num_threads()
    assert main(["--threads", "1", "validate", "no_such_manifest.csv"]) == 2
    assert seen == {"threads": 1}
    monkeypatch.undo()
    assert main(["--threads", "0", "validate", "no_such_manifest.csv"]) == 2
    assert "threads must be an integer >= 1, got 0" in capsys.readouterr().err
    assert torch.get_num_threads() == before


def test_data_layer_holds_no_command_line_code():
    """Parsers live in dce_monai.cli; the data modules only do the work."""
    import ast
    from pathlib import Path

    import dce_monai

    data = Path(dce_monai.__file__).parent / "data"
    found = []
    for path in sorted(data.rglob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import) and any(a.name == "argparse" for a in node.names):
                found.append(f"{path.relative_to(data)}:{node.lineno} imports argparse")
            elif isinstance(node, ast.FunctionDef) and node.name in ("add_cli_arguments", "cli_main", "main"):
                found.append(f"{path.relative_to(data)}:{node.lineno} defines {node.name}")
    assert found == []


@pytest.mark.parametrize("command", ["phantom", "validate", "ingest", "import", "folds"])
def test_data_commands_are_modules_of_the_cli_package(command):
    import importlib

    module = COMMANDS[command][0]
    assert module.startswith("dce_monai.cli.")
    mod = importlib.import_module(module)
    assert callable(mod.add_cli_arguments) and callable(mod.cli_main)
