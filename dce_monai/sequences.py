"""Canonical DCE-MRI sequence names, their channel order, and the 35 channel triplets.

Every layer of dce_monai names image channels with these strings. Data dictionaries use
them as keys, multi-channel tensors follow :data:`SEQUENCES` order unless a transform says
otherwise, and the names chosen travel in a MetaTensor's meta under
:data:`CHANNEL_NAMES_KEY`.

Reference:
    Haarburger C, Langenberg P, Truhn D, et al. "Transfer learning for breast cancer malignancy
    classification based on dynamic contrast-enhanced MR images", Bildverarbeitung fuer die
    Medizin 2018 (seed 1): the seven channels
    T2, T1pre, T1post1..4 and sub = T1post1 - T1pre, and the 35 = C(7, 3) triplets.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator, Sequence

__all__ = [
    "CHANNEL_NAMES_KEY",
    "PRE",
    "SEQUENCES",
    "SUB",
    "T2",
    "is_post",
    "post_index",
    "post_name",
    "sort_sequences",
    "source_sequences",
    "triplets",
    "validate_sequence_names",
]

T2 = "T2"
PRE = "T1pre"
SUB = "sub"
#: The seven channels of seed 1, in canonical order.
SEQUENCES: tuple[str, ...] = (T2, PRE, "T1post1", "T1post2", "T1post3", "T1post4", SUB)
#: Meta-dictionary key under which a MetaTensor records the names of its channels.
CHANNEL_NAMES_KEY = "channel_names"

_POST_RE = re.compile(r"^T1post([1-9][0-9]*)$")


def post_name(index: int) -> str:
    """Return the canonical name of post-contrast phase ``index`` (1-based), e.g. ``T1post3``.

    Raises:
        ValueError: if ``index`` is not a positive integer.
    """
    if isinstance(index, bool) or not isinstance(index, int) or index < 1:
        raise ValueError(f"post-contrast phase index must be an integer >= 1, got {index!r}.")
    return f"T1post{index}"


def post_index(name: str) -> int | None:
    """Return the 1-based phase index of a post-contrast name (``T1post3`` -> 3), else None."""
    m = _POST_RE.match(name)
    return int(m.group(1)) if m else None


def is_post(name: str) -> bool:
    """True for ``T1post<k>`` names (any k >= 1; real protocols have 2-7 post phases)."""
    return post_index(name) is not None


def _rank(name: str) -> tuple[int, int]:
    if name == T2:
        return (0, 0)
    if name == PRE:
        return (1, 0)
    k = post_index(name)
    if k is not None:
        return (2, k)
    if name == SUB:
        return (3, 0)
    raise ValueError(
        f"unknown sequence name {name!r}; expected one of T2, T1pre, T1post<k> (k >= 1) or sub."
    )


def validate_sequence_names(names: Sequence[str], what: str = "sequence names") -> tuple[str, ...]:
    """Check that ``names`` are canonical and unique; return them as a tuple.

    Raises:
        ValueError: naming ``what`` and the offending value, for an unknown or repeated name.
    """
    if isinstance(names, str):
        raise ValueError(f"{what} must be a sequence of names, got the single string {names!r}.")
    out = tuple(names)
    for n in out:
        try:
            _rank(n)
        except ValueError as e:
            raise ValueError(f"{what}: {e}") from None
    dup = sorted({n for n in out if out.count(n) > 1})
    if dup:
        raise ValueError(f"{what} must be unique, got repeated {dup} in {list(out)}.")
    return out


def sort_sequences(names: Sequence[str]) -> list[str]:
    """Sort names into canonical order: T2, T1pre, T1post1..k (numerically), sub."""
    return sorted(validate_sequence_names(names), key=_rank)


def source_sequences(channels: Sequence[str]) -> list[str]:
    """Sequences to read from files to build ``channels``.

    The channels without ``sub``, plus ``T1pre`` (the intensity reference of every T1
    channel) and ``T1post1`` (``sub = T1post1 - T1pre``) where needed.

    Example:
        >>> source_sequences(["T1pre", "T1post3", "sub"])
        ['T1pre', 'T1post3', 'T1post1']
    """
    names = validate_sequence_names(channels, "channels")
    need = [s for s in names if s != SUB]
    extra = ([PRE] if any(s != T2 for s in names) else []) + ([post_name(1)] if SUB in names else [])
    for s in extra:
        if s not in need:
            need.append(s)
    return need


def triplets(channels: Sequence[str] = SEQUENCES) -> Iterator[tuple[str, str, str]]:
    """Yield every 3-channel combination of ``channels`` in a stable order.

    The order is ``itertools.combinations`` over the channels sorted canonically, so for
    the default seven channels it yields the 35 triplets of seed 1, starting with
    ``("T2", "T1pre", "T1post1")`` and ending with ``("T1post3", "T1post4", "sub")``.

    Example:
        >>> len(list(triplets()))
        35
    """
    ordered = sort_sequences(channels)
    if len(ordered) < 3:
        raise ValueError(f"triplets need at least 3 channels, got {ordered}.")
    yield from itertools.combinations(ordered, 3)
