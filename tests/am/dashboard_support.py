"""Driving the dashboard in Debian's headless chromium (playwright, never a downloaded
browser), reading the data behind its charts, and writing its screenshots."""
from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator

REPO = Path(__file__).resolve().parents[2]
OUTPUT = REPO / "tests" / "output"  # git-ignored
CHROMIUM = "/usr/bin/chromium"
CHARTS = ("fleet", "load", "queue", "rate", "models")

# What each uPlot chart holds: its series' labels and data arrays (x first).
CHART_DATA_JS = """() => Object.fromEntries(Object.entries(window.tarnCharts || {}).map(([name, u]) => [name, {
    labels: u.series.slice(1).map(s => s.label),
    xs: Array.from(u.data[0] || []),
    ys: u.data.slice(1).map(ys => Array.from(ys)),
}]))"""


@contextlib.contextmanager
def chromium_page(base_url: str) -> Iterator[tuple]:
    """A page, and the list of every URL it requested outside ``base_url`` (offline: none)."""
    import playwright.sync_api as playwright  # installed by tests/requirements.txt

    assert os.path.exists(CHROMIUM), "Debian's chromium is missing: deploy/local/install-deps installs it"
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1800})
            elsewhere: list = []
            page.on("request", lambda r: None if r.url.startswith(base_url) else elsewhere.append(r.url))
            errors: list = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            yield page, elsewhere, errors
        finally:
            browser.close()


def chart_data(page) -> dict:
    return page.evaluate(CHART_DATA_JS)


def refreshes(page) -> int:
    return int(page.get_attribute("#updated", "data-refreshes") or 0)


def screenshot(page, name: str) -> Path:
    OUTPUT.mkdir(parents=True, exist_ok=True)
    path = OUTPUT / name
    page.screenshot(path=str(path), full_page=True)
    print(f"\ndashboard screenshot: {path}")
    return path
