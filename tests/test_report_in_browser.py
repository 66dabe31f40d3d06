"""reports/index.html opened in headless chromium (tests/browser.py): no console or JS error, every image
decoded, the selection table there; the first screen is kept as tests/artifacts/report-first-screen.png."""
import pytest

from tests.browser import open_report, problems
from tests.conftest import ROOT
from tests.test_html_report import _build, _params, _synthetic

ARTIFACTS = ROOT / "tests" / "artifacts"


@pytest.fixture(scope="module")
def opened(tmp_path_factory):
    """The page of tests/test_html_report.py's `full` fixture (every section filled), opened in the browser."""
    root = tmp_path_factory.mktemp("full")
    _synthetic(root)
    with pytest.MonkeyPatch.context() as mp:
        _build(root, mp, _params())
    return open_report(root / "reports/index.html", ARTIFACTS / "report-first-screen.png")


def test_the_report_opens_without_errors_with_every_image_and_the_selection_table(opened):
    assert not opened["console_errors"], f"console errors: {opened['console_errors']}"
    assert not opened["js_errors"], f"JS errors: {opened['js_errors']}"
    assert len(opened["images"]) == 6, opened["images"]  # as tests/test_html_report.py counts them
    assert all(i["complete"] and i["natural_width"] > 0 for i in opened["images"]), opened["images"]
    assert opened["selection_table"] and opened["selection_rows"] == 3, opened  # header + digits + machine_faults
    assert opened["title"] == "edge-ssl report"
    assert not problems(opened)


def test_the_first_screen_is_saved_as_a_png(opened):
    shot = ARTIFACTS / "report-first-screen.png"
    assert opened["screenshot"] == str(shot) and opened["screenshot_bytes"] > 0
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"{shot}: not a PNG"


def test_a_broken_image_and_a_script_error_are_caught(tmp_path):
    page = tmp_path / "broken.html"
    page.write_text("<!DOCTYPE html><html><head><title>broken</title></head><body>"
                    '<img src="data:image/png;base64,AAAA" alt="broken">'
                    "<script>throw new Error('x')</script></body></html>")
    result = open_report(page, tmp_path / "broken.png")
    assert any("Error: x" in m for m in result["console_errors"]), result["console_errors"]
    assert any("Error: x" in m for m in result["js_errors"]), result["js_errors"]
    assert [i["natural_width"] for i in result["images"]] == [0], result["images"]
    assert not result["selection_table"]
    found = problems(result)
    assert any("image not loaded" in p for p in found) and any("selection table" in p for p in found), found
