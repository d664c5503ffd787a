"""Prediction output written whole: a failure while writing leaves nothing."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from accord.data.output import OutputWriter


def test_a_failure_while_writing_leaves_no_output(tmp_path):
    output = tmp_path / "pred.parquet"
    with pytest.raises(RuntimeError), OutputWriter(output.as_uri(), {"model": "m"}) as out:
        out.write(pd.DataFrame({"prediction": [1, 2]}))
        raise RuntimeError("worker lost")
    assert not output.exists() and list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def wine(tmp_path_factory):
    """A published wine ensemble (one logreg), loaded, and its table without the target."""
    import accord
    from accord.config import make_config
    from accord.ensembling.evaluation import evaluate
    from accord.registry.publishing import publish, version_payload
    from accord.registry.store import Registry
    from accord.training.fit import fit_all
    from accord.training.prepare import prepare

    store = (tmp_path_factory.mktemp("wine") / "registry").as_uri()
    cfg = make_config({"data": "sklearn:wine", "members": [{"kind": "logreg"}], "folds": 3, "store": store})
    p = prepare(cfg)
    oof, refits = fit_all(p, 0)
    files, manifest = version_payload(p, refits, evaluate(p, oof, refits, "caruana"), config={})
    return accord.load(publish(Registry(store), "wine", files, manifest)), pd.concat([p.X_train, p.X_test])


def test_a_small_parquet_is_scored_here_and_a_larger_one_is_left_unread(wine, tmp_path, monkeypatch):
    from accord.data.chunks import Chunk, plan
    from accord.data.output import score_small

    model, rows = wine
    path = tmp_path / "in.parquet"
    rows.reset_index(drop=True).to_parquet(path, row_group_size=100)  # 178 rows: 2 row groups
    out = tmp_path / "out.parquet"
    written = score_small(model, plan(str(path), 500), (), out.as_uri(), {"model": "m"})
    assert written is not None
    got = pd.read_parquet(out)
    np.testing.assert_allclose(got.filter(like="proba_").to_numpy(), model.predict_proba(rows), rtol=1e-12)

    def unread(self: Chunk) -> pd.DataFrame:
        raise AssertionError(f"chunk {self.index} read: its count is in the metadata")

    monkeypatch.setattr(Chunk, "read", unread)
    more = tmp_path / "more.parquet"
    assert score_small(model, plan(str(path), 100), (), more.as_uri(), {"model": "m"}) is None
    assert not more.exists()
