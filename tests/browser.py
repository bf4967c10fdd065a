"""Helpers for the browser tests: a real Streamlit server, and Playwright steps that wait for it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from tests.conftest import ROOT

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = ROOT / "test-artifacts" / "screenshots"
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def streamlit_server(db: Path, *, cwd: Path = ROOT, env: dict[str, str] | None = None,
                     port: int | None = None) -> Iterator[str]:
    """`streamlit run streamlit_app.py` on loopback against a database; yields the base URL."""
    port = port or free_port()
    log = (ARTIFACTS.parent / f"server-{port}.log")
    log.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "streamlit", "run", str(ROOT / "streamlit_app.py"), "--server.port", str(port),
           "--server.address", "127.0.0.1", "--server.headless", "true", "--browser.gatherUsageStats", "false"]
    full_env = {**os.environ, "BACKLINE_DB": str(db), "PYTHONPATH": str(ROOT), **(env or {})}
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=cwd, env=full_env, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if urllib.request.urlopen(f"{base}/_stcore/health", timeout=2).read() == b"ok":
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"streamlit did not start; see {log}:\n{log.read_text()[-3000:]}")
            time.sleep(0.25)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def settle(page, timeout: float = 60_000) -> None:
    """Wait until the app has finished its script run (as Streamlit's own e2e tests do)."""
    page.wait_for_timeout(300)
    page.wait_for_selector("[data-testid=stApp][data-test-script-state=notRunning]", timeout=timeout)
    page.wait_for_timeout(300)


def act_as(page, name: str) -> None:
    """Demo mode: pick a staff member in the sidebar's role switcher."""
    box = page.locator("[data-testid=stSidebar] [data-testid=stSelectbox]").first
    box.locator("input").click()
    page.keyboard.type(name)
    page.locator("[role=option]").first.click()
    settle(page)


def go_to(page, title: str) -> None:
    page.locator("[data-testid=stSidebarNav] a", has_text=title).first.click()
    settle(page)


def screenshot(page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def click_grid_row(page, row: int, grid_index: int = 0) -> None:
    """Click the selection checkbox of a row of a st.dataframe (a canvas grid: by position)."""
    grid = page.locator("[data-testid=stDataFrame]").nth(grid_index)
    grid.scroll_into_view_if_needed()
    box = grid.bounding_box()
    header, height = 35, 35
    page.mouse.click(box["x"] + 14, box["y"] + header + height * row + height / 2)
    settle(page)
