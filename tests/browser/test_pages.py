"""Open every page of the built book in headless Chromium: it must load, every image must be non-empty, every
notebook page must show a figure, math must render (offline MathJax), and the console must show no errors other
than the favicon. Screenshots go to _build/screenshots/ for review.

Runs after the book is built (``make test`` does so); skipped, with the reason, when Chromium or the built book is
absent.
"""
import os
import shutil
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
HTML = ROOT / "_build/html"
SHOTS = ROOT / "_build/screenshots"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run"]


def toc_pages() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc.get("parts", []):
        files += [c["file"] for c in part.get("chapters", [])]
    return files


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium): browser check skipped")
    if not (HTML / "index.html").exists():
        pytest.skip("the book is not built (_build/html/index.html missing): run jupyter-book build . first")
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield b
        b.close()


@pytest.mark.parametrize("page_file", toc_pages())
def test_page_renders(browser, page_file):
    path = HTML / f"{page_file}.html"
    assert path.exists(), f"{page_file} has no built page {path}"
    page = browser.new_page(viewport={"width": 1280, "height": 1400})
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("requestfailed", lambda r: errors.append(f"request failed: {r.url}"))
    response = page.goto(path.as_uri(), wait_until="load")
    assert response is None or response.ok, f"{page_file}: load failed"
    images = page.eval_on_selector_all(
        "img", "els => els.map(e => ({src: e.getAttribute('src'), ok: e.complete, w: e.naturalWidth, "
               "h: e.naturalHeight}))")
    broken = [i["src"] for i in images if not i["ok"] or i["w"] == 0 or i["h"] == 0]
    assert not broken, f"{page_file}: missing or empty images {broken}"
    if page_file.startswith("notebooks/"):
        figures = page.eval_on_selector_all(".cell_output img", "els => els.length")
        assert figures > 0, f"{page_file}: no figure output on a notebook page"
    if page.eval_on_selector_all(".math", "els => els.length"):   # MathJax typesets after load
        page.wait_for_selector("mjx-container", state="attached", timeout=15_000)
    if not os.environ.get("WMASK_REPO_URL"):   # no repository set: no repository or launch buttons (dead links)
        hrefs = page.eval_on_selector_all("a[href]", "els => els.map(e => e.href)")
        dead = [h for h in hrefs if any(s in h for s in ("mybinder.org", "colab.research.google", "github.com/wmask"))]
        assert not dead, f"{page_file}: links to a repository that is not set: {dead}"
    real = [e for e in errors if "favicon" not in e]
    assert not real, f"{page_file}: console errors {real}"
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{page_file.replace('/', '_')}.png"), full_page=True)
    page.close()
