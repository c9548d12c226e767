"""A headless-browser harness for the Dagster UI: start the webserver, drive Debian's Chromium, keep screenshots.

Chromium and chromedriver come from the system (`apt-get install chromium chromium-driver`, as .ci/run does);
nothing is downloaded at test time. Selenium talks to /usr/bin/chromedriver directly, so Selenium Manager never
runs. Reusable pieces for further UI tests:

- `start_dagster_ui(env)`: a context manager that serves the project's definitions on a free loopback port
  against `env["DAGSTER_HOME"]` and yields the base URL once it answers (`serve_dagster_ui` starts it without
  waiting, so a fixture can prepare data meanwhile; `graphql(url, query)` asks it directly);
- `chromium()`: a context manager yielding a headless WebDriver with a fresh profile;
- `open_page(driver, url, css)`: load a page and wait for a selector; `show_markdown(driver, label)` opens a
  Markdown metadata entry; `image_loaded(driver, img)`; `screenshot(driver, name)`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from der_assets import config

CHROMIUM = os.environ.get("DER_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("DER_CHROMEDRIVER", "/usr/bin/chromedriver")
REQUIRE_ENV = "DER_REQUIRE_BROWSER"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--window-size=1400,1000"]
# where screenshots are kept: the session's data home (`make test`: .der, which CI keeps), read at import,
# before each test gets a temporary data home of its own
SCREENSHOT_DIR = config.data_home() / "artifacts" / "screenshots"
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def missing_browser() -> str | None:
    """Why the browser tests cannot run here (None when they can)."""
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not (Path(path).is_file() and os.access(path, os.X_OK)):
            return f"{path} not found: install Debian's {package} (apt-get install -y chromium chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "the selenium package is not installed (pip install -e '.[dev]')"
    return None


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _venv_bin(name: str) -> str:
    found = shutil.which(name, path=str(Path(sys.executable).parent))
    if not found:
        raise FileNotFoundError(f"{name} not found next to {sys.executable}")
    return found


def write_workspace(dagster_home: Path, module: str = "der_assets.definitions") -> Path:
    """The instance (the project's dagster.yaml) and a workspace naming the project's definitions."""
    dagster_home.mkdir(parents=True, exist_ok=True)
    if not (dagster_home / "dagster.yaml").exists():
        shutil.copyfile(PROJECT_ROOT / "dagster.yaml", dagster_home / "dagster.yaml")
    workspace = dagster_home / "workspace.yaml"
    workspace.write_text(f"load_from:\n  - python_module:\n      module_name: {module}\n"
                         f"      location_name: der_assets\n")
    return workspace


def create_storage(dagster_home: Path) -> None:
    """Create the instance's SQLite storage before two processes (the webserver and the test's runs) race to
    create the same tables ('table instigators already exists')."""
    import dagster as dg

    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        # each storage is built, and its tables created, when first asked for
        assert instance.run_storage and instance.event_log_storage and instance.schedule_storage
        instance.get_runs(limit=1)
        instance.all_instigator_state()


def _wait_ready(url: str, proc: subprocess.Popen, log: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"dagster-webserver exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/server_info", timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.25)
    raise TimeoutError(f"dagster-webserver not ready at {url} after {timeout_s:.0f} s:\n{log.read_text()[-3000:]}")


class DagsterUI:
    """A dagster-webserver process serving the project's definitions: its URL, and its log for failures."""

    def __init__(self, url: str, proc: subprocess.Popen, log: Path):
        self.url, self.proc, self.log = url, proc, log

    def wait_ready(self, timeout_s: float = 60.0) -> str:
        """Block until /server_info answers, dismiss the first-visit community dialog; return the URL."""
        _wait_ready(self.url, self.proc, self.log, timeout_s)
        graphql(self.url, "mutation SetNuxSeen { setNuxSeen }")  # no 'Join the community' dialog over pages
        return self.url


@contextlib.contextmanager
def serve_dagster_ui(env: dict[str, str], *, module: str = "der_assets.definitions") -> Iterator[DagsterUI]:
    """Start dagster-webserver for `module` against env["DAGSTER_HOME"] on a free 127.0.0.1 port, without waiting.

    Lets a fixture prepare data while the webserver loads the code location. Output goes to
    <DAGSTER_HOME>/webserver.log. On exit the process group is stopped (SIGTERM, SIGKILL after 5 s), so the
    code server it spawned stops with it.
    """
    dagster_home = Path(env["DAGSTER_HOME"])
    workspace = write_workspace(dagster_home, module)
    create_storage(dagster_home)
    port = free_port()
    log = dagster_home / "webserver.log"
    env = {**env, "DAGSTER_DISABLE_TELEMETRY": "1", "GX_ANALYTICS_ENABLED": "false"}
    with open(log, "ab") as out:
        proc = subprocess.Popen([_venv_bin("dagster-webserver"), "-h", "127.0.0.1", "-p", str(port),
                                 "-w", str(workspace)], env=env, stdout=out, stderr=subprocess.STDOUT,
                                cwd=str(dagster_home), start_new_session=True)
    try:
        yield DagsterUI(f"http://127.0.0.1:{port}", proc, log)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


@contextlib.contextmanager
def start_dagster_ui(env: dict[str, str], *, module: str = "der_assets.definitions",
                     timeout_s: float = 60.0) -> Iterator[str]:
    """The Dagster UI for `module` against env["DAGSTER_HOME"], ready; yields its base URL."""
    with serve_dagster_ui(env, module=module) as ui:
        yield ui.wait_ready(timeout_s)


def graphql(url: str, query: str, variables: dict | None = None) -> dict:
    """POST a GraphQL query to the webserver; the `data` of the answer (errors raise)."""
    import json

    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    req = urllib.request.Request(f"{url}/graphql", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        answer = json.loads(resp.read())
    if answer.get("errors"):
        raise RuntimeError(f"GraphQL errors from {url}: {answer['errors']}")
    return answer["data"]


@contextlib.contextmanager
def chromium(*, page_load_timeout_s: float = 30.0) -> Iterator:
    """A headless Chromium WebDriver with a fresh profile in a temporary folder, quit on exit."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    reason = missing_browser()
    if reason:
        raise RuntimeError(reason)
    profile = tempfile.mkdtemp(prefix="der-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in [*CHROMIUM_FLAGS, f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(page_load_timeout_s)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def wait_for(driver, css: str, *, timeout_s: float = 30.0, visible: bool = True):
    """The first element matching `css` once it is present (and visible), else TimeoutException."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    condition = ec.visibility_of_element_located if visible else ec.presence_of_element_located
    return WebDriverWait(driver, timeout_s).until(condition((By.CSS_SELECTOR, css)))


def open_page(driver, url: str, css: str, *, timeout_s: float = 30.0):
    """Load `url` and wait until `css` matches a visible element; return that element."""
    driver.get(url)
    return wait_for(driver, css, timeout_s=timeout_s)


def click_xpath(driver, xpath: str, *, timeout_s: float = 30.0):
    """Scroll to and click the first element matching `xpath` once it is clickable."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    element = WebDriverWait(driver, timeout_s).until(ec.element_to_be_clickable((By.XPATH, xpath)))
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", element)
    element.click()
    return element


def click_text(driver, text: str, *, timeout_s: float = 30.0, tag: str = "*"):
    """Click the first visible element whose own text is exactly `text`."""
    return click_xpath(driver, f"//{tag}[normalize-space(text())={_xpath_literal(text)}]", timeout_s=timeout_s)


def show_markdown(driver, label: str, *, timeout_s: float = 30.0):
    """Open a Markdown metadata entry: the UI shows a long value (an inline image) as '[Show Markdown]' in the
    entry's row, which opens a dialog; returns the dialog once it is visible."""
    row = f"//tr[td[1][normalize-space()={_xpath_literal(label)}]]"
    click_xpath(driver, f"{row}//*[normalize-space(text())='[Show Markdown]']", timeout_s=timeout_s)
    return wait_for(driver, ".bp5-dialog", timeout_s=timeout_s)


def _xpath_literal(text: str) -> str:
    return f"'{text}'" if "'" not in text else f'"{text}"'


def image_loaded(driver, element) -> tuple[int, int]:
    """(naturalWidth, naturalHeight) once the <img> finished loading; (0, 0) for a broken image."""
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, 15).until(lambda d: d.execute_script("return arguments[0].complete;", element))
    return tuple(driver.execute_script("return [arguments[0].naturalWidth, arguments[0].naturalHeight];", element))


def screenshot(driver, name: str, folder: Path | None = None) -> Path:
    """Save a PNG of the current page as <folder>/<name>.png (default: the data home's artifacts/screenshots)."""
    folder = Path(folder or SCREENSHOT_DIR)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    driver.save_screenshot(str(path))
    return path
