"""A warm local stack: one Prefect server and one Dask LocalCluster that outlive a command.

``accord server start`` runs `serve` in a background process of its own session: it starts
a Prefect server (SQLite under ``$ACCORD_HOME/prefect``) and accord's LocalCluster, whose
workers forked from a process that already imported what member tasks run, then records
both addresses in ``$ACCORD_HOME/stack.json`` and waits for SIGTERM. Every command on the
machine finds it there (`running`) and uses its Prefect API and its cluster instead of
starting its own, so a command costs its work, and the links it prints stay alive while the
stack is up. ``accord server stop`` ends the stack and every process it started.

Like `runtime.server`, this module must not import Prefect at module level: the stack's
URL has to be in the environment before Prefect reads its settings.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict
from pathlib import Path

from accord.errors import ConfigError
from accord.version import __version__
from runtime.server import LocalPrefectServer, local_api_environment
from runtime.warm import (
    COMMANDS_SOCKET,
    Stack,
    accord_home,
    code_fingerprint,
    imports_env_fingerprint,
    ping_commands,
    process_alive,
    read_state,
    running,
    same_code,
    state_path,
)

START_TIMEOUT_S = 180.0
STOP_TIMEOUT_S = 60.0


# --- the stack's own process ---------------------------------------------------------------


def _write_state(home: Path, stack: Stack) -> None:
    tmp = home / f".stack.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(asdict(stack), indent=2))
    tmp.replace(state_path(home))  # whole or absent


def _start_commands(
    module: str, home: Path, env: dict[str, str], stop: threading.Event
) -> subprocess.Popen[bytes] | None:
    """Start the command server `module` (``python -m module --socket PATH``) and wait until it answers.

    It runs in `env`: the environment the stack started in, with its Prefect API (not what
    the cluster's start added for its workers). None where the stack was stopped first. Its
    output goes to ``commands.log`` under `home`.

    Raises:
        RuntimeError: it exited, or did not answer in `START_TIMEOUT_S`; the message names its log.
    """
    path, log_path = home / COMMANDS_SOCKET, home / "commands.log"
    path.unlink(missing_ok=True)
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", module, "--socket", str(path)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    deadline = time.monotonic() + START_TIMEOUT_S
    while not stop.is_set() and time.monotonic() < deadline:
        if ping_commands(path) == process.pid:
            return process
        if process.poll() is not None:
            raise RuntimeError(f"the command server exited with code {process.returncode}; see {log_path}")
        time.sleep(0.1)
    process.terminate()
    if stop.is_set():
        return None
    raise RuntimeError(f"the command server did not answer in {START_TIMEOUT_S:.0f}s; see {log_path}")


def serve(home: Path, workers: int, commands: str | None = None) -> None:
    """Run the stack until SIGTERM or SIGINT: a Prefect server, a LocalCluster, the state file.

    With `commands` (a module, `deployments.commands`), a command server beside them, which
    the console script hands its commands to. The state file is written once all answer,
    and removed first on the way out, so no command finds a stack that is going away.
    """
    home.mkdir(parents=True, exist_ok=True)
    code = code_fingerprint()  # before anything imports accord's code
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    prefect_home = home / "prefect"
    os.environ.pop("PREFECT_API_URL", None)
    commands_env = dict(os.environ)  # before the cluster adds its workers' settings
    server = LocalPrefectServer(env={"PREFECT_HOME": str(prefect_home)}, log_path=home / "prefect.log")
    cluster = None
    command_server = None
    try:
        api_url = server.start()
        os.environ["PREFECT_HOME"] = str(prefect_home)
        os.environ.update(local_api_environment(api_url, prefect_home))  # the workers inherit it
        commands_env.update(PREFECT_HOME=str(prefect_home), **local_api_environment(api_url, prefect_home))
        from distributed import Client

        from runtime.runner import AccordLocalCluster, local_cluster_kwargs

        cluster = AccordLocalCluster(**local_cluster_kwargs(workers), scheduler_port=0)
        with Client(cluster) as client:
            client.wait_for_workers(workers, timeout=START_TIMEOUT_S)
        assert server.process is not None
        if commands:
            command_server = _start_commands(commands, home, commands_env, stop)
        stack = Stack(
            pid=os.getpid(),
            server_pid=server.process.pid,
            api_url=api_url,
            dask_address=str(cluster.scheduler_address),
            dashboard=str(cluster.dashboard_link),
            workers=workers,
            home=str(home),
            python=sys.prefix,
            version=__version__,
            started=time.time(),
            commands=str(home / COMMANDS_SOCKET) if command_server is not None else "",
            code=code,
            imports_env=imports_env_fingerprint(commands_env),
        )
        if not stop.is_set():
            _write_state(home, stack)
            print(f"accord stack up: {json.dumps(asdict(stack))}", flush=True)
            stop.wait()
    finally:
        recorded = read_state(home)
        if recorded is not None and recorded.pid == os.getpid():
            state_path(home).unlink(missing_ok=True)
        if command_server is not None:
            command_server.terminate()  # commands it runs go with the process group
            with contextlib.suppress(subprocess.TimeoutExpired):
                command_server.wait(timeout=10)
            (home / COMMANDS_SOCKET).unlink(missing_ok=True)
        if cluster is not None:
            with contextlib.suppress(Exception):
                cluster.close(timeout=30)
        server.stop()
        print("accord stack stopped", flush=True)


# --- the commands ------------------------------------------------------------------------


def start(
    workers: int, home: Path | None = None, timeout: float = START_TIMEOUT_S, commands: str | None = None
) -> tuple[Stack, bool]:
    """Start the stack in the background and wait until it answers; return it and whether it is new.

    A stack already up is returned as it is (with False), whatever its worker count.
    `commands` names the command server's module (see `serve`); None runs none.

    Raises:
        ConfigError: `workers` is below 1, or a stack's process runs but does not answer
            (stop it first).
        RuntimeError: the stack did not come up; the message names its log.
    """
    if workers < 1:
        raise ConfigError(f"workers must be at least 1; found {workers}. Pass --workers 1 or more.")
    home = home or accord_home()
    home.mkdir(parents=True, exist_ok=True)
    with (home / "stack.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two starts at once: the second finds the first's stack
        return _start(workers, home, timeout, commands)


def _start(workers: int, home: Path, timeout: float, commands: str | None) -> tuple[Stack, bool]:
    up = running(home)
    if up is not None:
        return up, False
    stale = read_state(home)
    if stale is not None and process_alive(stale.pid):
        raise ConfigError(
            f"a stack (process {stale.pid}) is recorded in {state_path(home)} but does not answer, or runs "
            f"another accord ({stale.version}, {stale.python}); run `accord server stop` first."
        )
    state_path(home).unlink(missing_ok=True)
    home.mkdir(parents=True, exist_ok=True)
    log_path = home / "stack.log"
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "runtime.stack", "--home", str(home), "--workers", str(workers)),
                *(("--commands", commands) if commands else ()),
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stack = read_state(home)
        if stack is not None and stack.pid == process.pid and not same_code(stack):
            _end(process.pid, stack.server_pid, timeout=STOP_TIMEOUT_S)
            raise RuntimeError(
                "accord's files changed while the stack started, so no command would use it; "
                "it was stopped: run `accord server start` again"
            )
        if stack is not None and stack.pid == process.pid and running(home) is not None:
            return stack, True
        if process.poll() is not None:
            raise RuntimeError(
                f"the stack exited with code {process.returncode} before it was up; see {log_path}"
            )
        time.sleep(0.2)
    _end(process.pid, 0, timeout=STOP_TIMEOUT_S)
    raise RuntimeError(f"the stack did not come up in {timeout:.0f}s; see {log_path}")


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _runs(pid: int, marker: str) -> bool:
    """Whether process `pid` runs a command line holding `marker` (a recorded pid may since be another's)."""
    try:
        return marker in Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(
            errors="replace"
        )
    except OSError:
        return not Path("/proc").is_dir() and process_alive(pid)  # no /proc: trust the pid


def _end(pid: int, server_pid: int, timeout: float) -> None:
    """End the stack's process, then whatever is left of its and the server's process groups.

    Only processes that still run the stack (``runtime.stack``) or a Prefect server are
    signalled: after a crash the recorded pids may belong to someone else's processes.
    """
    if not _runs(pid, "runtime.stack"):
        pid = 0
    if server_pid > 0 and not _runs(server_pid, "prefect"):
        server_pid = 0
    if pid > 0:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while pid > 0 and process_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    for group in (pid, server_pid):
        if group <= 0:
            continue
        for signum in (signal.SIGTERM, signal.SIGKILL):
            if not _group_alive(group):
                break
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signum)
            until = time.monotonic() + 10
            while _group_alive(group) and time.monotonic() < until:
                with contextlib.suppress(ChildProcessError, OSError):
                    os.waitpid(-group, os.WNOHANG)
                time.sleep(0.1)


def stop(home: Path | None = None, timeout: float = STOP_TIMEOUT_S) -> Stack | None:
    """Stop the stack under `home` and every process it started; return what was stopped (None: none was)."""
    home = home or accord_home()
    stack = read_state(home)
    if stack is None:
        return None
    _end(stack.pid, stack.server_pid, timeout)
    state_path(home).unlink(missing_ok=True)
    return stack


def main(argv: list[str] | None = None) -> None:
    """``python -m runtime.stack --home DIR --workers N [--commands MODULE]``: the stack's own process."""
    p = argparse.ArgumentParser(prog="python -m runtime.stack")
    p.add_argument("--home", type=Path, required=True)
    p.add_argument("--workers", type=int, required=True)
    p.add_argument("--commands", default=None, help="the command server's module (see `serve`)")
    args = p.parse_args(argv)
    serve(args.home, args.workers, args.commands)


if __name__ == "__main__":
    main()
