"""Open an HTML report in a real headless browser: Debian's chromium driven by its chromedriver through
Selenium (both installed by `make setup`; nothing is downloaded at run time).

    python -m tests.browser reports/index.html --screenshot out.png

prints what open_report returns as JSON; problems() lists what is wrong with it.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

WINDOW = (1280, 900)
SELECTION_TABLE = "selection"  # id of the table of the variants reports/selection.json picks (index.html.j2)
INSTALL = "install the Debian packages chromium and chromium-driver (`make setup` does)"

# Runs before any script of the page: keeps uncaught errors and unhandled rejections for open_report.
CATCH_ERRORS = """
window.__jsErrors = [];
window.addEventListener('error', e => {
  if (e instanceof ErrorEvent) window.__jsErrors.push(`${e.message} (${e.filename}:${e.lineno})`);
}, true);
window.addEventListener('unhandledrejection', e => window.__jsErrors.push(`unhandled rejection: ${e.reason}`));
"""

INSPECT = """
const table = document.getElementById(arguments[0]);
return {
  title: document.title,
  js_errors: window.__jsErrors || [],
  images: Array.from(document.images, i => ({src: i.getAttribute('src').slice(0, 40), alt: i.alt,
                                             complete: i.complete, natural_width: i.naturalWidth})),
  selection_table: table !== null && table.tagName === 'TABLE',
  selection_rows: table && table.tagName === 'TABLE' ? table.rows.length : 0,
};
"""


def _executable(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f"{name} not found on PATH: {INSTALL}")
    return path


def open_report(html_path, screenshot_path) -> dict:
    """Load html_path from file:// in headless chromium and save a PNG of the first screen to screenshot_path.
    Returns the page title, the console messages of level SEVERE, the uncaught JS errors, every <img>
    (src prefix, alt, complete, natural_width), whether the selection table is there and its row count."""
    html_path, screenshot_path = Path(html_path).resolve(), Path(screenshot_path)
    if not html_path.is_file():
        raise FileNotFoundError(f"{html_path}: no such report to open")
    chromium, chromedriver = _executable("chromium"), _executable("chromedriver")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError as exc:
        raise RuntimeError(f"selenium is not installed ({exc}): pip install -e '.[test]'") from exc

    options = webdriver.ChromeOptions()
    options.binary_location = chromium  # with the driver's path below, Selenium Manager never runs
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-extensions", f"--window-size={WINDOW[0]},{WINDOW[1]}"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=chromedriver), options=options)
    try:
        driver.set_page_load_timeout(60)
        driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": CATCH_ERRORS})
        # the window size includes the browser's frame: fix the viewport itself, so the first screen is WINDOW
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                               {"width": WINDOW[0], "height": WINDOW[1], "deviceScaleFactor": 1, "mobile": False})
        driver.get(html_path.as_uri())  # returns after the load event: every <img> has loaded or failed
        found = driver.execute_script(INSPECT, SELECTION_TABLE)
        console = driver.get_log("browser")
        screenshot_path.parent.mkdir(parents=True, exist_ok=True)
        if not driver.save_screenshot(str(screenshot_path)):
            raise RuntimeError(f"{screenshot_path}: chromium could not save the screenshot")
    finally:
        driver.quit()
    return {"url": html_path.as_uri(), "title": found["title"],
            "console_errors": [e["message"] for e in console if e["level"] == "SEVERE"],
            "js_errors": found["js_errors"], "images": found["images"],
            "selection_table": found["selection_table"], "selection_rows": found["selection_rows"],
            "screenshot": str(screenshot_path), "screenshot_bytes": screenshot_path.stat().st_size}


def problems(result: dict) -> list[str]:
    """What a report that opens cleanly must not show; empty when all is well."""
    out = [f"console error: {m}" for m in result["console_errors"]]
    out += [f"JS error: {m}" for m in result["js_errors"]]
    if not result["images"]:
        out.append("no <img> on the page")
    out += [f"image not loaded (naturalWidth 0): alt={i['alt']!r} src={i['src']!r}"
            for i in result["images"] if i["natural_width"] <= 0]
    if not result["selection_table"]:
        out.append(f"no <table id={SELECTION_TABLE!r}> (the selection table)")
    if not result["screenshot_bytes"]:
        out.append(f"{result['screenshot']}: empty screenshot")
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("html", help="the report to open, e.g. reports/index.html")
    parser.add_argument("--screenshot", default="report-first-screen.png", help="PNG of the first screen")
    args = parser.parse_args(argv)
    result = open_report(args.html, args.screenshot)
    result["problems"] = problems(result)
    print(json.dumps(result, indent=2))
    return 1 if result["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
