"""The HTML report of `softreg report`, opened in a real browser (headless Chromium).

Skips where Chromium is not installed (a developer's machine), with the reason; fails instead
when the environment variable CI is "true", so that CI never passes without running it
(.ci/run installs Debian's chromium package when it is missing).
"""

import io
import os

import numpy as np
import pytest
from click.testing import CliRunner
from sklearn.datasets import load_iris

from _chromium import find_chromium, visit  # tests/ has no __init__.py: pytest puts it on sys.path
from softreg import cli

matplotlib_image = pytest.importorskip("matplotlib.image")


@pytest.fixture(scope="module")
def chromium():
    binary = find_chromium()
    if binary is None:
        reason = "Chromium is not installed (Debian: apt-get install chromium)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; CI must run the browser test.")
        pytest.skip(reason)
    return binary


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """`softreg fit` and `softreg report` on iris, as a user would run them."""
    root = tmp_path_factory.mktemp("browser")
    iris = load_iris(as_frame=True)
    frame = iris.frame.rename(columns={"target": "species"})
    frame.to_csv(root / "iris.csv", index=False)
    runner = CliRunner()
    for args in (
        ["fit", root / "iris.csv", "-t", "species", "--alpha", "0.01", "-o", root / "m.softreg"],
        ["report", root / "m.softreg", root / "iris.csv", "-o", root / "report.html"],
    ):
        result = runner.invoke(cli.main, [str(arg) for arg in args])
        assert result.exit_code == 0, result.output
    return root / "report.html"


@pytest.fixture(scope="module")
def page(chromium, report):
    return visit(report, chromium)


def test_every_image_decodes(page):
    # The report has four figures (training curves, reliability, confusion, surprisal), each
    # drawn at a few hundred pixels a side.
    assert len(page.images) == 4
    for width, height, error in page.images:
        assert error is None and width >= 100 and height >= 100


def test_the_page_requests_nothing_but_itself_and_its_inline_images(page, report):
    # data: URLs are the inline PNGs; any http(s), ws or other file request would be a leak.
    others = [url for url in page.requests if not url.startswith("data:image/png;base64,")]
    assert others == [report.resolve().as_uri()]


def test_the_console_shows_no_error(page):
    assert page.console_errors == []


def test_the_screenshot_is_not_blank(page):
    pixels = matplotlib_image.imread(io.BytesIO(page.screenshot), format="png")
    assert pixels.shape[0] >= 400 and pixels.shape[1] >= 800
    rgb = pixels[..., :3].reshape(-1, 3)
    # Text and figures: some dark pixels, many distinct colours, yet mostly white page.
    dark = np.mean(rgb.max(axis=1) < 0.5)
    assert 0.005 < dark < 0.5
    assert len(np.unique(np.round(rgb * 255), axis=0)) > 50
