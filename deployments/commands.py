"""The warm stack's command server: each ``accord`` command forked from a process that imported everything.

An ``accord`` command pays about 3 s before any work when it starts cold: importing
Prefect, scikit-learn, pandas and skops, and the command line itself. Under a warm stack
(`runtime.stack`) this server has imported them once; the console script (`deployments.thin`)
connects to its Unix socket and sends its arguments, working directory and environment,
with its standard input, output and error as file descriptors. The server forks; the child
takes those descriptors, that directory and that environment, rereads Prefect's settings,
runs `deployments.cli.main` and sends back its exit code.

Protocol, over ``$ACCORD_HOME/commands.sock`` (mode 0600; a peer of another user is refused):

- the client sends 8 bytes (the request's length, big-endian) with its descriptors 0, 1 and 2
  attached, then the request: JSON ``{"argv", "cwd", "env", "encoding"}``; a length of 0 is
  a ping, answered ``{"pong": pid}`` without forking;
- the child answers lines of JSON: ``{"pid": N}`` once it runs (the client forwards its
  signals to N), then ``{"exit": code}``.

    python -m deployments.commands --socket PATH   # started by `accord server start`
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import gc
import importlib
import io
import json
import os
import signal
import socket
import struct
import sys
import traceback
from pathlib import Path
from typing import Any, NoReturn

from runtime.warm import REQUEST_HEADER as HEADER

MAX_REQUEST = 16 * 1024 * 1024

PRELOAD = (
    "deployments.cli",
    "flows.train",
    "flows.predict",
    "flows.pretrain",
    "tasks.members",
    "tasks.ensemble",
    "tasks.importance",
    "accord.members",
    "accord.training.prepare",
    "accord.ensembling.evaluation",
    "accord.registry.publishing",
    "accord.reports.figures",
    "accord.data.output",
    "runtime.runner",
    "prefect.flow_engine",
    "prefect.task_engine",
    "prefect_dask",
    "fastapi.encoders",
    "distributed",
    "sklearn.linear_model",
    "sklearn.ensemble",
    "sklearn.neighbors",
    "sklearn.model_selection",
    "sklearn.inspection",
    "pandas",
    "pyarrow.parquet",
    "skops.io",
    "xgboost",
    "matplotlib.pyplot",
)
"""What a command imports on its way: all of it once, here, before any fork. TensorFlow is left
out: the flow process does not train Keras members, and a command that loads one imports it."""


def preload() -> list[str]:
    """Import `PRELOAD`; return those that failed, with their errors (a command imports them again)."""
    os.environ.setdefault("MPLBACKEND", "Agg")
    failed = []
    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except Exception as e:  # a command that needs it reports the error itself
            failed.append(f"{name}: {type(e).__name__}: {e}")
    gc.collect()
    gc.freeze()  # the children share these pages; the collector never writes to them
    return failed


def listen(path: Path) -> socket.socket:
    """A Unix socket at `path` that only this user can connect to (an old socket there is replaced)."""
    path.unlink(missing_ok=True)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        server.bind(str(path))
    finally:
        os.umask(old)
    server.listen(64)
    return server


def _peer_uid(conn: socket.socket) -> int:
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return int(struct.unpack("3i", creds)[1])


def serve(path: Path) -> NoReturn:
    """Preload, listen at `path`, and fork a child per command until terminated."""
    failed = preload()
    for line in failed:
        print(f"accord command server: preload failed: {line}", file=sys.stderr, flush=True)
    server = listen(path)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped as they end
    print(f"accord command server ready at {path} (pid {os.getpid()})", flush=True)
    while True:
        conn, _ = server.accept()
        try:
            if _peer_uid(conn) != os.getuid():
                continue
            length, fds = _receive_header(conn)
            try:
                if length == 0:
                    conn.sendall(json.dumps({"pong": os.getpid()}).encode() + b"\n")
                elif len(fds) == 3 and length <= MAX_REQUEST and os.fork() == 0:
                    server.close()
                    _child(conn, length, fds)  # never returns: the child exits
            finally:
                for fd in fds:  # the child's copies are its own; a malformed request's are closed too
                    os.close(fd)
        except OSError as e:
            print(f"accord command server: a request failed: {e}", file=sys.stderr, flush=True)
        finally:
            conn.close()


def _receive_header(conn: socket.socket) -> tuple[int, list[int]]:
    data, fds, _, _ = socket.recv_fds(conn, HEADER.size, 3)
    if len(data) != HEADER.size:
        for fd in fds:
            os.close(fd)
        raise OSError(f"a request's header had {len(data)} bytes, not {HEADER.size}")
    return HEADER.unpack(data)[0], list(fds)


def _receive(conn: socket.socket, length: int) -> bytes:
    chunks, got = [], 0
    while got < length:
        chunk = conn.recv(min(1 << 20, length - got))
        if not chunk:
            raise OSError("the client hung up before its whole request arrived")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def _child(conn: socket.socket, length: int, fds: list[int]) -> NoReturn:
    """Run one command as the client would have run it, then exit with its code (never returns)."""
    code = 1
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        request: dict[str, Any] = json.loads(_receive(conn, length))
        conn.sendall(json.dumps({"pid": os.getpid()}).encode() + b"\n")
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        _reopen_streams(request.get("encoding"))
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        sys.argv = ["accord", *request["argv"]]
        import prefect.context

        prefect.context.refresh_global_settings_context()  # read on import, from the server's environment
        from deployments.cli import main

        code = main(list(request["argv"]))
    except KeyboardInterrupt:
        code = 130
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        with contextlib.suppress(BaseException):
            atexit._run_exitfuncs()  # as the interpreter would on the way out (Prefect's log flush)
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        with contextlib.suppress(OSError):
            conn.sendall(json.dumps({"exit": code}).encode() + b"\n")
        os._exit(code)


def _reopen_streams(encoding: str | None) -> None:
    """Point ``sys.stdout`` and ``sys.stderr`` at descriptors 1 and 2 (now the client's), buffered as there.

    The server's own streams wrote to its log; objects that kept them (logging handlers made
    on import) write to the same descriptors, so they are emptied and line-buffered first.
    """
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
            if isinstance(stream, io.TextIOWrapper):
                stream.reconfigure(line_buffering=True)
    for fd, name in ((1, "stdout"), (2, "stderr")):
        tty = os.isatty(fd)
        wrapper = open(  # noqa: SIM115 - the process's own stream, open until it exits
            fd,
            "w",
            encoding=encoding or "utf-8",
            errors="backslashreplace",
            closefd=False,
            buffering=1 if tty or name == "stderr" else -1,
        )
        setattr(sys, name, wrapper)
        setattr(sys, f"__{name}__", wrapper)


def main(argv: list[str] | None = None) -> NoReturn:
    """``python -m deployments.commands --socket PATH``."""
    p = argparse.ArgumentParser(prog="python -m deployments.commands")
    p.add_argument("--socket", type=Path, required=True)
    serve(p.parse_args(argv).socket)


if __name__ == "__main__":
    main()
