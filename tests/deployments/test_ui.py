"""The Prefect UI in headless Chromium: find the train deployment, start a custom run, see its artifacts.

Chromium comes from Debian's package (installed here if missing and possible) and is driven
by Playwright's Python package with ``executable_path``; no browser is downloaded from the web.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from accord.registry.store import Registry
from deployments.definitions import TRAIN
from tests.support.browser import CHROMIUM_FLAGS
from tests.support.browser import chromium as _chromium

pytestmark = pytest.mark.slow  # every test here runs a flow or starts a cluster

TRASH_ICON = 'button:has(path[d^="m14.74 9"])'


def _property(page, label: str):  # type: ignore[no-untyped-def]
    """The innermost form property whose label starts with `label` (the last in document order)."""
    title = page.locator("span.schema-form-property__label", has_text=re.compile(f"^{re.escape(label)}"))
    return page.locator("div.schema-form-property", has=title).last


def test_start_a_custom_run_from_the_ui_and_see_its_artifacts(served, tmp_path: Path):
    from playwright.sync_api import expect, sync_playwright

    api, store, _ = served
    chromium = _chromium()
    ui = os.environ["PREFECT_API_URL"].removesuffix("/api")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(30_000)
        try:
            page.goto(f"{ui}/deployments")
            page.get_by_role("link", name=TRAIN.split("/")[1], exact=True).click()
            page.get_by_role("button", name="Run", exact=True).click()
            page.get_by_text("Custom run").click()
            # Shrink the default run to seconds and rename it: edit the form as a person would.
            _property(page, "Data").locator("textarea, input").first.fill("sklearn:iris")
            members = _property(page, "Members")
            expect(members.locator(TRASH_ICON)).to_have_count(7)
            for remaining in range(7, 2, -1):  # keep logreg and random_forest
                members.locator(TRASH_ICON).last.click()
                expect(members.locator(TRASH_ICON)).to_have_count(remaining - 1)
            _property(page, "Folds").locator("input").first.fill("2")
            _property(page, "Workers").locator("input").first.fill("1")
            _property(page, "Name").locator("textarea, input").first.fill("from-browser")
            page.get_by_role("button", name="Submit").click()
            page.wait_for_url(re.compile(r".*/deployments/deployment/[0-9a-f-]{36}(\?.*)?$"))
            deployment_id = api.deployment(TRAIN)["id"]
            runs = api.filter("flow_runs", {"flow_runs": {"deployment_id": {"any_": [deployment_id]}}})
            mine = [r for r in runs if r["parameters"]["config"]["name"] == "from-browser"]
            assert len(mine) == 1, "the form submitted one run with the changed name"
            run = api.wait(mine[0]["id"], timeout=300)
            assert run["state_type"] == "COMPLETED", run["state"]
            config = run["parameters"]["config"]
            assert config["name"] == "from-browser" and config["folds"] == 2
            assert [m["kind"] for m in config["members"]] == ["logreg", "random_forest"]
            versions = Registry(store).versions("from-browser")
            assert len(versions) == 1
            page.goto(f"{ui}/runs/flow-run/{run['id']}")
            expect(page.get_by_text("Completed").first).to_be_visible()
            expect(page.get_by_text(re.compile(r"on worker tcp://")).first).to_be_visible()  # worker logs
            page.get_by_text("Artifacts", exact=True).click()
            for key in ("from-browser-leaderboard", "from-browser-weights", "from-browser-summary"):
                expect(page.get_by_text(key).first).to_be_visible()
        finally:
            page.screenshot(path=str(tmp_path / "last.png"), full_page=True)
            browser.close()
