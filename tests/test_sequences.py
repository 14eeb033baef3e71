from __future__ import annotations

import pytest

from dce_monai.sequences import (
    SEQUENCES,
    is_post,
    post_index,
    post_name,
    sort_sequences,
    triplets,
    validate_sequence_names,
)


def test_canonical_order():
    assert SEQUENCES == ("T2", "T1pre", "T1post1", "T1post2", "T1post3", "T1post4", "sub")


def test_35_triplets_stable_and_distinct():
    t = list(triplets())
    assert len(t) == 35 == len(set(t))
    assert t[0] == ("T2", "T1pre", "T1post1")
    assert t[-1] == ("T1post3", "T1post4", "sub")
    assert ("T1pre", "T1post3", "sub") in t  # seed 1's best triplet
    assert list(triplets(reversed(SEQUENCES))) == t  # order of the input does not matter


@pytest.mark.parametrize("k", [1, 4, 7, 12])
def test_post_names_round_trip(k):
    assert post_index(post_name(k)) == k and is_post(post_name(k))


def test_sort_handles_many_post_phases():
    assert sort_sequences(["sub", "T1post10", "T1post2", "T1pre", "T2"]) == [
        "T2", "T1pre", "T1post2", "T1post10", "sub",
    ]


@pytest.mark.parametrize(
    "names, match",
    [
        (["T1pre", "DWI"], r"unknown sequence name 'DWI'"),
        (["T1pre", "T1post0"], r"unknown sequence name 'T1post0'"),
        (["T1pre", "T1pre"], r"must be unique, got repeated \['T1pre'\]"),
        ("T1pre", r"single string 'T1pre'"),
    ],
)
def test_validate_errors(names, match):
    with pytest.raises(ValueError, match=match):
        validate_sequence_names(names)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_post_name_errors(bad):
    with pytest.raises(ValueError, match="post-contrast phase index must be an integer >= 1"):
        post_name(bad)


def test_triplets_need_three():
    with pytest.raises(ValueError, match="triplets need at least 3 channels"):
        list(triplets(["T1pre", "sub"]))
