"""``python -m flows.<name>``: run a flow from the command line with its parameter model's options.

Each top-level field of the flow's parameter model whose value is a number, a string,
a choice or a list of those is an option (``--chunk-rows 500``, ``--keep id,x1``);
``--config FILE`` reads a YAML or JSON file of the model first, and options override
it. The flow runs against one Prefect API (a local server is started when none is
set). Exit codes as the ``accord`` command's: 0 done, 2 bad input, 1 any other failure.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import types
import typing
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

from pydantic import BaseModel

from accord.config import read_config_file, validated
from accord.errors import InputError

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2
SCALARS = (str, int, float, bool)
T = TypeVar("T")


def _scalar(annotation: Any) -> type | None:
    """The Python type an option of this annotation parses to, or None if it is no option's."""
    if annotation in SCALARS:
        return annotation
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Literal:
        return type(args[0])
    if origin in (typing.Union, types.UnionType):
        found = {_scalar(a) for a in args if a is not type(None)}
        return found.pop() if len(found) == 1 else None
    return None


def _is_list(annotation: Any) -> bool:
    return typing.get_origin(annotation) is list and _scalar(typing.get_args(annotation)[0]) is not None


def parser(model: type[BaseModel], prog: str) -> argparse.ArgumentParser:
    """An argument parser whose options are `model`'s scalar and list fields, plus ``--config``."""
    p = argparse.ArgumentParser(prog=prog, description=model.__doc__, argument_default=argparse.SUPPRESS)
    p.add_argument(
        "--config", metavar="FILE", help=f"YAML or JSON file of {model.__name__}; options override it."
    )
    for name, field in model.model_fields.items():
        flag = "--" + name.replace("_", "-")
        if _is_list(field.annotation):
            p.add_argument(flag, dest=name, metavar="A,B", help=f"{field.description} (comma-separated)")
        elif (kind := _scalar(field.annotation)) is bool:
            p.add_argument(
                flag, dest=name, type=lambda v: v.lower() in ("1", "true", "yes"), help=field.description
            )
        elif kind is not None:
            p.add_argument(flag, dest=name, type=kind, metavar=name.upper(), help=field.description)
    return p


def parse(model: type[BaseModel], argv: list[str], prog: str) -> BaseModel:
    """The flow's parameter model from `argv`: the config file's values, overridden by the options.

    Raises:
        ConfigError: the file cannot be read, or a value does not validate (each bad field named).
    """
    given = vars(parser(model, prog).parse_args(argv))
    values = read_config_file(given.pop("config")) if "config" in given else {}
    for name, value in given.items():
        values[name] = (
            [v.strip() for v in value.split(",") if v.strip()]
            if isinstance(value, str) and _is_list(model.model_fields[name].annotation)
            else value
        )
    return validated(model, values)


def with_prefect_api(call: Callable[[], T]) -> T:
    """Return ``call()`` run against one Prefect API (`runtime.warm.prefect_api`).

    Call it before importing the flow where possible: Prefect reads its settings when imported.
    """
    from runtime.server import drain_prefect_clients
    from runtime.warm import prefect_api

    with prefect_api() as url:
        from prefect.settings import PREFECT_API_URL, temporary_settings

        with temporary_settings({PREFECT_API_URL: url}):
            try:
                return call()
            finally:
                drain_prefect_clients()


def exit_frozen(code: int) -> NoReturn:
    """Exit with `code` once everything held is frozen out of the cyclic garbage collector.

    A run leaves Prefect, Dask, scikit-learn and pandas loaded; without the freeze the
    interpreter's last collections walk all their objects before the process ends. Exit
    handlers still run.
    """
    gc.freeze()
    sys.exit(code)


def run_from_command_line(flow: Callable[[Any], Any], model: type[BaseModel], argv: list[str]) -> NoReturn:
    """Run `flow` on the parameter model `argv` gives, print its result as JSON, and exit.

    Bad input prints one line, ``accord: error: ...``, and exits 2 before any work.
    """
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)  # run as python -m flows.<name>
    prog = f"python -m {spec.name if spec else getattr(flow, 'fn', flow).__module__}"
    try:
        config = parse(model, argv, prog)
        result = with_prefect_api(lambda: flow(config))
    except InputError as e:
        print(f"accord: error: {e}", file=sys.stderr)
        exit_frozen(EXIT_BAD_INPUT)
    except Exception as e:
        print(f"accord: failed: {type(e).__name__}: {e}", file=sys.stderr)
        exit_frozen(EXIT_FAILED)
    print(json.dumps(result, default=str))
    exit_frozen(EXIT_OK)
