"""The ``accord`` console script: hand the command to the warm stack's command server, or run it here.

Under a warm stack whose command server (`deployments.commands`) runs the same Python,
accord version, source files and import-time environment, the command runs there, in a
process forked from one that imported everything already, with this process's arguments,
directory, environment, standard streams and signals; this process only waits for its
exit code. Anything else (no stack, another code, ``accord server ...``, ``accord serve``,
or ``ACCORD_LOCAL_COMMANDS=1``) runs the command line here, as before.

Why: importing Prefect, scikit-learn, pandas and skops costs a command about 2 s before any
work, every time; a warm stack pays it once. This module imports nothing heavy.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sys
from pathlib import Path
from typing import NoReturn

from runtime.warm import (
    REQUEST_HEADER,
    Stack,
    code_fingerprint,
    imports_env_fingerprint,
    process_alive,
    read_state,
)

LOCAL_ENV = "ACCORD_LOCAL_COMMANDS"
"""Set to 1 to run every command in its own process, even under a warm stack."""
LOCAL_COMMANDS = frozenset({"server", "serve"})
"""Commands that run here: they manage the stack, or run for as long as it does."""
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
CONNECT_TIMEOUT_S = 2.0


def _command_name(argv: list[str]) -> str | None:
    return next((a for a in argv if not a.startswith("-")), None)


def command_server(argv: list[str]) -> Stack | None:
    """The warm stack whose command server would run `argv` as this process would, or None."""
    if os.environ.get(LOCAL_ENV) == "1" or _command_name(argv) in LOCAL_COMMANDS:
        return None
    stack = read_state()
    if stack is None or not stack.commands or not Path(stack.commands).exists():
        return None
    if stack.python != sys.prefix or stack.imports_env != imports_env_fingerprint(os.environ):
        return None
    from accord.version import __version__

    if stack.version != __version__ or stack.code != code_fingerprint() or not process_alive(stack.pid):
        return None
    return stack


def _encode(argv: list[str]) -> bytes:
    return json.dumps(
        {
            "argv": argv,
            "cwd": os.getcwd(),
            "env": dict(os.environ),
            "encoding": getattr(sys.stdout, "encoding", None),
        }
    ).encode()


def delegate(argv: list[str], stack: Stack) -> int | None:
    """Run `argv` on `stack`'s command server; its exit code, or None where it never started there.

    Once the command runs there, this process forwards SIGINT, SIGTERM, SIGHUP and SIGQUIT
    to it and returns its exit code (1, with a line on standard error, if its process ended
    without sending one).
    """
    request = _encode(argv)
    try:
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.settimeout(CONNECT_TIMEOUT_S)
        conn.connect(stack.commands)
        socket.send_fds(conn, [REQUEST_HEADER.pack(len(request))], [0, 1, 2])
        conn.sendall(request)
        conn.settimeout(None)
        lines = conn.makefile("rb")
        first = lines.readline()
    except OSError:
        return None
    if not first:
        return None  # refused before it forked: nothing ran
    started = json.loads(first)
    if "pid" not in started:  # it ended before it ran the command line
        return int(started.get("exit", 1))
    pid = int(started["pid"])
    for signum in FORWARDED:
        signal.signal(signum, lambda s, _f: _forward(pid, s))
    for line in lines:
        with contextlib.suppress(ValueError, TypeError, KeyError):
            return int(json.loads(line)["exit"])
    print(
        f"accord: the command's process ({pid}) on the warm stack ended without an exit code", file=sys.stderr
    )
    return 1


def _forward(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


def console() -> NoReturn:
    """The ``accord`` console script."""
    argv = sys.argv[1:]
    stack = command_server(argv)
    code = delegate(argv, stack) if stack is not None else None
    if code is None:
        from deployments.cli import console as here

        here(argv)
    sys.stdout.flush()
    os._exit(code)
