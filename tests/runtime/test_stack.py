"""The warm stack: `accord server start|stop|status`, and every command using it while it is up."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_iris

import accord
from runtime.warm import NO_STACK_NOTE, ping_commands, read_state, running
from tests.support.cli import ACCORD, run_cli

pytestmark = pytest.mark.slow


def _env(home: Path, store: str) -> dict[str, str]:
    """A command's environment with no Prefect API of its own: it must find the stack under `home`."""
    env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "PREFECT_HOME")}
    env.update(ACCORD_HOME=str(home), ACCORD_STORE=store)
    return env


def _group(pgid: int) -> list[int]:
    """Processes of process group `pgid` now."""
    out = subprocess.run(["ps", "-eo", "pid=,pgid="], capture_output=True, text=True, check=True).stdout
    return [int(pid) for pid, group in (line.split() for line in out.splitlines()) if int(group) == pgid]


def _scheduler(address: str, fn: Any) -> Any:
    from distributed import Client

    with Client(address, timeout=30) as client:
        return client.run_on_scheduler(fn)


def _transitions(dask_scheduler: Any) -> int:
    return int(dask_scheduler.transition_counter)


def _prefixes(dask_scheduler: Any) -> list[str]:
    return sorted(dask_scheduler.task_prefixes)


def _flow_runs(api_url: str) -> list[dict[str, Any]]:
    r = httpx.post(f"{api_url}/flow_runs/filter", json={"limit": 200}, timeout=30)
    r.raise_for_status()
    return list(r.json())


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("stack")
    home, store = root / "home", (root / "registry").as_uri()
    iris = load_iris(as_frame=True).frame.rename(columns={"target": "species"})
    iris.to_csv(root / "iris.csv", index=False)
    env = _env(home, store)
    out = run_cli("server", "start", "--workers", "2", env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:] + (home / "stack.log").read_text()[-3000:]
    state = read_state(home)
    assert state is not None
    yield {"home": home, "store": store, "env": env, "root": root, "state": state}
    run_cli("server", "stop", env=env, timeout=120)


def test_start_writes_a_state_every_command_finds_and_a_second_start_reuses_it(stack):
    state, env = stack["state"], stack["env"]
    assert running(stack["home"]) == state
    assert httpx.get(f"{state.api_url}/health", timeout=10).status_code == 200
    assert _scheduler(state.dask_address, lambda dask_scheduler: len(dask_scheduler.workers)) == 2
    again = run_cli("server", "start", env=env)
    assert again.returncode == 0 and "already up" in again.stderr
    assert read_state(stack["home"]) == state  # the same stack, not a second one
    status = run_cli("server", "status", env=env)
    assert status.returncode == 0
    assert state.api_url in status.stdout and state.dask_address in status.stdout


def test_train_runs_on_the_stack_and_a_cached_rerun_touches_no_worker(stack):
    state, env, root = stack["state"], stack["env"], stack["root"]
    before = {r["id"] for r in _flow_runs(state.api_url)}
    args = ("train", "--data", str(root / "iris.csv"), "--target", "species", "--members", "logreg,knn")
    first = run_cli(*args, "--name", "iris", "--json", env=env)
    assert first.returncode == 0, first.stderr[-3000:]
    assert NO_STACK_NOTE not in first.stderr  # no server of its own
    assert f"running on the warm stack's Dask cluster at {state.dask_address}" in first.stderr
    assert f"View at {state.ui_url}/runs/flow-run/" in first.stderr  # a link that outlives the command
    runs = [r for r in _flow_runs(state.api_url) if r["id"] not in before]
    assert [(r["flow_id"] is not None, r["state_type"]) for r in runs] == [(True, "COMPLETED")]
    prefixes = _scheduler(state.dask_address, _prefixes)
    assert {"fold_logreg", "refit_logreg", "fold_knn", "refit_knn"} <= set(
        prefixes
    )  # fits ran on its workers
    published = json.loads(first.stdout)
    assert published["unchanged"] is False

    transitions = _scheduler(state.dask_address, _transitions)
    rerun = run_cli(*args, "--name", "iris", "--json", env=env)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    again = json.loads(rerun.stdout)
    assert again["unchanged"] is True and again["ref"] == published["ref"]  # nothing new published
    # every result came from the cache: no task reached the scheduler, let alone a worker
    assert _scheduler(state.dask_address, _transitions) == transitions


def test_two_commands_at_once_share_the_stack(stack):
    env, root = stack["env"], stack["root"]
    args = ("train", "--data", str(root / "iris.csv"), "--target", "species", "--members", "logreg,knn")
    runs = [
        subprocess.Popen(
            [ACCORD, *args, "--name", "shared", "--seed", str(seed), "--json"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for seed in (1, 2)
    ]
    outs = [r.communicate(timeout=600) for r in runs]
    assert [r.returncode for r in runs] == [0, 0], [err[-2000:] for _, err in outs]
    assert all(f"warm stack's Dask cluster at {stack['state'].dask_address}" in err for _, err in outs)
    refs = {json.loads(out)["ref"] for out, _ in outs}
    assert len(refs) == 2  # two versions, each whole
    for ref in refs:
        assert accord.load(ref).manifest["ref"] == ref
    production = accord.load(f"{stack['store']}/shared@production").manifest["ref"]
    assert production in refs


def test_a_small_predict_scores_in_the_calling_process(stack):
    state, env, root = stack["state"], stack["env"], stack["root"]
    ref = f"{stack['store']}/iris"
    rows = load_iris(as_frame=True).frame.drop(columns="target").sample(300, replace=True, random_state=0)
    rows.to_csv(root / "score.csv", index=False)
    transitions, runs = _scheduler(state.dask_address, _transitions), len(_flow_runs(state.api_url))
    out = run_cli(
        "predict",
        "--model",
        ref,
        "--input",
        str(root / "score.csv"),
        "--output",
        str(root / "p.csv"),
        env=env,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    written = pd.read_csv(root / "p.csv")
    model = accord.load(ref)
    np.testing.assert_allclose(written.filter(like="proba_").to_numpy(), model.predict_proba(rows), rtol=1e-6)
    assert _scheduler(state.dask_address, _transitions) == transitions  # no task on the cluster
    assert len(_flow_runs(state.api_url)) == runs  # and no flow run: scored right there


def test_a_chunked_predict_of_a_relative_path_reads_the_callers_file(stack):
    """The stack's workers run in the directory the stack started in; a relative input must still be found."""
    state, env, root = stack["state"], stack["env"], stack["root"]
    caller = root / "caller"
    caller.mkdir()
    rows = load_iris(as_frame=True).frame.drop(columns="target").sample(300, replace=True, random_state=1)
    rows.reset_index(drop=True).to_parquet(caller / "in.parquet", row_group_size=100)
    transitions = _scheduler(state.dask_address, _transitions)
    out = subprocess.run(
        [
            ACCORD,
            "predict",
            "--model",
            f"{stack['store']}/iris",
            "--input",
            "in.parquet",
            "--output",
            "out.csv",
            "--chunk-rows",
            "100",
        ],
        cwd=caller,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert _scheduler(state.dask_address, _transitions) > transitions  # three chunks, scored on the workers
    written = pd.read_csv(caller / "out.csv")
    model = accord.load(f"{stack['store']}/iris")
    np.testing.assert_allclose(written.filter(like="proba_").to_numpy(), model.predict_proba(rows), rtol=1e-6)


# The console script with the command line itself made unimportable: a command succeeds only
# where the stack's command server runs it.
THIN = (
    "import sys; sys.modules['deployments.cli'] = None\n"
    "from deployments.thin import console; sys.argv = ['accord', *sys.argv[1:]]; console()"
)


def _thin(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", THIN, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=300
    )


def _here(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    local = {**env, "ACCORD_LOCAL_COMMANDS": "1"}
    return subprocess.run([ACCORD, *args], env=local, cwd=cwd, capture_output=True, text=True, timeout=300)


def test_commands_run_on_the_stacks_command_server_as_they_would_run_here(stack):
    state, env, root = stack["state"], stack["env"], stack["root"]
    assert state.commands == str(stack["home"] / "commands.sock")
    assert ping_commands(state.commands) is not None
    assert oct(Path(state.commands).stat().st_mode & 0o777) == "0o600"  # no other user's commands
    for args in (
        ("models", "list", stack["store"]),
        ("train", "--data", "iris.csv", "--target", "nope"),  # relative: the caller's directory
        ("train", "--members", "logreg,bogus"),
    ):
        there, here = _thin(*args, env=env, cwd=root), _here(*args, env=env, cwd=root)
        assert (there.returncode, there.stdout, there.stderr) == (here.returncode, here.stdout, here.stderr)
    assert here.returncode == 2 and "bogus" in here.stderr  # bad input: exit 2 and its one line, both ways
    missing = _thin("train", "--data", "iris.csv", "--target", "nope", env=env, cwd=root)
    assert missing.returncode == 2 and "nope" in missing.stderr and "species" in missing.stderr


def test_a_malformed_request_is_refused_and_leaves_the_command_server_no_descriptor(stack):
    import socket
    import time

    from runtime.warm import REQUEST_HEADER

    path = stack["state"].commands
    server = ping_commands(path)
    assert server is not None
    before = len(os.listdir(f"/proc/{server}/fd"))
    for length in (0, 10):  # a ping and a request, each with 2 descriptors instead of 3
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn, open(os.devnull) as f:
            conn.connect(path)
            socket.send_fds(conn, [REQUEST_HEADER.pack(length)], [f.fileno(), f.fileno()])
            conn.settimeout(10)
            answer = conn.makefile("rb").readline()
        assert (b"pong" in answer) == (length == 0)  # the request is refused unanswered, nothing forked
    assert ping_commands(path) == server
    deadline = time.monotonic() + 10  # the server closes each connection just after answering it
    while len(os.listdir(f"/proc/{server}/fd")) > before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(os.listdir(f"/proc/{server}/fd")) <= before  # a kept descriptor per request would stay


def test_ctrl_c_reaches_the_command_on_the_stack_and_ends_it(stack):
    env, root = stack["env"], stack["root"]
    server = ping_commands(stack["state"].commands)
    assert server is not None
    data = "synthetic:classification?n_rows=60000&n_features=60"
    p = subprocess.Popen(
        [
            sys.executable,
            "-c",
            THIN,
            "train",
            "--data",
            data,
            "--members",
            "knn,random_forest",
            "--name",
            "big",
        ],
        env=env,
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert p.stderr is not None
    for line in p.stderr:  # the command runs on the stack (this process cannot) and its flow started
        if "Beginning flow run" in line:
            break
    import psutil

    children = psutil.Process(server).children()
    assert len(children) == 1
    p.send_signal(signal.SIGINT)
    assert p.wait(timeout=120) == 130
    psutil.wait_procs(children, timeout=60)
    assert psutil.Process(server).children() == []  # the command ended with its caller
    assert not any(c.is_running() and c.status() != psutil.STATUS_ZOMBIE for c in children)


def test_a_command_runs_here_when_the_stack_runs_other_code_or_imports_under_another_environment(stack):
    state, env, root, home = stack["state"], stack["env"], stack["root"], stack["home"]
    source = Path(accord.__file__).parent / "version.py"
    st = source.stat()
    os.utime(source, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # as an edit would
    try:
        assert running(home) is None  # neither its workers nor its command server
        stale = _thin("models", "list", stack["store"], env=env, cwd=root)
        assert stale.returncode != 0 and "deployments.cli" in stale.stderr  # it tried to run here
    finally:
        os.utime(source, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert running(home) == state
    threads = _thin("models", "list", stack["store"], env={**env, "OMP_NUM_THREADS": "3"}, cwd=root)
    assert threads.returncode != 0 and "deployments.cli" in threads.stderr  # read at import: runs here
    assert _thin("models", "list", stack["store"], env=env, cwd=root).returncode == 0


def test_stop_ends_every_process_it_started_and_leaves_nothing_behind(stack):
    state, env, home = stack["state"], stack["env"], stack["home"]
    ours = _group(state.pid) + _group(state.server_pid)
    assert state.pid in ours and state.server_pid in ours and len(ours) >= 5  # stack, server, workers
    assert ping_commands(state.commands) in ours  # and the command server
    out = run_cli("server", "stop", env=env, timeout=120)
    assert out.returncode == 0 and f"process {state.pid}" in out.stdout
    left = [pid for pid in ours if _exists(pid)]
    assert left == []
    assert not (home / "stack.json").exists()
    assert not Path(state.commands).exists()
    assert running(home) is None
    status = run_cli("server", "status", env=env)
    assert status.returncode == 1 and "no warm stack is up" in status.stdout


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"  # a zombie has ended


def test_stop_never_signals_a_process_that_is_not_the_stack(tmp_path):
    """After a crash the recorded pids may be reused by anyone's process: stop must leave them alone."""
    import dataclasses
    import sys
    import time

    from runtime.stack import stop
    from runtime.warm import Stack

    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    try:
        stale = Stack(
            other.pid,
            other.pid,
            "http://127.0.0.1:1/api",
            "tcp://127.0.0.1:1",
            "",
            2,
            str(tmp_path),
            sys.prefix,
            "0",
            time.time(),
        )
        (tmp_path / "stack.json").write_text(json.dumps(dataclasses.asdict(stale)))
        assert stop(tmp_path, timeout=2) == stale
        assert other.poll() is None  # still running
        assert not (tmp_path / "stack.json").exists()
    finally:
        other.kill()
        other.wait()


def test_a_stack_whose_files_changed_while_it_started_is_stopped_with_the_reason(tmp_path, monkeypatch):
    """No command would use it (`running` compares the files): waiting for it would only time out."""
    import runtime.stack

    monkeypatch.setattr(runtime.stack, "same_code", lambda stack: False)  # as an edit during the start
    with pytest.raises(RuntimeError, match="files changed while the stack started") as e:
        runtime.stack.start(1, home=tmp_path, timeout=120)
    assert "run `accord server start` again" in str(e.value)
    recorded = json.loads((tmp_path / "stack.log").read_text().split("accord stack up: ")[1].splitlines()[0])
    assert not _exists(recorded["pid"]) and not _exists(recorded["server_pid"])
    assert not (tmp_path / "stack.json").exists()
