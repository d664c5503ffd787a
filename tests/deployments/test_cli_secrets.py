"""S3 keys never appear in manifests, logs, artifacts, flow parameters or CLI output."""

from __future__ import annotations

import json
import os

import pytest
import s3fs
from prefect import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, LogFilter, LogFilterFlowRunId

from accord.registry.refs import parse_ref
from tests.support.cli import run_cli

pytestmark = pytest.mark.slow  # every test here runs a flow or starts a cluster


def test_keys_stay_in_the_environment(s3_store, report):
    secrets = [os.environ["AWS_SECRET_ACCESS_KEY"], os.environ["AWS_ACCESS_KEY_ID"]]
    done = run_cli(
        "train", "--data", "sklearn:iris", "--members", "logreg,knn", "--folds", "2", "--workers", "1",
        "--store", s3_store, "--name", "secret", "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    ref = parse_ref(json.loads(done.stdout)["ref"])
    seen = [done.stdout, done.stderr]
    fs = s3fs.S3FileSystem()
    version_dir = f"{s3_store}/secret/versions/{ref.version}".removeprefix("s3://")
    published = fs.find(version_dir)
    assert any(p.endswith("manifest.json") for p in published)
    seen += [fs.cat_file(p).decode("latin-1") for p in published]
    run_id = json.loads(fs.cat_file(f"{version_dir}/manifest.json"))["lineage"]["flow_run_id"]
    with get_client(sync_client=True) as client:
        run_filter = FlowRunFilter(id=FlowRunFilterId(any_=[run_id]))
        (run,) = client.read_flow_runs(flow_run_filter=run_filter)
        seen.append(json.dumps(run.parameters))
        seen += [str(a.data) + str(a.description) for a in client.read_artifacts(flow_run_filter=run_filter)]
        logs = client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])), limit=200)
        seen += [log.message for log in logs]
    assert len(logs) > 5 and len(seen) > 10
    for text in seen:
        for secret in secrets:
            assert secret not in text
    report(
        "S3 keys in the environment of a run",
        f"found in 0 of {len(seen)} manifests, files, logs, artifacts, outputs",
    )
