"""One source for each shared fact: the Literals in accord.types, member kinds, the name pattern, formats."""

from __future__ import annotations

import re
import typing

import accord.types
from accord.config import SourceKind
from accord.members import KINDS, member_class
from accord.types import MemberKind
from tests.support.imports import modules


def _sources() -> dict[str, str]:
    return {name: path.read_text() for name, path in modules().items()}


def test_every_member_kind_a_config_accepts_has_its_class_and_no_class_is_left_out():
    assert list(typing.get_args(MemberKind)) == list(KINDS)
    for kind in KINDS:
        assert member_class(kind).kind == kind
    assert set(typing.get_args(SourceKind)) <= set(KINDS)


def test_each_shared_literal_is_written_only_in_accord_types():
    literals = {
        name: value
        for name, value in vars(accord.types).items()
        if typing.get_origin(value) is typing.Literal
    }
    assert {
        "Task",
        "TaskChoice",
        "Method",
        "PromotionPolicy",
        "ColumnKind",
        "TableFormat",
        "MemberKind",
    } <= set(literals)
    for name, value in literals.items():
        written = ", ".join(f'"{v}"' for v in typing.get_args(value))
        pattern = re.compile(r"Literal\[\s*" + re.escape(written).replace(r",\ ", r",\s*") + r",?\s*\]")
        where = [m for m, text in _sources().items() if pattern.search(text)]
        assert where == ["accord.types"], (name, where)


def test_the_name_pattern_and_the_compressed_formats_are_written_once():
    sources = _sources()
    assert [m for m, t in sources.items() if "[a-z0-9][a-z0-9._-]{0,63}$" in t] == ["accord.registry.refs"]
    assert [m for m, t in sources.items() if '".csv.gz"' in t] == ["accord.data.tables"]
