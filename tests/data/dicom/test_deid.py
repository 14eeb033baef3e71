"""Tests of dce_monai.data.dicom.deid: pseudonyms, the secret file, the private mapping CSV, and
that no identifier reaches the ingest's output or log. Series are written with pydicom (``conftest.py``)."""

from __future__ import annotations

import gzip
import logging
import os
from pathlib import Path

import pydicom
import pytest

from dce_monai.data.dicom import ingest_dicom, pseudonymize, read_secret_file
from dce_monai.data.manifest import load_manifest
from tests.data.dicom.conftest import AXIAL, PHI, dce_exam


def _all_output_bytes(folder: Path) -> bytes:
    out = b""
    for p in folder.rglob("*"):
        if p.is_file():
            b = p.read_bytes()
            out += gzip.decompress(b) if p.suffix == ".gz" else b
    return out


def test_deidentification_and_mapping(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    src = tmp_path / "dicom"
    src.mkdir()
    dce_exam(src, AXIAL, 1)
    uids = {str(pydicom.dcmread(str(p), stop_before_pixels=True).get(k)) for p in src.iterdir() for k in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")}
    out = tmp_path / "out"
    with caplog.at_level(logging.DEBUG, logger="dce_monai"):
        man = ingest_dicom(src, out, salt="s3cret")
    blob = _all_output_bytes(out) + caplog.text.encode()
    for v in [*PHI.values(), *uids, "Doe", "19630517"]:
        assert v.encode() not in blob, v
    (p,) = load_manifest(man).patients
    expected = pseudonymize([PHI["PatientID"]], salt="s3cret")[PHI["PatientID"]]
    assert p["patient_id"] == expected and expected.startswith("H") and len(expected) == 13
    assert not list(tmp_path.glob("*.csv"))
    mapping = tmp_path / "private" / "map.csv"
    ingest_dicom(src, tmp_path / "out2", id_prefix="Q", mapping=mapping)
    assert mapping.read_text().splitlines() == ["original_patient_id,pseudonym", f"{PHI['PatientID']},Q0001"]
    assert PHI["PatientID"].encode() not in _all_output_bytes(tmp_path / "out2")


def test_pseudonymize_numbering_and_errors() -> None:
    ids = pseudonymize(["b", "a", "c", "a"], id_prefix="X_")
    assert sorted(ids.values()) == ["X_0001", "X_0002", "X_0003"]
    assert pseudonymize(["a"], salt="k") != pseudonymize(["a"], salt="j")
    with pytest.raises(ValueError, match=r"id_prefix must start with a letter or digit .* got '-bad'"):
        pseudonymize(["a"], id_prefix="-bad")
    with pytest.raises(ValueError, match=r"salt must be a non-empty string, got ''"):
        pseudonymize(["a"], salt="")


def test_pseudonyms_cannot_be_rebuilt_from_the_ids() -> None:
    """Without a secret the numbering is a fresh random permutation: neither the sorted ids
    nor their SHA-256 order (the former scheme) predicts it."""
    import hashlib
    import hmac

    mrns = [f"MRN{i:06d}" for i in range(30)]
    a, b = pseudonymize(mrns, id_prefix="X"), pseudonymize(mrns, id_prefix="X")
    assert sorted(a.values()) == [f"X{i:04d}" for i in range(1, 31)]
    assert a != b  # two runs: two permutations (equal with probability 1/30!)
    by_sha = sorted(mrns, key=lambda k: hashlib.sha256(k.encode()).hexdigest())
    assert [a[k] for k in by_sha] != sorted(a.values()) and [a[k] for k in mrns] != sorted(a.values())
    keyed = pseudonymize(mrns, salt="k3y")
    assert keyed == pseudonymize(mrns, salt="k3y")
    assert keyed["MRN000007"] == "H" + hmac.new(b"k3y", b"MRN000007", hashlib.sha256).hexdigest()[:12]
    assert keyed["MRN000007"] != "H" + hashlib.sha256(b"MRN000007").hexdigest()[:12]


def test_mapping_written_owner_only(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    src = tmp_path / "dicom"
    src.mkdir()
    dce_exam(src, AXIAL, 1, t2=False)
    mapping = tmp_path / "private" / "map.csv"
    mapping.parent.mkdir()
    mapping.write_text("old\n")
    os.chmod(mapping, 0o644)
    ingest_dicom(src, tmp_path / "out", id_prefix="Q", mapping=mapping)
    assert oct(mapping.stat().st_mode & 0o777) == "0o600"
    assert mapping.read_text().splitlines() == ["original_patient_id,pseudonym", f"{PHI['PatientID']},Q0001"]
    assert [p.name for p in mapping.parent.iterdir()] == ["map.csv"]  # no temporary left behind
    with caplog.at_level(logging.WARNING):
        ingest_dicom(src, tmp_path / "out2")
    assert "no --mapping was written: the link back to the original patients is kept nowhere" in caplog.text


def test_secret_file(tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    from dce_monai.cli import main

    src = tmp_path / "dicom"
    src.mkdir()
    dce_exam(src, AXIAL, 1, t2=False)
    secret = tmp_path / "secret"
    secret.write_text("  0123456789abcdef\n")
    os.chmod(secret, 0o600)
    assert read_secret_file(secret) == "0123456789abcdef"
    assert main(["ingest", str(src), str(tmp_path / "out"), "--secret-file", str(secret)]) == 0
    pid = pseudonymize([PHI["PatientID"]], salt="0123456789abcdef")[PHI["PatientID"]]
    assert f"{pid}: T1post1, T1pre" in capsys.readouterr().out
    os.chmod(secret, 0o644)
    with caplog.at_level(logging.WARNING):
        read_secret_file(secret)
    assert "can be read by other users (mode 0644); chmod 600 it" in caplog.text
    empty = tmp_path / "empty"
    empty.write_text("\n \n")
    with pytest.raises(ValueError, match=r"secret file .*empty is empty; put one line of random text in it"):
        read_secret_file(empty)
    with pytest.raises(FileNotFoundError, match=r"secret file not found: .*nope"):
        read_secret_file(tmp_path / "nope")
    assert main(["ingest", str(src), str(tmp_path / "out"), "--secret-file", str(secret), "--salt", "x"]) == 2
    assert "give the pseudonym secret once: --secret-file or --salt, not both." in capsys.readouterr().err
