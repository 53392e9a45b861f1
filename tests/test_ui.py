"""The Prefect UI in headless Debian Chromium: start a satellite run from the deployment's form, see it complete
and find its metrics among the run's artifacts."""

from __future__ import annotations

import importlib.util
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="no /usr/bin/chromium: apt-get install -y chromium"),
    pytest.mark.skipif(importlib.util.find_spec("playwright") is None,
                       reason="playwright is not installed: pip install -e '.[dev]'"),
]


@pytest.fixture
def page(tmp_path: Path):
    """A Chromium page with a fresh profile in the test's temporary folder."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 1000})
        context.set_default_timeout(30_000)
        try:
            page = context.new_page()
            page.problems = []  # failed API calls and console errors, printed when the test fails
            page.on("response", lambda r: r.status >= 400 and page.problems.append(
                f"{r.status} {r.request.method} {r.url}: {r.text()[:300]}"))
            page.on("console", lambda m: m.type == "error" and page.problems.append(f"console: {m.text[:300]}"))
            yield page
        finally:
            context.close()


@contextmanager
def screenshot_on_failure(page, folder: Path) -> Iterator[None]:
    """Save a screenshot of the page when the block fails, and print its path."""
    try:
        yield
    except BaseException:
        shot = folder / "failure.png"
        page.screenshot(path=str(shot))
        print(f"screenshot at failure: {shot} (page {page.url})", *page.problems, sep="\n")
        raise


def wait_for_final_state(page, timeout: float = 240) -> str:
    """Reload the flow run page until its state badge shows a final state; return that state."""
    badge = page.locator(".state-badge").first
    deadline = time.monotonic() + timeout
    while True:
        badge.wait_for()
        state = badge.inner_text().strip()
        if state in {"Completed", "Failed", "Crashed", "Cancelled"} or time.monotonic() > deadline:
            return state
        page.wait_for_timeout(3000)
        page.reload()


def submit(page, tries: int = 3) -> None:
    """Click Submit, and again when the server answers 503: its "busy, retry" (SQLite locked on a loaded machine),
    which Prefect's own client retries and the UI only reports."""
    for attempt in range(tries):
        with page.expect_response(lambda r: r.url.endswith("/create_flow_run")) as answer:
            page.get_by_role("button", name="Submit").click()
        if answer.value.status != 503 or attempt == tries - 1:
            return
        page.wait_for_timeout(2000)


def flow_runs(url: str, deployment_id) -> list:
    """The runs of a deployment that were not scheduled automatically (a sync client: Playwright's sync API
    owns this thread's event loop)."""
    from prefect import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: url}), get_client(sync_client=True) as client:
        flt = DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id]))
        return [r for r in client.read_flow_runs(deployment_filter=flt) if not r.auto_scheduled]


def test_a_satellite_run_started_from_the_ui_completes_with_its_metrics(served, served_deployments, page,
                                                                        tmp_path: Path) -> None:
    assert "satellite-monitoring" in served_deployments, served["log"].read_text()[-3000:]
    deployment_id = served_deployments["satellite-monitoring"].id
    before = {r.id for r in flow_runs(served["url"], deployment_id)}
    with screenshot_on_failure(page, tmp_path):
        page.goto(f"{served['ui']}/deployments")
        page.get_by_role("link", name="satellite-monitoring", exact=True).click()
        page.wait_for_url("**/deployments/deployment/**")

        page.get_by_role("button", name="Run", exact=True).click()
        page.get_by_role("link", name="Custom run").click()
        page.wait_for_url("**/run?**")
        page.get_by_text("where scenes come from", exact=False).wait_for()
        epochs = page.get_by_text("Epochs (Optional)", exact=True).locator("xpath=following::input[1]")
        assert epochs.input_value() == "30"
        epochs.fill("2")
        submit(page)

        page.get_by_role("button", name="View run").last.click()
        page.wait_for_url("**/runs/flow-run/**")
        run_id = re.search(r"/runs/flow-run/([0-9a-f-]{36})", page.url).group(1)
        state = wait_for_final_state(page)
        assert state == "Completed", served["log"].read_text()[-3000:]
        started = [r for r in flow_runs(served["url"], deployment_id) if r.id not in before]
        assert [str(r.id) for r in started] == [run_id], "the form should start exactly one run"
        run = started[0]
        assert run.parameters["params"]["epochs"] == 2

        page.get_by_text("Artifacts", exact=True).click()
        page.get_by_text("satellite-metrics", exact=True).click()
        page.wait_for_url("**/artifacts/artifact/**")
        for text in ("accuracy", "macro_f1", "pixel_logreg", run.name):
            page.get_by_text(text, exact=True).first.wait_for()

        page.go_back()
        page.get_by_text("Artifacts", exact=True).click()
        page.get_by_text("satellite-figures", exact=True).click()
        page.wait_for_url("**/artifacts/artifact/**")
        for name in ("classmap", "confusion_matrix"):
            image = page.locator(f"img[alt='{name}']").first
            image.wait_for()
            assert image.evaluate("img => img.complete && img.naturalWidth") > 0, f"{name} did not render"
