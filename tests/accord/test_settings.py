"""accord's environment variables: defaults, blanks, and bad values refused naming the variable."""

from __future__ import annotations

import pytest

from accord.errors import ConfigError
from accord.settings import setting


def test_unset_and_blank_variables_take_their_defaults(monkeypatch):
    for name in ("ACCORD_STORE", "ACCORD_CACHE_DAYS", "ACCORD_THREADS_PER_TASK", "ACCORD_DASK_ADDRESS"):
        monkeypatch.delenv(name, raising=False)
    names = ("store", "cache_days", "threads_per_task", "dask_address")
    assert [setting(n) for n in names] == [None, 7.0, 1, None]
    monkeypatch.setenv("ACCORD_CACHE_DAYS", " ")
    monkeypatch.setenv("ACCORD_STORE", "")
    assert (setting("cache_days"), setting("store")) == (7.0, None)


def test_values_are_read_when_asked(monkeypatch):
    monkeypatch.setenv("ACCORD_CACHE_DAYS", "0.5")
    monkeypatch.setenv("ACCORD_THREADS_PER_TASK", "2")
    monkeypatch.setenv("ACCORD_DASK_ADDRESS", "tcp://10.0.0.1:8786")
    assert [setting(n) for n in ("cache_days", "threads_per_task", "dask_address")] == [
        0.5,
        2,
        "tcp://10.0.0.1:8786",
    ]


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("ACCORD_CACHE_DAYS", "a week", "a number of days >= 0"),
        ("ACCORD_CACHE_DAYS", "-1", "a number of days >= 0"),
        ("ACCORD_CACHE_DAYS", "nan", "a number of days >= 0"),
        ("ACCORD_THREADS_PER_TASK", "0", "a whole number >= 1"),
        ("ACCORD_THREADS_PER_TASK", "two", "a whole number >= 1"),
    ],
)
def test_a_bad_value_names_the_variable_what_it_must_be_and_what_it_holds(monkeypatch, name, value, expected):
    monkeypatch.setenv(name, value)
    field = name.removeprefix("ACCORD_").lower()
    with pytest.raises(ConfigError, match=rf"^{name} must be {expected} .*; found {value!r}\. Set it"):
        setting(field)
    monkeypatch.setenv("ACCORD_STORE", "memory://elsewhere")
    assert setting("store") == "memory://elsewhere"  # one bad variable does not stop another's reading
