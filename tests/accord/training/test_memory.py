"""A fit's freed memory goes back to the operating system when the fit ends (accord.training.memory)."""

from __future__ import annotations

import sys

import pytest

from accord.config import make_config
from accord.training.fit import fit_fold, fit_full
from accord.training.memory import release_free_memory
from accord.training.prepare import prepare
from tests.support.heap import free_kept, leave_freed_memory, resident_mib

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim: Linux")

FREED_MIB = 200


@pytest.fixture
def freed_heap():
    """200 MiB freed but resident in this process's heap, held there by a live block above it."""
    leave_freed_memory(FREED_MIB)
    yield
    free_kept()


def test_releasing_returns_the_freed_heap_to_the_operating_system(freed_heap):
    before = resident_mib()
    assert release_free_memory() is True
    assert before - resident_mib() > FREED_MIB * 0.75


def test_freed_heap_stays_resident_until_released(freed_heap):
    """The premise of the tests here: glibc does not return this memory on its own."""
    before = resident_mib()
    junk = [bytearray(4096) for _ in range(1000)]  # some allocating and freeing, as a fit does
    del junk
    assert before - resident_mib() < FREED_MIB * 0.25


@pytest.mark.parametrize("fit", ["fold", "refit"])
def test_a_member_fit_gives_back_what_was_freed_before_it_ends(freed_heap, fit):
    data = prepare(make_config({"data": "sklearn:iris", "members": [{"kind": "logreg"}], "folds": 3}))
    before = resident_mib()
    if fit == "fold":
        fit_fold(data.members[0], data, 0, 0)
    else:
        fit_full(data.members[0], data, 0)
    assert before - resident_mib() > FREED_MIB * 0.75
