"""The VisualDL board, opened in a real headless Chromium, shows a run's scalars."""
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from paddle_resnet.config import load_config
from paddle_resnet.engine.trainer import Trainer

pytestmark = [pytest.mark.slow, pytest.mark.browser]

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
# Flags for a root, offline, display-less machine: no sandbox, no GPU, and no background
# connections (the closed network refuses them, slowly).
CHROMIUM_FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--hide-scrollbars",
                  "--lang=en-US", "--window-size=1400,1000"]
SCREENSHOT_DIR = os.environ.get("BOARD_SCREENSHOT_DIR")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, seconds: float = 60) -> None:
    # VisualDL 2.5.3 answers 500 to a page request without Accept-Language; browsers send it.
    request = urllib.request.Request(url, headers={"Accept-Language": "en-US,en"})
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.5)


def open_browser(profile):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS + [f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    # An explicit driver path: Selenium then never tries to download one.
    return webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)


@pytest.fixture
def board(tiny_cifar10, tmp_path):
    missing = [name for name, path in (("chromium", CHROMIUM), ("chromium-driver", CHROMEDRIVER))
               if path is None]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("selenium (pip)")
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"{', '.join(missing)} missing; .ci/run installs them")
        pytest.skip(f"{', '.join(missing)} not installed (apt-get install chromium "
                    "chromium-driver; pip install selenium)")
    root = tmp_path / "output"
    Trainer(load_config(None, [f"data.data_file={tiny_cifar10}", f"output_dir={root / 'quick'}",
                               "train.epochs=2", "train.batch_size=32", "train.log_every=2",
                               "data.test_samples=40"])).fit()
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-c", "from visualdl.server.app import main; main()", "--logdir",
         str(root), "--host", "127.0.0.1", "--port", str(port), "--disable-telemetry"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(f"http://127.0.0.1:{port}/app/scalar")
        yield f"http://127.0.0.1:{port}", tmp_path
    finally:
        server.terminate()
        server.wait(timeout=30)


def api_requests(browser):
    """What the page itself fetched: VisualDL draws charts on canvases, so a chart's tag is
    visible in the DOM only through the data request behind it."""
    from urllib.parse import unquote
    names = browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)")
    return [unquote(name) for name in names if "/api/" in name]


def test_scalar_page_shows_the_run(board):
    from selenium.webdriver.common.by import By
    url, tmp_path = board
    browser = open_browser(tmp_path / "profile")
    try:
        browser.get(f"{url}/app/scalar")
        deadline = time.monotonic() + 60
        while not any("tag=eval/top1" in r for r in api_requests(browser)):
            assert time.monotonic() < deadline, (
                f"no eval/top1 chart; fetched {api_requests(browser)}")
            time.sleep(0.5)
        # The first tag group (eval) is open with its charts; the others are listed.
        requested = api_requests(browser)
        for tag in ("eval/loss", "eval/top1", "eval/top5"):
            assert any(f"tag={tag}" in r and "/output/quick" in r for r in requested), tag
        lines = browser.find_element(By.TAG_NAME, "body").text.split("\n")
        for group in ("eval", "train", "train_epoch", "grad_norm", "weight_norm", "time"):
            assert group in lines, f"tag group {group} not on the scalar page"
        assert any(line.endswith("/output/quick") for line in lines), "run not listed"
        assert len(browser.find_elements(By.TAG_NAME, "canvas")) >= 3, "charts not drawn"
        time.sleep(2)  # let the charts finish their entry animation
        screenshot = os.path.join(SCREENSHOT_DIR or str(tmp_path), "visualdl_scalars.png")
        assert browser.save_screenshot(screenshot)
        assert os.path.getsize(screenshot) > 20_000
    finally:
        browser.quit()
