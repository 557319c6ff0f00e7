"""The built book as a reader sees it: every chapter page of ``_build/html`` in headless Chromium.

Needs the built book (``jupyter-book build . -W -n --keep-going``), Debian's Chromium
(``/usr/bin/chromium``; ``PDBOOK_CHROMIUM`` overrides the path) and the ``playwright`` package,
which drives that Chromium (no browser download). Missing any of them, the tests skip locally and
fail under CI (``CI=true``). Pages are served over http on 127.0.0.1 (a free port), every request
to another host is blocked, and a full-page screenshot of each chapter goes to
``_build/screenshots/<chapter>.png``.
"""
from __future__ import annotations

import functools
import http.server
import os
import shutil
import threading
import urllib.parse
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "_build" / "html"
SHOTS = ROOT / "_build" / "screenshots"
CHROMIUM = os.environ.get("PDBOOK_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
IN_CI = os.environ.get("CI", "").lower() == "true"
COLAB = "https://colab.research.google.com/github/pdbook/split-or-share/blob/main/notebooks/{}.ipynb"
CHAPTERS = sorted(p.stem for p in (HTML / "notebooks").glob("*.html"))
# The flags this machine's Chromium needs: no sandbox as root, no GPU, and no background traffic
# (the network is closed, so background requests only produce refused connections).
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]

# Console errors that are noise, not defects of the book, each with its reason:
IGNORED_ERRORS = {
    # Requests to other hosts are blocked here (CI has no network): MathJax, require.js and the
    # ipywidgets embed manager come from CDNs. The page's text, figures and toggles are local.
    "Failed to load resource: net::ERR_FAILED": "a blocked request to a CDN",
    # pydata-sphinx-theme 0.17 reports an empty stored light/dark preference on a first visit,
    # then picks "auto" itself.
    "Got invalid theme mode: . Resetting to auto.": "first visit, no stored theme mode",
    # sphinx-thebe 0.3.1 under Sphinx 7.4 writes its inline config script twice into every page;
    # the second `const THEBE_JS_URL` throws. Thebe (live code cells) is not enabled in this book.
    "Identifier 'THEBE_JS_URL' has already been declared": "sphinx-thebe's duplicated inline script",
}


# Hosts the theme loads scripts from (MathJax, require.js, the widget manager, Thebe).
CDN_HOSTS = {"cdn.jsdelivr.net", "cdnjs.cloudflare.com", "unpkg.com"}


def _unavailable(reason: str):
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: the browser test must run)")
    pytest.skip(reason)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def site():
    """(browser, base URL) with _build/html served on 127.0.0.1."""
    if not (HTML / "index.html").is_file():
        _unavailable("no _build/html/index.html: build the book first "
                     "(jupyter-book build . -W -n --keep-going)")
    if not CHAPTERS:
        _unavailable("no chapter pages in _build/html/notebooks/")
    if not Path(CHROMIUM).is_file():
        _unavailable(f"no Chromium at {CHROMIUM}: apt-get install -y chromium chromium-driver")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed: pip install -c constraints.txt -e '.[test]'")
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(HTML)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            yield browser, f"http://127.0.0.1:{server.server_address[1]}"
            browser.close()
    finally:
        server.shutdown()
        server.server_close()


_FACTS_JS = """() => {
  const outputs = [...document.querySelectorAll('.cell_output')];
  const ERROR_AREAS = '.highlight-ipythontb, .output.error, .output.traceback';
  const TRACEBACK = /Traceback \\(most recent call last\\)|^\\w+Error: /m;
  const cells = [...document.querySelectorAll('div.cell')];
  const hasFigure = cell => [...cell.querySelectorAll('.cell_output img')].some(i => i.naturalWidth > 0);
  // for each widget: is there a rendered figure in its own cell or in the code cells just above it
  // (back to the nearest one with output)? Progress bars (tqdm's HBox of a label and a
  // FloatProgress) report a sweep's progress and need no fallback figure.
  const stateTag = document.querySelector('script[type="application/vnd.jupyter.widget-state+json"]');
  const models = stateTag ? JSON.parse(stateTag.textContent).state : {};
  const isProgress = id => (models[id]?.state?.children || [])
    .some(ref => /Progress/.test(models[String(ref).replace('IPY_MODEL_', '')]?.model_name || ''));
  const viewsOf = c => [...c.querySelectorAll('script[type="application/vnd.jupyter.widget-view+json"]')]
    .map(v => JSON.parse(v.textContent).model_id);
  const widgetFallbacks = cells
    .filter(c => viewsOf(c).some(id => !isProgress(id)))
    .map(c => {
      for (let i = cells.indexOf(c); i >= 0; i--) {
        if (hasFigure(cells[i])) return true;
        if (cells[i] !== c && cells[i].querySelector('.cell_output')) return false;
      }
      return false;
    });
  return {
    images: outputs.flatMap(o => [...o.querySelectorAll('img')])
                   .map(i => [i.getAttribute('src'), i.naturalWidth]),
    errorAreas: outputs.filter(o => o.querySelector(ERROR_AREAS)).length,
    tracebacks: outputs.filter(o => TRACEBACK.test(o.innerText)).length,
    colab: [...document.querySelectorAll('.dropdown-launch-buttons a')].map(a => a.href)
             .filter(h => h.includes('colab')),
    widgetFallbacks,
  };
}"""


@pytest.fixture(scope="module")
def visit(site):
    """visit(chapter) -> facts about its page (loaded once per chapter, screenshot taken)."""
    browser, base = site
    cache: dict[str, dict] = {}

    def load(chapter: str) -> dict:
        if chapter in cache:
            return cache[chapter]
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        blocked, errors = [], []

        def route(r):
            if urllib.parse.urlsplit(r.request.url).hostname == "127.0.0.1":
                r.continue_()
            else:
                blocked.append(r.request.url)
                r.abort()

        page.route("**/*", route)
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e.message)))
        page.goto(f"{base}/notebooks/{chapter}.html", wait_until="load")
        page.wait_for_load_state("networkidle")
        facts = page.evaluate(_FACTS_JS)
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / f"{chapter}.png"), full_page=True)
        # a solution's code is hidden (inside a closed <details>) until its toggle is clicked
        solutions = page.locator("div.cell.tag_solution .cell_input").all()
        facts["solutions"] = [s.is_visible() for s in solutions]
        for summary in page.locator("div.cell.tag_solution details > summary").all():
            summary.click()
        facts["solutions_after_click"] = [s.is_visible() for s in solutions]
        facts["errors"], facts["blocked"] = errors, blocked
        page.close()
        cache[chapter] = facts
        return facts

    return load


chapters = pytest.mark.parametrize("chapter", CHAPTERS or ["<no chapter pages built>"])


@chapters
def test_no_console_errors(visit, chapter):
    facts = visit(chapter)
    real = [e for e in facts["errors"] if not any(e.startswith(k) for k in IGNORED_ERRORS)]
    assert real == []
    # the only outside requests are the theme's CDN scripts: the chapters themselves load nothing
    assert {urllib.parse.urlsplit(u).hostname for u in facts["blocked"]} <= CDN_HOSTS


@chapters
def test_figures_render(visit, chapter):
    images = visit(chapter)["images"]
    assert images, "no figure in any cell output"
    broken = [src for src, width in images if width == 0]
    assert broken == []


@chapters
def test_no_error_output(visit, chapter):
    facts = visit(chapter)
    assert facts["errorAreas"] == 0
    assert facts["tracebacks"] == 0


@chapters
def test_colab_launch_link(visit, chapter):
    assert visit(chapter)["colab"] == [COLAB.format(chapter)]


@chapters
def test_solutions_hidden_until_clicked(visit, chapter):
    facts = visit(chapter)
    assert facts["solutions"], "the chapter has no solution cells"
    assert not any(facts["solutions"]), "a solution is visible before its toggle is clicked"
    assert all(facts["solutions_after_click"]), "a solution stayed hidden after its toggle was clicked"


@chapters
def test_widgets_have_a_static_figure(visit, chapter):
    # every widget on the page has a rendered figure in its own cell or just above it
    assert all(visit(chapter)["widgetFallbacks"])


@chapters
def test_screenshot_written(visit, chapter):
    visit(chapter)
    shot = SHOTS / f"{chapter}.png"
    assert shot.stat().st_size > 50_000
    with shot.open("rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
