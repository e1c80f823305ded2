"""The built documentation, as a reader sees it: opened in headless Chromium with the network cut off.

Every formula must have been typeset (no raw ``\\(``, ``\\[`` or ``$$`` left in the text of a page
after its scripts ran), so the math renderer must be served by the site itself; no page may load a
script, a stylesheet, a font or an image from the network (neither in its HTML nor at run time: the
browser's requests are recorded); every image must exist and load; no code block may be wider than
its box; every top-level page (the toctrees of docs/index.rst) must be in the top bar, none folded
under "More", and linked from the index's "Where to start"; every tutorial must have a thumbnail of
its own, not sphinx-gallery's placeholder. Each check has a test that plants the defect and sees it
caught. (That figure legends keep off the data is tests/test_figure_legends.py.)

These tests read a built site, ``docs/_build/html`` (or the folder named by ``POOLREF_DOCS_HTML``),
and skip, saying why, where there is none: CI (``.ci/run``) builds the docs after the test suite
and then runs this file. The browser checks also need Chromium (Debian: ``apt-get install
chromium``) and skip, saying so, where it is not installed.

    python -m sphinx -W --keep-going -b html docs docs/_build/html
    python -m pytest -rs tests/test_docs_rendered.py
    python tests/test_docs_rendered.py /tmp/shots [PAGE[#ANCHOR] ...]   # screenshots to look at
"""
from __future__ import annotations

import base64
import json
import os
import re
import select
import shutil
import subprocess
import sys
import tempfile
import time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[1]
SITE = Path(os.environ.get("POOLREF_DOCS_HTML") or ROOT / "docs" / "_build" / "html")
BUILD_COMMAND = "python -m sphinx -W --keep-going -b html docs docs/_build/html"

if not (SITE / "index.html").is_file():
    pytest.skip(f"no built documentation in {SITE} (build it with `{BUILD_COMMAND}`, or name a built site "
                "in POOLREF_DOCS_HTML); CI builds the docs after the tests, then runs this file",
                allow_module_level=True)

PAGES = sorted(p for p in SITE.rglob("*.html") if "_static" not in p.parts and "_sources" not in p.parts)
# TeX delimiters that MathJax replaces when it typesets a formula
RAW_TEX = re.compile(r"\\\(|\\\[|\$\$")


class _Page(HTMLParser):
    """The resources a page loads, and its text outside code, scripts and styles."""

    SKIPPED = {"script", "style", "pre", "code", "textarea"}  # text in these is not typeset, by design

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.loads: list[tuple[str, str]] = []  # (tag, URL) of every script, stylesheet and image
        self.links: list[str] = []  # href of every <a>
        self.text: list[str] = []
        self.math = 0  # elements Sphinx marks as math
        self.typeset = 0  # formulas MathJax has typeset (<mjx-container>)
        self._skipping = 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "script" and attrs.get("src"):
            self.loads.append((tag, attrs["src"]))
        elif tag == "link" and "stylesheet" in (attrs.get("rel") or "").split() and attrs.get("href"):
            self.loads.append((tag, attrs["href"]))
        elif tag == "img" and attrs.get("src"):
            self.loads.append((tag, attrs["src"]))
        elif tag == "a" and attrs.get("href"):
            self.links.append(attrs["href"])
        if "math" in (attrs.get("class") or "").split():
            self.math += 1
        if tag == "mjx-container":
            self.typeset += 1
        if tag in self.SKIPPED:
            self._skipping += 1

    def handle_endtag(self, tag):
        if tag in self.SKIPPED and self._skipping:
            self._skipping -= 1

    def handle_data(self, data):
        if not self._skipping:
            self.text.append(data)


def _parse(html: str) -> _Page:
    page = _Page()
    page.feed(html)
    return page


def _is_remote(url: str) -> bool:
    return bool(urlsplit(url).scheme in ("http", "https") or url.startswith("//"))


def _local_file(page: Path, url: str) -> Path:
    return (page.parent / unquote(urlsplit(url).path)).resolve()


def _relative(page: Path) -> str:
    return str(page.relative_to(SITE))


def test_no_page_loads_anything_from_the_network():
    remote = [f"{_relative(page)}: <{tag}> {url}" for page in PAGES
              for tag, url in _parse(page.read_text(encoding="utf-8")).loads if _is_remote(url)]
    assert not remote, "pages that need the network to render:\n" + "\n".join(remote)


def test_the_math_renderer_is_served_by_the_site():
    math_pages = [page for page in PAGES if _parse(page.read_text(encoding="utf-8")).math]
    assert math_pages, "no page has math: the check below would check nothing"
    for page in math_pages:
        scripts = [url for tag, url in _parse(page.read_text(encoding="utf-8")).loads if tag == "script"]
        mathjax = [url for url in scripts if "mathjax" in url.lower()]
        assert mathjax, f"{_relative(page)} has math but loads no MathJax: {scripts}"
        for url in mathjax:
            assert _local_file(page, url).is_file(), f"{_relative(page)} loads {url}, which the site does not have"


def test_every_image_exists():
    missing = [f"{_relative(page)}: {url}" for page in PAGES
               for tag, url in _parse(page.read_text(encoding="utf-8")).loads
               if tag == "img" and not url.startswith("data:") and not _is_remote(url)
               and not _local_file(page, url).is_file()]
    assert not missing, "broken images:\n" + "\n".join(missing)


def _pixels(path: Path):
    from PIL import Image

    with Image.open(path) as image:
        return image.convert("RGBA").tobytes(), image.size


def _sphinx_gallery_stand_ins(folder: Path) -> dict[str, tuple]:
    """The pixels of the thumbnails sphinx-gallery writes for a tutorial without a figure (its
    ``no_image.png``) and for one that raised (``broken_example.png``), scaled as it scales them."""
    sphinx_gallery = pytest.importorskip("sphinx_gallery")
    from sphinx_gallery.gen_gallery import DEFAULT_GALLERY_CONF
    from sphinx_gallery.gen_rst import scale_image

    stand_ins = {}
    for name in ("no_image.png", "broken_example.png"):
        scaled = folder / name
        scale_image(Path(sphinx_gallery.glr_path_static()) / name, scaled, *DEFAULT_GALLERY_CONF["thumbnail_size"])
        stand_ins[name] = _pixels(scaled)
    return stand_ins


def test_every_tutorial_has_a_thumbnail_of_its_own(tmp_path):
    gallery = SITE / "tutorials" / "index.html"
    if not gallery.is_file():
        pytest.skip("this build has no tutorial gallery")
    thumbnails = [url for tag, url in _parse(gallery.read_text(encoding="utf-8")).loads
                  if tag == "img" and "thumb" in url]
    tutorials = sorted((ROOT / "tutorials").glob("plot_*.py"))
    assert len(thumbnails) == len(tutorials), (thumbnails, tutorials)
    # sphinx-gallery names its stand-in after the tutorial (sphx_glr_plot_2_..._thumb.png) but draws
    # its placeholder picture in it: compare the pixels
    stand_ins = _sphinx_gallery_stand_ins(tmp_path)
    placeholders = [f"{url} (sphinx-gallery's {name})" for url in thumbnails
                    for name, pixels in stand_ins.items() if _pixels(_local_file(gallery, url)) == pixels]
    assert not placeholders, f"tutorials without a figure of their own for their thumbnail: {placeholders}"


def test_the_thumbnail_check_recognises_the_placeholder(tmp_path):
    # the check above must be able to fail: sphinx-gallery's placeholder, scaled as it scales it
    sphinx_gallery = pytest.importorskip("sphinx_gallery")
    from sphinx_gallery.gen_gallery import DEFAULT_GALLERY_CONF
    from sphinx_gallery.gen_rst import scale_image

    (tmp_path / "made").mkdir()
    thumb = tmp_path / "made" / "sphx_glr_plot_9_thumb.png"
    scale_image(Path(sphinx_gallery.glr_path_static()) / "no_image.png", thumb, *DEFAULT_GALLERY_CONF["thumbnail_size"])
    assert _pixels(thumb) == _sphinx_gallery_stand_ins(tmp_path)["no_image.png"]
    real = SITE / "_images" / "sphx_glr_plot_1_max_vs_avg_thumb.png"
    if real.is_file():
        assert _pixels(real) != _pixels(thumb)


def _index_toctree_entries() -> list[str]:
    """The documents listed by the toctrees of docs/index.rst (``Title <name>`` or ``name``)."""
    entries, in_toctree = [], False
    for line in (ROOT / "docs" / "index.rst").read_text(encoding="utf-8").splitlines():
        if line.startswith(".. toctree::"):
            in_toctree = True
        elif in_toctree and line.startswith("   ") and not line.strip().startswith(":"):
            entry = line.strip()
            entries.append(entry[entry.rindex("<") + 1:-1] if entry.endswith(">") else entry)
        elif in_toctree and line and not line.startswith(" "):
            in_toctree = False
    return entries


# every page of the index's toctrees is a top-level page; the issue named these as hidden or unlinked
TOP_LEVEL = _index_toctree_entries()
MUST_BE_TOP_LEVEL = ["getting_started", "tutorials/index", "ops/index", "dynopool", "atlas", "conventions",
                     "oracle", "api", "benchmarks"]


def test_the_top_level_pages_are_the_index_toctree():
    missing = [name for name in MUST_BE_TOP_LEVEL if name not in TOP_LEVEL]
    assert not missing, f"not in docs/index.rst's toctrees: {missing} (they list {TOP_LEVEL})"


def _top_bar(html: str) -> str:
    start = html.index('class="bd-navbar-elements navbar-nav"')  # the first is the top bar's
    return html[start:html.index("</ul>", start)]


def test_every_top_level_page_is_in_the_top_bar_and_none_under_more():
    bar = _top_bar((SITE / "index.html").read_text(encoding="utf-8"))
    linked = {urlsplit(href).path for href in _parse(bar).links}
    assert "dropdown" not in bar, "the top bar folds some pages into a 'More' menu"
    missing = [name for name in TOP_LEVEL if f"{name}.html" not in linked]
    assert not missing, f"top-level pages missing from the top bar: {missing} (it links {sorted(linked)})"


def test_the_index_links_every_top_level_page_where_to_start():
    html = (SITE / "index.html").read_text(encoding="utf-8")
    start = html.index('id="where-to-start"')
    section = html[start:html.index("</section>", start)]
    linked = {urlsplit(href).path for href in _parse(section).links}
    missing = [name for name in TOP_LEVEL if f"{name}.html" not in linked]
    assert not missing, f"'Where to start' does not link {missing}"


# -- In a browser --------------------------------------------------------------------------------------

CHROMIUM = next((shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome")
                 if shutil.which(name)), None)
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="Chromium is not installed (Debian: apt-get install chromium): the pages "
    "cannot be rendered here, so the browser checks (formulas typeset offline, images loaded, no network "
    "request, code wrapped) are not run; CONTRIBUTING.md says how to run them")


class _Chromium:
    """Headless Chromium driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``:
    JSON messages ending in a NUL byte, Chromium reading fd 3 and writing fd 4), so no websocket
    library is needed. Every request to the network goes to a dead proxy: pages render as offline."""

    def __init__(self, timeout=60.0):
        self.timeout = timeout
        self._profile = tempfile.TemporaryDirectory()
        # our ends of the two pipes, and Chromium's, which a small Python trampoline puts on fds 3 and 4
        # before it becomes Chromium (subprocess cannot place an fd at a given number itself)
        commands_read, self._commands = os.pipe()
        self._replies, replies_write = os.pipe()
        arguments = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--remote-debugging-pipe",
                     "--proxy-server=http://127.0.0.1:9", f"--user-data-dir={self._profile.name}", "about:blank"]
        trampoline = "import os, sys; os.dup2(int(sys.argv[1]), 3); os.dup2(int(sys.argv[2]), 4); os.execv(sys.argv[3], sys.argv[3:])"
        self._process = subprocess.Popen(
            [sys.executable, "-c", trampoline, str(commands_read), str(replies_write), CHROMIUM, *arguments],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            pass_fds=(commands_read, replies_write))
        os.close(commands_read)
        os.close(replies_write)
        self._buffer, self._last_id, self._events = b"", 0, []
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        self._session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        self.send("Page.enable", session=True)
        self.send("Network.enable", session=True)  # to see every request a page makes

    def _receive(self, deadline):
        while b"\0" not in self._buffer:
            ready, _, _ = select.select([self._replies], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                raise TimeoutError(f"Chromium did not answer within {self.timeout:g} s")
            chunk = os.read(self._replies, 1 << 20)
            if not chunk:
                raise RuntimeError(f"Chromium ended (exit status {self._process.poll()})")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def send(self, method, params=None, session=False):
        self._last_id += 1
        message = {"id": self._last_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = self._session
        os.write(self._commands, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            reply = self._receive(deadline)
            if reply.get("id") == self._last_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]
            self._events.append(reply)

    def _wait_for(self, event):
        deadline = time.monotonic() + self.timeout
        while not any(e.get("method") == event and e.get("sessionId") == self._session for e in self._events):
            self._events.append(self._receive(deadline))

    def open(self, page: Path, expression: str, fragment: str = ""):
        """Load ``page``, wait for its load event, and return the value of ``expression`` (a promise)
        and the URLs of every request the page made (documents, scripts, styles, fonts, images, XHR)."""
        self._events.clear()
        navigation = self.send("Page.navigate", {"url": page.as_uri() + (f"#{fragment}" if fragment else "")}, session=True)
        if navigation.get("loaderId"):  # none when only the #fragment changed: the page stays loaded
            self._wait_for("Page.loadEventFired")
        result = self.send("Runtime.evaluate", {"expression": expression, "awaitPromise": True,
                                                "returnByValue": True}, session=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{page}: {result['exceptionDetails']}")
        requests = [e["params"]["request"]["url"] for e in self._events
                    if e.get("method") == "Network.requestWillBeSent" and e.get("sessionId") == self._session]
        return result["result"]["value"], requests

    def screenshot(self, page: Path, path: Path, width=1280, height=900, fragment=""):
        """A PNG of ``page`` (scrolled to ``#fragment``) as a ``width`` x ``height`` window shows it,
        once its formulas are typeset."""
        self.send("Emulation.setDeviceMetricsOverride", {"width": width, "height": height, "deviceScaleFactor": 1,
                                                         "mobile": False}, session=True)
        scrolled = ("(async () => { const seen = await " + _READ_PAGE + "; if (location.hash) "
                    "document.getElementById(location.hash.slice(1))?.scrollIntoView(); return seen; })()")
        self.open(page, scrolled, fragment)
        data = self.send("Page.captureScreenshot", {"format": "png"}, session=True)["data"]
        path.write_bytes(base64.b64decode(data))

    def close(self):
        try:
            self.send("Browser.close")
        except (OSError, RuntimeError, TimeoutError):
            self._process.kill()
        self._process.wait(timeout=30)
        os.close(self._commands)
        os.close(self._replies)
        self._profile.cleanup()


# After MathJax has typeset the page (its startup promise): the text outside code, how many formulas
# it typeset, the images that did not load (lazy images are made eager first), and the longest line
# of each code block wider than its box (cut off at the edge, or hidden behind a scroll bar).
_READ_PAGE = """(async () => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) await MathJax.startup.promise;
  const images = [...document.images];
  images.forEach(image => { image.loading = "eager"; });
  await Promise.all(images.map(image => image.decode().catch(() => null)));
  const text = document.body.cloneNode(true);
  text.querySelectorAll("script, style, pre, code, textarea").forEach(element => element.remove());
  const clipped = [...document.querySelectorAll("pre")].filter(pre => pre.scrollWidth > pre.clientWidth + 1);
  // a code block in a table cell whose lines were wrapped: taller than its lines
  const wrapped = [...document.querySelectorAll("table pre")].filter(pre => {
    const style = getComputedStyle(pre);
    const line = parseFloat(style.lineHeight) || 1.2 * parseFloat(style.fontSize);  // "normal": about 1.2 em
    const height = pre.clientHeight - parseFloat(style.paddingTop) - parseFloat(style.paddingBottom);
    return line > 0 && height > (pre.textContent.replace(/\\n$/, "").split("\\n").length + 0.5) * line;
  });
  return {text: text.textContent, typeset: document.querySelectorAll("mjx-container").length,
          wrapped_in_table: wrapped.map(pre => pre.textContent.split("\\n")[0]),
          broken: images.filter(image => image.naturalWidth === 0).map(image => image.getAttribute("src")),
          clipped: clipped.map(pre => pre.textContent.split("\\n").reduce((a, b) => (b.length > a.length ? b : a), ""))};
})()"""


def _is_local(url: str) -> bool:
    return urlsplit(url).scheme in ("file", "data", "about", "blob")


def _render(pages) -> dict[Path, dict]:
    """{page: what _READ_PAGE returns, with "requests": the URLs of the requests it made}."""
    browser = _Chromium()
    try:
        seen = {}
        for page in pages:
            value, requests = browser.open(page, _READ_PAGE)
            seen[page] = dict(value, requests=requests)
        return seen
    finally:
        browser.close()


@pytest.fixture(scope="module")
def rendered():
    """Every page of the site as Chromium renders it, offline."""
    return _render(PAGES)


def _formula_problems(page: Path, seen: dict) -> list[str]:
    text = seen["text"]
    raw = [text[max(0, m.start() - 30):m.end() + 30].replace("\n", " ") for m in RAW_TEX.finditer(text)]
    if raw:
        return [f"{page.name}: {len(raw)} formula(s) left as raw TeX, e.g. {raw[0]!r}"]
    if _parse(page.read_text(encoding="utf-8")).math and not seen["typeset"]:
        return [f"{page.name}: has math, but MathJax typeset nothing"]
    return []


def _network_requests(seen: dict) -> list[str]:
    return [url for url in seen["requests"] if not _is_local(url)]


@needs_chromium
def test_every_formula_is_typeset_offline(rendered):
    math_pages = [page for page in PAGES if _parse(page.read_text(encoding="utf-8")).math]
    assert math_pages
    problems = [problem for page in math_pages for problem in _formula_problems(page, rendered[page])]
    assert not problems, "\n".join(problems)


@needs_chromium
def test_no_raw_tex_on_any_page(rendered):
    # a `$$` or `\\(` typed into a page without math (no MathJax loaded) would show as it is
    raw = [_relative(page) for page, seen in rendered.items() if RAW_TEX.search(seen["text"])]
    assert not raw, f"pages showing raw TeX: {raw}"


def _found(rendered, key) -> str:
    """One line per thing a page's ``key`` list holds: the page, then the thing (shortened)."""
    return "\n".join(f"{_relative(page)}: {str(item).strip()[:100]!r}" for page, seen in rendered.items() for item in seen[key])


@needs_chromium
def test_every_image_loads_in_the_browser(rendered):
    broken = _found(rendered, "broken")
    assert not broken, "images that do not load:\n" + broken


@needs_chromium
def test_code_blocks_wrap_instead_of_being_cut_off(rendered):
    clipped = _found(rendered, "clipped")  # the longest line of each
    assert not clipped, "code lines wider than their block:\n" + clipped


@needs_chromium
def test_printed_arrays_in_tables_keep_their_rows_whole(rendered):
    # the atlas prints each framework's output in a table cell; wrapped there, "[[ 1.5556  3.3333  2."
    # and its "]" fell on two lines: code in a table does not wrap, its column widens instead
    wrapped = _found(rendered, "wrapped_in_table")  # the first line of each
    assert not wrapped, "code blocks wrapped inside table cells:\n" + wrapped


@needs_chromium
def test_no_page_asks_the_network_for_anything(rendered):
    # what the pages' scripts fetch as they run (fonts, further scripts), not only what the HTML names
    remote = [f"{_relative(page)}: {url}" for page, seen in rendered.items() for url in _network_requests(seen)]
    assert not remote, "requests to the network:\n" + "\n".join(remote)


@needs_chromium
def test_the_browser_checks_catch_raw_tex_a_broken_image_a_network_request_and_clipped_or_wrapped_code(tmp_path):
    # the checks above must be able to fail: a page with each defect, next to a copy of the site's
    # MathJax, and the same page fixed
    mathjax = next(url for tag, url in _parse((SITE / "concepts.html").read_text(encoding="utf-8")).loads
                   if tag == "script" and "mathjax" in url.lower())
    mathjax_file = _local_file(SITE / "concepts.html", mathjax)
    bad = tmp_path / "bad.html"
    bad.write_text('<html><head><script src="https://cdn.example.org/mathjax/tex-chtml.js"></script></head><body>'
                   '<p class="math">\\(x^2\\)</p><img src="missing.png"></body></html>', encoding="utf-8")
    good = tmp_path / "good.html"
    good.write_text(f'<html><head><script defer src="{mathjax_file.as_uri()}"></script></head><body>'
                    '<p class="math">\\(x^2\\)</p></body></html>', encoding="utf-8")
    wide = "x = " + "1 + " * 200 + "1"
    for page, style in ((bad, ""), (good, '<link rel="stylesheet" href="' + (SITE / "_static" / "custom.css").as_uri() + '">')):
        page.write_text(page.read_text(encoding="utf-8").replace("</body>", f"{style}<pre>{wide}</pre></body>"), encoding="utf-8")
    wrapped_row = "[[ 1.5556  3.3333  2.    ]\n [ 6.3333 11.      6.    ]]"
    for page, style in ((bad, ' style="white-space: pre-wrap; overflow-wrap: anywhere"'), (good, "")):
        page.write_text(page.read_text(encoding="utf-8").replace(
            "</body>", f'<table style="width: 120px"><tr><td><pre{style}>{wrapped_row}</pre></td></tr></table></body>'),
            encoding="utf-8")
    seen = _render([bad, good])
    assert _formula_problems(bad, seen[bad]) and "raw TeX" in _formula_problems(bad, seen[bad])[0]
    assert seen[bad]["broken"] == ["missing.png"]
    assert _network_requests(seen[bad]) == ["https://cdn.example.org/mathjax/tex-chtml.js"]
    assert _formula_problems(good, seen[good]) == [] and seen[good]["typeset"] == 1
    assert seen[good]["broken"] == [] and _network_requests(seen[good]) == []
    assert seen[bad]["clipped"] == [wide] and seen[good]["clipped"] == []  # the site's CSS wraps code
    assert seen[bad]["wrapped_in_table"] == ["[[ 1.5556  3.3333  2.    ]"]  # and not in tables
    assert seen[good]["wrapped_in_table"] == []


# Screenshots, to look at: python tests/test_docs_rendered.py FOLDER [PAGE[#ANCHOR] ...] (paths in the
# site), each 1280 and 900 pixels wide
SCREENSHOT_PAGES = ["index.html", "generated/poolref.max_pool2d.html", "dynopool.html",
                    "tutorials/plot_1_max_vs_avg.html"]

if __name__ == "__main__":
    folder = Path(sys.argv[1])
    folder.mkdir(parents=True, exist_ok=True)
    browser = _Chromium()
    try:
        for name in sys.argv[2:] or SCREENSHOT_PAGES:
            name, _, fragment = name.partition("#")
            for width in (1280, 900):
                out = folder / f"{name.replace('/', '_').removesuffix('.html')}{'_' + fragment if fragment else ''}_{width}.png"
                browser.screenshot(SITE / name, out, width=width, fragment=fragment)
                print(out)
    finally:
        browser.close()
