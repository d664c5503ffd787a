"""Find the warm local stack (`runtime.stack`) and use its Prefect API and Dask cluster.

Kept apart from `runtime.stack`, which starts and stops the stack, so that the task runner
and the command line can look for one without importing what the stack itself runs.
This module must not import Prefect: the stack's URL has to be in the environment before
Prefect reads its settings.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import struct
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from accord.version import __version__
from runtime.server import (
    LocalPrefectServer,
    default_home,
    drain_prefect_clients,
    healthy,
    local_api_environment,
)

HOME_ENV = "ACCORD_HOME"
STATE_FILE = "stack.json"

NO_STACK_NOTE = (
    "accord: no warm stack is up, so this command starts its own Prefect server and Dask workers, "
    "and its 'View at' links die with it; `accord server start` keeps both warm for every command."
)


STALE_STACK_NOTE = (
    "accord: the warm stack runs other code than this command (accord's files, version or Python "
    "changed since it started), so this command starts its own Prefect server and Dask workers; "
    "`accord server stop` then `accord server start` brings the stack up to date."
)


def no_stack_note(home: Path | None = None) -> str:
    """The line a command prints when it starts its own server: why no warm stack served it."""
    stack = read_state(home)
    stale = stack is not None and not same_code(stack) and process_alive(stack.pid)
    return STALE_STACK_NOTE if stale else NO_STACK_NOTE


def accord_home() -> Path:
    """``$ACCORD_HOME``, else ``~/.accord``: where the warm stack keeps its state and database."""
    return Path(os.environ.get(HOME_ENV) or "~/.accord").expanduser()


@dataclass(frozen=True)
class Stack:
    """A running stack, as its state file records it.

    Attributes:
        pid: The stack's own process (a session leader: its workers share its process group).
        server_pid: The Prefect server's process (a session of its own).
        api_url: The Prefect API every command and worker uses.
        dask_address: The Dask scheduler's address.
        dashboard: The Dask dashboard's URL.
        workers: Worker processes of the cluster.
        home: The ``ACCORD_HOME`` it runs under.
        python: The Python environment it runs in (``sys.prefix``; a command from another does not use it).
        version: accord's version it imported (its workers run that code).
        started: When it became ready (seconds since the epoch).
        commands: The command server's socket (`deployments.commands`); "" where none runs.
        code: `code_fingerprint` of the code it imported.
        imports_env: `imports_env_fingerprint` of the environment its command server imported in.
    """

    pid: int
    server_pid: int
    api_url: str
    dask_address: str
    dashboard: str
    workers: int
    home: str
    python: str
    version: str
    started: float
    commands: str = ""
    code: str = ""
    imports_env: str = ""

    @property
    def ui_url(self) -> str:
        """The Prefect UI's address."""
        return self.api_url.removesuffix("/api")


def state_path(home: Path | None) -> Path:
    """The state file of the stack under `home` (``accord_home()`` when None)."""
    return (home or accord_home()) / STATE_FILE


def read_state(home: Path | None = None) -> Stack | None:
    """The stack the state file under `home` records, or None where there is none or it is unreadable."""
    try:
        return Stack(**json.loads(state_path(home).read_text()))
    except (OSError, ValueError, TypeError):
        return None


COMMANDS_SOCKET = "commands.sock"
REQUEST_HEADER = struct.Struct(">Q")
"""A command server request's length, sent first (`deployments.commands`); a length of 0 pings it."""


def ping_commands(path: Path | str, timeout: float = 1.0) -> int | None:
    """The pid of the command server answering at `path`, or None where none answers."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(timeout)
            conn.connect(str(path))
            conn.sendall(REQUEST_HEADER.pack(0))
            return int(json.loads(conn.makefile("rb").readline())["pong"])
    except (OSError, ValueError, KeyError):
        return None


def process_alive(pid: int) -> bool:
    """Whether process `pid` runs (a child of ours that ended is reaped here, not counted)."""
    with contextlib.suppress(ChildProcessError, OSError):
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _listening(address: str, timeout: float = 1.0) -> bool:
    """Whether a TCP address (``tcp://host:port``) accepts connections."""
    parsed = urlparse(address)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 0), timeout=timeout):
            return True
    except OSError:
        return False


_PACKAGES = ("accord", "deployments", "flows", "tasks", "runtime")


def code_fingerprint() -> str:
    """A digest of the name, size and modification time of every source file of accord's packages.

    Why: the stack's workers and command server keep the code they imported; a command from
    a checkout edited since must not run on them. A few milliseconds (no file is read).
    """
    root = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256()
    for package in _PACKAGES:
        for folder, dirs, files in sorted(os.walk(root / package)):
            dirs.sort()
            for name in sorted(files):
                if name.endswith((".py", ".yaml")):
                    path = Path(folder) / name
                    st = path.stat()
                    digest.update(f"{path.relative_to(root)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


IMPORT_ENV_PREFIXES = (
    "OMP_",
    "MKL_",
    "OPENBLAS_",
    "BLIS_",
    "VECLIB_",
    "NUMEXPR_",
    "TF_",
    "KERAS_",
    "CUDA_",
    "XLA_",
    "PYTHON",
    "MALLOC_",
    "LD_",
    "PREFECT_LOGGING_",
)
"""Variables that libraries read as they are imported (thread pools, allocators, logging)."""


def imports_env_fingerprint(env: dict[str, str] | os._Environ[str]) -> str:
    """A digest of `env`'s variables that take effect at import (`IMPORT_ENV_PREFIXES`).

    A process forked from one that imported under other values would not honour them.
    """
    chosen = sorted((k, v) for k, v in env.items() if k.startswith(IMPORT_ENV_PREFIXES))
    return hashlib.sha256(json.dumps(chosen).encode()).hexdigest()[:16]


def same_code(stack: Stack) -> bool:
    """Whether `stack` runs this interpreter, accord version and source files."""
    return stack.python == sys.prefix and stack.version == __version__ and stack.code == code_fingerprint()


def running(home: Path | None = None) -> Stack | None:
    """The stack under `home` if it is up, answers, and runs this interpreter, accord version and code.

    A few milliseconds: the state file, the source files' sizes and times, the Prefect API's
    health check and a TCP connect to the scheduler.
    """
    stack = read_state(home)
    if stack is None or not same_code(stack):
        return None
    up = process_alive(stack.pid) and _listening(stack.dask_address)
    return stack if up and healthy(stack.api_url, timeout=1.0) else None


def describe(stack: Stack) -> str:
    """The stack in a few lines: its UI, API, scheduler, dashboard, workers, process and age."""
    age = time.time() - stack.started
    return "\n".join(
        [
            f"Prefect UI   {stack.ui_url}",
            f"Prefect API  {stack.api_url}",
            f"Dask         {stack.dask_address} ({stack.workers} workers; dashboard {stack.dashboard})",
            f"process      {stack.pid}, up {age / 60:.0f} min, accord {stack.version}, home {stack.home}",
        ]
    )


def warm_dask_address(home: Path | None = None) -> str | None:
    """The warm stack's scheduler, where this process uses (or may use) the stack's Prefect API.

    A run whose ``PREFECT_API_URL`` names another server does not use the stack's workers:
    their tasks would report to the stack's server, not the run's.
    """
    stack = running(home)
    if stack is None:
        return None
    api = os.environ.get("PREFECT_API_URL")
    return stack.dask_address if api in (None, "", stack.api_url) else None


@contextlib.contextmanager
def prefect_api(log: bool = True) -> Iterator[str]:
    """Yield a Prefect API URL for the block, exported as ``PREFECT_API_URL``.

    In order: ``$PREFECT_API_URL`` if set; the warm stack's (`runtime.stack`) if one is up;
    else a local server started for the block, with one line on how to keep one warm.
    """
    existing = os.environ.get("PREFECT_API_URL")
    if existing:
        yield existing
        return
    stack = running()
    if stack is not None:
        home = Path(stack.home) / "prefect"
        exported = {"PREFECT_HOME": str(home), **local_api_environment(stack.api_url, home)}
        before = {k: os.environ.get(k) for k in exported}
        os.environ.update(exported)
        try:
            yield stack.api_url
        finally:
            drain_prefect_clients()
            for key, value in before.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
        return
    os.environ.setdefault("PREFECT_HOME", str(default_home()))
    server = LocalPrefectServer()
    if log:
        print(no_stack_note(), file=sys.stderr)
    url = server.start()
    exported = local_api_environment(url, Path(server.env["PREFECT_HOME"]))
    os.environ.update(exported)
    try:
        yield url
    finally:
        drain_prefect_clients()
        for key in exported:
            os.environ.pop(key, None)
        server.stop()
