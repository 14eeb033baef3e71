"""De-identification: pseudonyms that cannot be rebuilt without a secret, and the private mapping file.

Patient ids written anywhere by the ingest are pseudonyms from :func:`pseudonymize`
(random-order numbering, or a keyed HMAC with a secret read by :func:`read_secret_file`);
the original -> pseudonym table is written only on request, readable by its owner only.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import logging
import os
import re
import secrets
import stat
import tempfile
from collections.abc import Sequence
from pathlib import Path

# one logger for the whole package: users and tests filter on "dce_monai.data.dicom"
logger = logging.getLogger("dce_monai.data.dicom")


def pseudonymize(patient_keys: Sequence[str], id_prefix: str = "DCE", salt: str | None = None) -> dict[str, str]:
    """Map original PatientIDs to pseudonyms that cannot be rebuilt without a secret.

    Without ``salt``: ``<id_prefix><NNNN>`` (4 digits, more if needed) numbered in a random
    order drawn from the operating system's secure generator (:mod:`secrets`), so knowing
    every original id does not tell which number is whose; the link exists only in the
    mapping file :func:`ingest_dicom` writes when asked (a second run numbers differently).
    With ``salt`` (a secret key): ``H`` + the first 12 hex digits of
    ``HMAC-SHA256(salt, PatientID)``, stable across runs with the same secret and not
    computable without it.

    Args:
        patient_keys: original PatientIDs.
        id_prefix: prefix of sequential pseudonyms; letters, digits, ``_ . -``, starting with
            a letter or digit.
        salt: secret key for stable keyed pseudonyms (non-empty); keep it out of the data,
            e.g. in a file of mode 0600 (:func:`read_secret_file`).

    Returns:
        ``{original: pseudonym}``.

    Raises:
        ValueError: ``id_prefix`` not a valid id start, or ``salt`` empty.

    Example:
        >>> pseudonymize(["A", "B"], id_prefix="X")["A"] in ("X0001", "X0002")
        True
    """
    if not isinstance(id_prefix, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", id_prefix):
        raise ValueError(f"id_prefix must start with a letter or digit and contain only letters, digits, '_', '.', '-', got {id_prefix!r}.")
    if salt is not None and (not isinstance(salt, str) or not salt):
        raise ValueError(f"salt must be a non-empty string, got {salt!r}.")
    keys = sorted(set(patient_keys))
    if salt is not None:
        out = {k: "H" + hmac.new(salt.encode(), k.encode(), hashlib.sha256).hexdigest()[:12] for k in keys}
        if len(set(out.values())) != len(out):  # pragma: no cover - 48-bit collision
            raise ValueError("keyed pseudonyms collide; use a different secret.")
        return out
    width = max(4, len(str(len(keys))))
    ranked = list(keys)
    secrets.SystemRandom().shuffle(ranked)
    return {k: f"{id_prefix}{i + 1:0{width}d}" for i, k in enumerate(ranked)}


def read_secret_file(path: str | Path) -> str:
    """Read a pseudonym secret from a file (first line, surrounding white space removed).

    A file other users can read is accepted with a warning (``chmod 600`` it): the secret is
    what keeps pseudonyms from being recomputed from a list of MRNs.

    Args:
        path: the secret file.

    Returns:
        The secret.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is empty.

    Example:
        >>> secret = read_secret_file("/secure/dce_monai.secret")  # doctest: +SKIP
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"secret file not found: {p}")
    text = p.read_text(encoding="utf-8", errors="strict").strip()
    secret = text.splitlines()[0].strip() if text else ""
    if not secret:
        raise ValueError(f"secret file {p} is empty; put one line of random text in it (e.g. `openssl rand -hex 32`).")
    mode = stat.S_IMODE(p.stat().st_mode)
    if mode & 0o077:
        logger.warning("secret file %s can be read by other users (mode %04o); chmod 600 it", p, mode)
    return secret


def _write_private_csv(path: Path, rows: list[list[str]]) -> None:
    """Write a CSV readable by its owner only (mode 0600), atomically (temp file + rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)  # created 0600
    try:
        with os.fdopen(fd, "w", newline="") as f:
            csv.writer(f).writerows(rows)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
