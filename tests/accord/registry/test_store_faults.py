"""S3 faults through a proxy in front of moto: throttling retried, denial not, an outage mid-publish."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator

import pytest
import s3fs

import accord
from accord.config import make_config
from accord.ensembling.evaluation import evaluate
from accord.errors import PublishError
from accord.registry.publishing import publish, version_payload
from accord.registry.refs import parse_ref
from accord.registry.store import Registry
from accord.training.fit import fit_all
from accord.training.prepare import prepare
from tests.support.s3_proxy import FaultyS3


@pytest.fixture
def proxy() -> Iterator[FaultyS3]:
    p = FaultyS3(os.environ["AWS_ENDPOINT_URL"])
    yield p
    p.stop()


@pytest.fixture(scope="module")
def payload():
    cfg = make_config(
        {"data": "sklearn:iris", "members": [{"kind": "logreg"}], "folds": 2, "store": "memory://x"}
    )
    p = prepare(cfg)
    oof, refits = fit_all(p, 0)
    return version_payload(p, refits, evaluate(p, oof, refits, "equal"), config=cfg.model_dump(mode="json"))


def _store(proxy: FaultyS3, attempts: int = 5) -> tuple[str, dict[str, object]]:
    """A fresh bucket reached through the proxy; `attempts` per request (botocore's default is 5).

    Outage tests use fewer, so the endpoint being gone is reported in seconds, not minutes.
    """
    bucket = f"accord-{uuid.uuid4().hex[:12]}"
    s3fs.S3FileSystem().mkdir(bucket)
    options = {
        "endpoint_url": proxy.url,
        "skip_instance_cache": True,  # s3fs caches filesystems by their arguments
        "config_kwargs": {"retries": {"max_attempts": attempts, "mode": "standard"}},
    }
    return f"s3://{bucket}/registry", options


@pytest.mark.slow
def test_throttling_is_retried_with_backoff(proxy, payload, report):
    store, options = _store(proxy)
    proxy.throttle_puts = 2
    files, manifest = payload
    ref = publish(Registry(store, options), "m", files, manifest)
    assert proxy.throttled == 2  # both refused attempts were retried, and the version is whole
    assert accord.load(ref, storage_options=options).predict is not None
    assert Registry(store).versions("m") == [parse_ref(ref).version]
    report("2 PUTs answered 503 SlowDown", f"throttled {proxy.throttled}, retried; version verified whole")


@pytest.mark.slow
def test_connection_resets_are_retried(proxy, payload, report):
    store, options = _store(proxy)
    proxy.reset_puts = 2
    files, manifest = payload
    ref = publish(Registry(store, options), "m", files, manifest)
    assert proxy.reset == 2
    accord.load(ref, storage_options=options)
    report("2 PUT connections dropped (connection reset)", "retried; version verified whole")


def test_access_denied_is_not_retried(proxy, payload, report):
    store, options = _store(proxy)
    proxy.deny_puts = 100
    files, manifest = payload
    with pytest.raises(PublishError, match=r"AccessDenied|Forbidden|Access Denied|PermissionError"):
        publish(Registry(store, options), "m", files, manifest)
    assert proxy.denied == 1  # one attempt: a refusal is not transient
    assert Registry(store).versions("m") == []
    report("PUT answered 403 AccessDenied", f"attempts {proxy.denied}; versions published 0")


@pytest.mark.slow
def test_an_outage_mid_publish_leaves_the_old_version_and_a_retry_publishes(proxy, payload, report):
    store, options = _store(proxy, attempts=2)
    files, manifest = payload
    old = publish(Registry(store, options), "m", files, manifest)
    proxy.down_after_puts = proxy.puts + 2  # two more files upload, then the endpoint is gone
    start = time.monotonic()
    with pytest.raises(PublishError):
        publish(Registry(store, options), "m", files, manifest)
    failed_after = time.monotonic() - start
    proxy.restore()
    assert proxy.dropped > 0 and failed_after < 120
    registry = Registry(store)
    assert registry.versions("m") == [parse_ref(old).version]  # the new version is not visible
    accord.load(old, storage_options=options)  # the old one still loads, verified
    new = publish(Registry(store, options), "m", files, manifest)  # a retry publishes it whole
    accord.load(new, storage_options=options)
    assert registry.versions("m") == sorted([parse_ref(old).version, parse_ref(new).version])
    uploads = s3fs.S3FileSystem().call_s3("list_multipart_uploads", Bucket=store.split("/")[2])
    assert not uploads.get("Uploads")
    report(
        "S3 endpoint down after 2 PUTs of a version",
        f"PublishError after {failed_after:.1f}s; old version verified; new one invisible; "
        "retry published it whole; orphaned uploads 0",
    )


@pytest.mark.slow
def test_a_multipart_upload_left_by_an_outage_is_aborted_by_the_next_publisher(proxy, payload, report):
    store, options = _store(proxy, attempts=2)
    bucket = store.split("/")[2]
    files, manifest = payload
    big = {**files, "members/logreg/blob.json": b"0" * (12 * 2**20)}  # uploaded in 5 MiB parts
    proxy.down_after_puts = proxy.puts + 2  # ensemble.json, one part, then the endpoint is gone
    with pytest.raises(PublishError):
        publish(Registry(store, options, multipart_chunksize=5 * 2**20), "m", big, manifest)
    proxy.restore()
    uploads = s3fs.S3FileSystem().call_s3("list_multipart_uploads", Bucket=bucket).get("Uploads", [])
    assert len(uploads) == 1  # s3fs could not abort it: the endpoint was down
    recent = Registry(store, options)  # a publish in progress elsewhere would look the same: left alone
    publish(recent, "m", files, manifest)
    assert len(s3fs.S3FileSystem().call_s3("list_multipart_uploads", Bucket=bucket).get("Uploads", [])) == 1
    ref = publish(Registry(store, options, stale_upload_s=0), "m", files, manifest)
    assert not s3fs.S3FileSystem().call_s3("list_multipart_uploads", Bucket=bucket).get("Uploads")
    accord.load(ref, storage_options=options)
    report(
        "S3 endpoint down in the middle of a multipart upload",
        "1 incomplete upload left by the dead publisher; aborted by the next publish once stale; orphans 0",
    )


@pytest.mark.slow
def test_a_flow_failing_on_an_outage_is_retried_and_publishes(proxy, monkeypatch, tmp_path, report):
    from accord.config import make_config as config_of
    from flows.train import train_ensemble

    bucket = f"accord-{uuid.uuid4().hex[:12]}"
    s3fs.S3FileSystem().mkdir(bucket)
    store = f"s3://{bucket}/registry"
    config = config_of(
        {"data": "sklearn:iris", "members": [{"kind": "logreg"}, {"kind": "knn"}], "folds": 2, "store": store,
         "name": "m", "workers": 1, "seed": 1}
    )  # fmt: skip
    first = train_ensemble(config.model_copy(update={"seed": 0}))  # the version readers use today
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)  # the flow's S3 traffic now goes through the proxy
        monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")  # report the outage in seconds
        s3fs.S3FileSystem.clear_instance_cache()
        proxy.count_only = "/versions/"
        proxy.down_after_puts = 2  # two files of the new version upload, then the endpoint is gone
        with pytest.raises(PublishError):
            train_ensemble(config)
        proxy.restore()
        registry = Registry(store)
        assert registry.versions("m") == [first["version"]]  # the failed version is not visible
        accord.load(store + "/m@production")  # the previous version still loads, verified
        retried = train_ensemble(config)  # the same run again: members come from the cache
        assert registry.versions("m") == sorted([first["version"], retried["version"]])
        accord.load(retried["ref"])
        assert not s3fs.S3FileSystem().call_s3("list_multipart_uploads", Bucket=bucket).get("Uploads")
    finally:  # later tests must not get the proxy's cached filesystem
        monkeypatch.undo()
        s3fs.S3FileSystem.clear_instance_cache()
    report(
        "S3 endpoint down mid-publish inside a flow run, then the run retried",
        "run Failed; previous version loads; new one invisible; the retry published it whole",
    )
