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
def streamlit_server(db: Path | None, *, cwd: Path = ROOT, env: dict[str, str] | None = None,
                     port: int | None = None) -> Iterator[str]:
    """`streamlit run streamlit_app.py` on loopback against a database file (or, with ``db`` None,
    the PostgreSQL store that ``env``'s BACKLINE_DATABASE_URL names); yields the base URL."""
    port = port or free_port()
    log = (ARTIFACTS.parent / f"server-{port}.log")
    log.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "streamlit", "run", str(ROOT / "streamlit_app.py"), "--server.port", str(port),
           "--server.address", "127.0.0.1", "--server.headless", "true", "--browser.gatherUsageStats", "false"]
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    if db is not None:
        full_env["BACKLINE_DB"] = str(db)
        full_env.pop("BACKLINE_DATABASE_URL", None)
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


# The app's finished script runs, as the server announces them to the page over its websocket
# (Streamlit's own ``script_finished`` message, read with Streamlit's own protobuf classes): a run
# that ends quicker than the page can redraw is counted all the same. Installed on every page before
# it loads (tests/conftest.py). Fragment runs (the live queue's refresh) are not counted.
_FULL_RUN_ENDS = (0, 1)  # FINISHED_SUCCESSFULLY, FINISHED_WITH_COMPILE_ERROR
_RUNS: dict[int, list[int]] = {}  # id(page) -> [runs finished, runs seen by the last settle]


def count_runs(page) -> None:
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

    counter = _RUNS.setdefault(id(page), [0, 0])

    def received(payload) -> None:
        if not isinstance(payload, (bytes, bytearray)):
            return
        msg = ForwardMsg()
        try:
            msg.ParseFromString(bytes(payload))
        except Exception:  # noqa: BLE001 - not a ForwardMsg: nothing to count
            return
        if msg.WhichOneof("type") == "script_finished" and msg.script_finished in _FULL_RUN_ENDS:
            counter[0] += 1

    page.on("websocket", lambda ws: ws.on("framereceived", received))


def settle(page, timeout: float = 60_000, *, rerun: bool = True) -> None:
    """Wait until a script run has finished since the last settle (a page load, a click or an entry
    that reruns the app), then until the app is idle. ``rerun=False`` after a step that runs nothing
    on the server (a tab, an expander): only the idle state is awaited."""
    counter = _RUNS.setdefault(id(page), [0, 0])
    if rerun:
        deadline = time.monotonic() + timeout / 1000
        while counter[0] <= counter[1]:
            if time.monotonic() > deadline:
                raise AssertionError(f"no script run finished within {timeout / 1000:.0f} s")
            page.wait_for_timeout(25)  # lets Playwright deliver the websocket's messages
    page.wait_for_selector("[data-testid=stApp][data-test-script-state=notRunning]", timeout=timeout)
    counter[1] = counter[0]


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


def scroll_to(locator, attempts: int = 3) -> None:
    """Scroll an element into view; the live queue redraws itself every few seconds, so an element
    found just before a redraw is looked up again."""
    from playwright.sync_api import Error

    for attempt in range(attempts):
        try:
            locator.scroll_into_view_if_needed()
            return
        except Error as exc:
            if "not attached" not in str(exc) or attempt == attempts - 1:
                raise


def stable_box(page, locator, timeout: float = 10.0) -> dict:
    """The element's box once the layout has stopped moving (the same over two animation frames):
    a canvas grid is clicked by position, so a box read mid-layout would click the wrong row."""
    deadline = time.monotonic() + timeout
    box = locator.bounding_box()
    while time.monotonic() < deadline:
        page.evaluate("() => new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)))")
        again = locator.bounding_box()
        if again == box and box is not None:
            return box
        box = again
    raise AssertionError(f"the element kept moving for {timeout} s")


def click_grid_row(page, row: int, grid_index: int = 0) -> None:
    """Click the selection checkbox of a row of a st.dataframe (a canvas grid: by position)."""
    grid = page.locator("[data-testid=stDataFrame]").nth(grid_index)
    scroll_to(grid)
    box = stable_box(page, grid)
    header, height = 35, 35
    page.mouse.click(box["x"] + 14, box["y"] + header + height * row + height / 2)
    settle(page)
