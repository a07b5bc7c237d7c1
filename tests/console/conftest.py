"""A live Pamoja on a free port and Debian's headless Chromium driven by Selenium, for the console's
end-to-end tests. Without the browser (a laptop without `chromium` and `chromium-driver`) they are
skipped; CI installs both and sets PAMOJA_REQUIRE_BROWSER=1, where a missing browser fails instead."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from fastapi import FastAPI
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

from api.main import create_app
from config.settings import Settings

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
# The browser tests take every screenshot and weigh every page on each run; they replace the README's set
# in docs/screenshots only when asked (PAMOJA_SCREENSHOTS=docs, on a fresh test database), because a run
# after other suites shows their data too (dozens of partners on the matches page).
_REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = _REPO / ("docs" if os.environ.get("PAMOJA_SCREENSHOTS") == "docs" else "var") / "screenshots"
PHONE, DESKTOP = (360, 740), (1280, 900)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def live_url(settings: Settings) -> Iterator[str]:
    """The app served by uvicorn in a thread of its own, as `make run` serves it."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    app = create_app(settings.model_copy(update={"public_url": url}))
    # log_config=None: uvicorn leaves the process's logging as Pamoja configured it (one access line, ours).
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False,
                                           lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the live server did not start"
        time.sleep(0.05)
    yield url
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="session")
def chromium() -> Iterator[webdriver.Chrome]:
    if not (os.path.exists(CHROMIUM) and os.path.exists(DRIVER)):
        if os.environ.get("PAMOJA_REQUIRE_BROWSER"):
            pytest.fail("chromium and chromium-driver are required here (apt-get install chromium chromium-driver)")
        pytest.skip("no chromium/chromedriver on this machine (apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     f"--window-size={PHONE[0]},{PHONE[1]}", "--lang=en-GB"):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(DRIVER))
    driver.implicitly_wait(0)
    yield driver
    driver.quit()


@pytest.fixture
async def summaries_written(app: FastAPI) -> None:
    """Selenium's calls block the test's event loop, which also runs the session app's background work. A
    refused-read summary waiting for its window to end (api/graphql/read_audit.py), left by an earlier
    suite's probes, could start its write, take the audit chain's lock, and keep it across a blocked
    loop: the live server's next audit write then waited until the statement timeout (a browser test
    failed that way when it ran after the matrix and safety suites). Such summaries are written first."""
    await app.state.pamoja.refused_reads.close()


@pytest.fixture
def browser(chromium: webdriver.Chrome, summaries_written: None) -> Iterator[webdriver.Chrome]:
    """A fresh browser state per test: no cookies left from another test's person."""
    chromium.delete_all_cookies()
    chromium.set_window_size(*PHONE)
    yield chromium
    chromium.delete_all_cookies()
