"""`dvc plots show` writes a page that renders with no network: the committed template (.dvc/plots/offline.html,
set as plots.html_template in .dvc/config) inlines vega, vega-lite and vega-embed, which DVC's own page loads from
a CDN. Checked in headless Chromium with every network request refused."""

from __future__ import annotations

import configparser
import inspect
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import dvc_render.html
import dvc_render.vega
import matplotlib.image
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = REPO / ".dvc" / "plots" / "offline.html"
OFFLINE = ["--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=127.0.0.1:9"]  # no name resolves, no proxy


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        message = "headless Chromium not found (Debian: apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found


def screenshot(page: Path, out: Path) -> np.ndarray:
    """The page as headless Chromium draws it offline, after its scripts had 10 s of virtual time: (H, W, 3)."""
    command = [chromium(), "--headless=new", "--no-sandbox", "--disable-gpu", *OFFLINE, "--window-size=1200,900"]
    command += ["--virtual-time-budget=10000", f"--screenshot={out}", page.as_uri()]
    subprocess.run(command, check=True, capture_output=True, timeout=120)
    return matplotlib.image.imread(out)[..., :3]


def drawn_share(image: np.ndarray) -> float:
    """The share of pixels that are not white: a page whose charts did not render is white."""
    return float((image.min(axis=2) < 0.9).mean())


def plots_page(out: Path, *options: str) -> Path:
    """`dvc plots show` of the committed training curves (vega plots only) into `out`."""
    dvc = [sys.executable, "-m", "dvc", "plots", "show", "loss", "accuracy", "-o", str(out), *options]
    subprocess.run(dvc, cwd=REPO, check=True, capture_output=True)
    return out / "index.html"


def test_the_template_inlines_the_libraries_dvc_would_load_from_its_cdn():
    page = TEMPLATE.read_text()
    assert "{plot_divs}" in page and "{scripts}" not in page  # DVC's CDN script tags have nowhere to go
    assert not re.search(r"<script[^>]+src=", page)
    cdn = re.findall(r"cdn\.jsdelivr\.net/npm/([\w-]+)@([\d.]+)", inspect.getsource(dvc_render.vega))
    assert {name for name, _ in cdn} == {"vega", "vega-lite", "vega-embed"}
    for name, version in cdn:  # the versions DVC's renderer writes its specs for
        assert f"/* {name}@{version} */" in page, f"{name}@{version} is not the inlined version"
    config = configparser.ConfigParser()
    config.read(REPO / ".dvc" / "config")
    assert (REPO / ".dvc" / config["plots"]["html_template"]).resolve() == TEMPLATE


def test_dvc_plots_show_renders_the_curves_with_no_network(tmp_path):
    page = plots_page(tmp_path / "offline")
    assert "cdn.jsdelivr" not in page.read_text()
    ours = drawn_share(screenshot(page, tmp_path / "offline.png"))
    # the same plots in DVC's own page, which loads the libraries from the CDN: blank offline
    default = tmp_path / "default.html"
    default.write_text(dvc_render.html.PAGE_HTML)
    theirs = drawn_share(screenshot(plots_page(tmp_path / "cdn", "--html-template", str(default)), tmp_path / "c.png"))
    assert theirs < 0.005, f"DVC's CDN page drew {theirs:.1%} of its pixels offline: is the network really off?"
    assert ours > 0.01, f"the offline page drew {ours:.1%} of its pixels: the charts did not render"
