"""A headless Chromium for the tests that look at a page as a person would (the local
workspace, report.html), and where their screenshots go.

The browser comes from Debian's chromium and chromium-driver (`.ci/run` installs them);
without them, or when Chromium will not start, the test is skipped and says why. A
screenshot shown in the docs is written there only when ``JIT_UPDATE_DOCS_IMAGES=1``:
an ordinary run never rewrites a tracked file.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.fakes.processes import REPO

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
from selenium.common.exceptions import WebDriverException  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
DOCS_IMAGES = REPO / "docs" / "images"


@contextmanager
def headless_chromium(window: str, *, logs: bool = False) -> Iterator[WebDriver]:
    """Chromium at ``window`` ("1280,1280"); with ``logs``, every request the page makes
    and what its console says are kept for the test to read."""
    if CHROMIUM is None or CHROMEDRIVER is None:
        pytest.skip("no headless browser: install Debian's chromium and chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        f"--window-size={window}",
        "--disable-gpu",
    ):
        options.add_argument(argument)
    if logs:
        options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    try:
        driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(CHROMEDRIVER))
    except WebDriverException as exc:
        pytest.skip(f"chromium would not start: {exc.msg}")
    try:
        yield driver
    finally:
        driver.quit()


def screenshot_path(name: str, tmp_path: Path) -> Path:
    """docs/images/``name`` when JIT_UPDATE_DOCS_IMAGES=1, else a file of the test's own."""
    if os.environ.get("JIT_UPDATE_DOCS_IMAGES") == "1":
        DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
        return DOCS_IMAGES / name
    return tmp_path / name
