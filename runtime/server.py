"""One Prefect API for every process of a run.

When ``PREFECT_API_URL`` is unset, start ``prefect server start`` on a free
loopback port (SQLite under ``PREFECT_HOME``) and export its URL, so that the
flow process and every Dask worker it spawns talk to the same server instead of
each starting a temporary one against one SQLite file.

This module must not import Prefect: Prefect reads its settings when imported,
so the URL has to be in the environment first.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

STARTUP_TIMEOUT_S = 90.0


def default_home() -> Path:
    """Return ``./.prefect``, a project-local Prefect home.

    The local server's SQLite database is then never one that another Prefect version
    (e.g. in a user's ``~/.prefect``) has migrated ahead of ours.
    """
    return Path.cwd() / ".prefect"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def healthy(api_url: str, timeout: float = 2.0) -> bool:
    """Whether a Prefect API answers its health check."""
    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=timeout) as r:
            return bool(r.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _prefect_executable() -> list[str]:
    exe = Path(sys.executable).parent / "prefect"
    if exe.exists():
        return [str(exe)]
    found = shutil.which("prefect")
    if found:
        return [found]
    return [sys.executable, "-m", "prefect"]


class LocalPrefectServer:
    """A ``prefect server start`` subprocess on loopback.

    Args:
        port: Port to bind (a free one when None).
        env: Extra environment for the server (e.g. ``PREFECT_HOME`` or a Postgres
            ``PREFECT_SERVER_DATABASE_CONNECTION_URL``).
        log_path: Where the server's output goes (a file beside ``PREFECT_HOME`` by default).
    """

    def __init__(
        self, port: int | None = None, env: dict[str, str] | None = None, log_path: Path | None = None
    ) -> None:
        self.port = port or free_port()
        self.env = {**os.environ, **(env or {})}
        self.env.pop("PREFECT_API_URL", None)
        home = Path(self.env.get("PREFECT_HOME") or default_home()).expanduser()
        home.mkdir(parents=True, exist_ok=True)
        self.env["PREFECT_HOME"] = str(home)
        self.env.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
        # the UI's browser code calls this URL; Prefect's default (port 4200) would be wrong here
        self.env["PREFECT_SERVER_UI_API_URL"] = self.api_url
        self.log_path = log_path or home / f"server-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def api_url(self) -> str:
        """The API URL to export as ``PREFECT_API_URL``."""
        return f"http://127.0.0.1:{self.port}/api"

    def start(self, timeout: float = STARTUP_TIMEOUT_S) -> str:
        """Start the server and wait until it is healthy; return its API URL."""
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [*_prefect_executable(), "server", "start", "--host", "127.0.0.1", "--port", str(self.port)],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"prefect server exited with code {self.process.returncode}; see {self.log_path}"
                )
            if healthy(self.api_url):
                return self.api_url
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"prefect server did not become healthy in {timeout:.0f}s; see {self.log_path}")

    def stop(self) -> None:
        """Stop the server and its children."""
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


def loopback_ca_file(home: Path) -> Path:
    """A CA file of one certificate, for Prefect clients of a plain-HTTP loopback server.

    Prefect builds an SSL context for every API client it makes, loading the whole CA
    bundle (certifi's), and a Dask worker makes several clients per task. A client of
    ``http://127.0.0.1`` never uses that context, so with this file as
    ``PREFECT_API_SSL_CERT_FILE`` it loads one certificate instead. Trusting fewer roots can
    only make a TLS connection fail, never accept one the full bundle would refuse.
    Measurements: docs/performance.md.

    Args:
        home: The directory to keep the file in; it is written there once, atomically.

    Returns:
        The path of a file holding the first certificate of certifi's bundle.

    Raises:
        RuntimeError: certifi's bundle holds no certificate.
    """
    import certifi

    path = home / "loopback-ca.pem"
    if not path.exists():
        bundle = Path(certifi.where()).read_text()
        found = re.search(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----\n", bundle, re.S)
        if found is None:
            raise RuntimeError(f"no certificate in {certifi.where()}")
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(found.group(0))
        tmp.replace(path)  # whole or absent, whichever process writes it
    return path


def local_api_environment(api_url: str, home: Path) -> dict[str, str]:
    """The variables that point every process of a run at a local server accord started.

    ``PREFECT_API_SSL_CERT_FILE`` is only set here, for a server on ``http://`` loopback
    (see `loopback_ca_file`), and never over one the user set.
    """
    env = {"PREFECT_API_URL": api_url}
    if api_url.startswith("http://") and not os.environ.get("PREFECT_API_SSL_CERT_FILE"):
        env["PREFECT_API_SSL_CERT_FILE"] = str(loopback_ca_file(home))
    return env


def drain_prefect_clients() -> None:
    """Send buffered run logs and events while the server is still up (it may be ours, about to stop)."""
    if "prefect" not in sys.modules:
        return
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for service in (APILogWorker, EventsWorker):
        try:
            service.drain_all(timeout=10)
        except Exception as e:  # draining is best effort; the run itself is already decided
            print(f"accord: could not flush Prefect {service.__name__}: {e}", file=sys.stderr)
