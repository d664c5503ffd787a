"""A version's report page: self-contained, every figure inlined, and it renders in a real browser."""

from __future__ import annotations

import base64
import re

import pytest

from accord.config import make_config
from accord.ensembling.evaluation import evaluate
from accord.ensembling.importance import document
from accord.registry.publishing import publish, version_payload
from accord.registry.refs import parse_ref
from accord.registry.store import Registry
from accord.reports.page import REPORT_FILE
from accord.training.fit import fit_all
from accord.training.prepare import prepare
from tasks.ensemble import version_figures
from tests.support.browser import CHROMIUM_FLAGS, chromium
from tests.support.cli import run_cli


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    root = tmp_path_factory.mktemp("page")
    store = (root / "registry").as_uri()
    cfg = make_config(
        {
            "data": "sklearn:breast_cancer",
            "members": [{"kind": "logreg"}, {"kind": "random_forest", "params": {"n_estimators": 20}}],
            "folds": 3,
            "store": store,
        }
    )
    p = prepare(cfg)
    oof, refits = fit_all(p, 0)
    report = evaluate(p, oof, refits, "caruana")
    names = p.schema.names[:3]
    importance = document(report.primary, 0.1, [(n, 0) for n in names], [0.3, 0.2, 0.1], len(p.y_test))
    files, manifest = version_payload(p, refits, report, config=cfg.model_dump(), importance=importance)
    figures = version_figures(p, oof, refits, report, importance)
    ref = publish(Registry(store), "cancer", files, manifest, figures)
    registry = Registry(store)
    pinned, manifest, files = registry.fetch(parse_ref(ref))
    assert not any(p.endswith((".png", ".html", ".md")) for p in files)  # `load` reads none of them
    documents = registry.read_documents("cancer", pinned.version or "", manifest)
    return root, ref, manifest, documents, figures


def test_the_page_holds_every_section_and_inlines_every_figure(published):
    _, _, manifest, files, figures = published
    page = files[REPORT_FILE].decode()
    assert f"<title>cancer:{manifest['version']}</title>" in page
    for section in ("metrics", "figures", "members", "importance", "schema", "lineage", "libraries"):
        assert f'<section id="{section}">' in page and f'href="#{section}"' in page
    sources = re.findall(r'<img alt="[^"]*" src="data:image/png;base64,([^"]+)"', page)
    assert sorted(base64.b64decode(s) for s in sources) == sorted(figures.values())  # each figure, whole
    assert (
        len(sources) == 8
    )  # binary: confusion, reliability, ROC, PR, weights, correlation, leaderboard, importance
    assert "<script" not in page and not re.search(r'(href|src)="(https?:|//|file:)', page)
    ensemble = manifest["metrics"]["ensemble"]["log_loss"]
    assert f"held-out log_loss {ensemble:.4f}" in page
    assert f"<td>{manifest['libraries']['scikit-learn']}</td>" in page


def test_accord_models_report_writes_the_published_page(published, tmp_path):
    _, ref, _, files, _ = published
    out = tmp_path / "report.html"
    done = run_cli("models", "report", ref, "-o", str(out))
    assert done.returncode == 0, done.stderr
    assert out.read_bytes() == files[REPORT_FILE]  # one function writes both, whatever the params' order


@pytest.mark.slow
def test_every_figure_renders_and_no_link_is_broken_in_a_real_browser(published, tmp_path):
    from playwright.sync_api import sync_playwright

    _, _, _, files, _ = published
    page_file = tmp_path / "report.html"
    page_file.write_bytes(files[REPORT_FILE])
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium(), args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        failed: list[str] = []
        page.on("requestfailed", lambda r: failed.append(r.url))
        try:
            page.goto(page_file.as_uri())
            sizes = page.eval_on_selector_all(
                "img", "imgs => imgs.map(i => [i.complete, i.naturalWidth, i.naturalHeight])"
            )
            assert len(sizes) == 8 and all(done and w > 200 and h > 100 for done, w, h in sizes)
            targets = page.eval_on_selector_all("a[href]", "links => links.map(a => a.getAttribute('href'))")
            assert len(targets) == 7
            for target in targets:
                assert target.startswith("#") and page.locator(target).count() == 1, target
                page.click(f'a[href="{target}"]')
                assert page.evaluate("location.hash") == target
            assert failed == []
        finally:
            browser.close()
