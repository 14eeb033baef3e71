from __future__ import annotations

import argparse
import json

import jsonschema
import nibabel as nib
import pytest

from dce_monai.cli.phantom import add_cli_arguments, cli_main
from dce_monai.data.manifest import schema


def test_generate_cohort_with_reference_csv_and_cli(tmp_path, capsys, reference_csv):
    ref = reference_csv
    parser = argparse.ArgumentParser()
    add_cli_arguments(parser)
    args = parser.parse_args(
        ["--out", str(tmp_path / "c"), "--patients", "2", "--size", "tiny", "--n-post", "2", "--reference-csv", str(ref)]
    )
    assert cli_main(args) == 0
    path = tmp_path / "c" / "manifest.json"
    assert f"manifest: {path}" in capsys.readouterr().out
    data = json.loads(path.read_text())
    jsonschema.validate(data, schema())
    gen = data["dataset"]["generator"]
    assert gen["reference_csv"] == str(ref) and gen["config"]["her2_prevalence"] == pytest.approx(0.25)
    assert gen["config"]["reference_quantiles"]["n_xy"] == [64.0] * 7
    exam = data["patients"][0]["exam"]
    assert exam["field_strength_t"] == 3.0 and list(exam["acquisition_times_s"].values()) == [0.0, 90.0, 180.0]
    img = nib.load(str(tmp_path / "c" / exam["sequences"]["T2"]))
    assert img.shape == (64, 64, 16)
