"""``cosalbench report --format html``: a self-contained page, checked as text and in headless Chromium."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cosalbench.metrics.results_io import collect_results
from tests.browser import Browser, chromium
from tests.faults.conftest import assert_refused, cli
from tests.results_tree import make_tree

METHODS = ["blurry", "noisy", "shifted"]


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory):
    return make_tree(tmp_path_factory.mktemp("html"))


@pytest.fixture(scope="module")
def page(tree, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("page") / "report.html"
    result = cli("report", tree.results, "--out", out, "--pred-root", tree.pred_root, "--data-root",
                 tree.data_root, "--thumbnails", "3")  # fmt: skip
    assert result.returncode == 0, result.stderr
    return out


def test_page_is_self_contained_complete_and_deterministic(tree, page: Path, tmp_path: Path) -> None:
    text = page.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    # nothing fetched from elsewhere: no external src/href, no stylesheet links or imports
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", text)
    assert "<link" not in text and "@import" not in text
    assert "Protocol: pysodmetrics; aggregation: image_mean" in text
    # the summary table holds each method's numbers as the documents give them, the best marked
    docs = {d["method"]: d for d in collect_results([tree.results])}
    best = max(METHODS, key=lambda m: round(docs[m]["image_mean"]["sm"], 3))
    assert f'<td data-v="{docs[best]["image_mean"]["sm"]:.3f}" class="m1">' in text
    # 4 curve panels, a per-group table and thumbnails: 3 groups x 3 images x (image, GT, 3 maps)
    assert text.count('<svg xmlns="http://www.w3.org/2000/svg" class="curve"') == 4
    assert text.count('class="group-row"') == 3
    assert text.count('src="data:image/png;base64,') == 3 * 3 * (2 + len(METHODS))
    assert text.count('class="thumbs"') == 3
    rerun = tmp_path / "again.html"
    result = cli("report", tree.results, "--format", "html", "--out", rerun, "--pred-root", tree.pred_root,
                 "--data-root", tree.data_root, "--thumbnails", "3")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert rerun.read_bytes() == page.read_bytes()


def test_without_maps_the_page_says_how_to_get_thumbnails(tree, tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    assert cli("report", tree.results, "--out", out).returncode == 0
    text = out.read_text(encoding="utf-8")
    assert "data:image/png" not in text and "rerun with --pred-root" in text
    fragment = cli("report", tree.results, "--format", "html-table")
    assert fragment.returncode == 0 and fragment.stdout.startswith("<table>")


def test_wrong_pred_root_or_mixed_protocols_are_refused(tree, tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    assert_refused(cli("report", tree.results, "--out", out, "--pred-root", tmp_path / "nope",
                       "--data-root", tree.data_root), tmp_path / "nope")  # fmt: skip
    other = make_tree(tmp_path / "matlab", protocol="cosal-matlab")
    assert_refused(cli("report", tree.results, other.results, "--out", out), "different protocols")
    assert not out.exists()
    result = cli("report", tree.results, other.results, "--out", out, "--allow-mixed-protocols")
    assert result.returncode == 0, result.stderr
    assert "blurry (cosal-matlab)" in out.read_text(encoding="utf-8")
    # one run scored under two protocols shares its maps: thumbnails are not refused as for seeds
    result = cli("report", tree.results, other.results, "--out", out, "--allow-mixed-protocols", "--pred-root",
                 tree.pred_root, "--data-root", tree.data_root, "--thumbnails", "1")  # fmt: skip
    assert result.returncode == 0, result.stderr


@pytest.mark.skipif(chromium() is None, reason="needs Chromium (CI installs Debian's chromium)")
def test_page_in_headless_chromium_sorts_opens_thumbnails_and_screenshots(
    tree, page: Path, tmp_path: Path
) -> None:
    docs = {d["method"]: d for d in collect_results([tree.results])}
    with Browser(tmp_path / "profile") as browser:
        browser.open(page)
        assert browser.evaluate("document.title") == "cosalbench report"
        rows = "Array.from(document.querySelectorAll('#summary-table tbody th')).map(th => th.textContent)"
        assert browser.evaluate(rows) == METHODS
        # click the MAE header: lower is better, so the first click sorts ascending
        mae_header = "Array.from(document.querySelectorAll('#summary-table thead th')).find(th => th.textContent.startsWith('MAE'))"
        browser.evaluate(f"{mae_header}.click()")
        by_mae = sorted(METHODS, key=lambda m: docs[m]["image_mean"]["mae"])
        assert browser.evaluate(rows) == by_mae
        assert browser.evaluate(f"{mae_header}.getAttribute('data-dir')") == "asc"
        browser.evaluate(f"{mae_header}.click()")
        assert browser.evaluate(rows) == by_mae[::-1]
        # the per-group table sorts by a method's column too
        groups = "Array.from(document.querySelectorAll('#groups-0 tbody th')).map(th => th.textContent)"
        first_s = "document.querySelector('#groups-0 thead tr:nth-child(2) th')"  # Sm of the first method
        browser.evaluate(f"{first_s}.click()")
        per_group = docs[METHODS[0]]["groups"]
        expected = sorted(per_group, key=lambda g: (-round(per_group[g]["metrics"]["sm"], 3), g))
        assert browser.evaluate(groups)[0] == expected[0]
        # thumbnails are hidden until their group is clicked; then its images are decoded and shown
        visible = "Array.from(document.querySelectorAll('.thumbs')).filter(t => !t.hidden).map(t => t.id)"
        assert browser.evaluate(visible) == []
        browser.evaluate("document.querySelector('tr.group-row').click()")
        opened = browser.evaluate(visible)
        assert len(opened) == 1
        images = f"Array.from(document.getElementById('{opened[0]}').querySelectorAll('img'))"
        assert browser.evaluate(f"{images}.length") == 3 * (2 + len(METHODS))
        assert browser.evaluate(f"{images}.every(i => i.complete && i.naturalWidth > 0)")
        assert browser.evaluate(f"document.getElementById('{opened[0]}').getBoundingClientRect().height") > 50
        shot = browser.screenshot(tmp_path / "report.png")
        assert browser.console_errors() == []
        assert all(url.startswith(("file:", "data:")) for url in browser.requested_urls()), (
            browser.requested_urls()
        )
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
