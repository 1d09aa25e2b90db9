"""The exported report looked at in a real browser: headless Chromium renders ``report.html`` built from
the committed result fixtures (real runs of every pattern, schema v1, migrated on load) and the test
checks what a reader sees: the page's title, the decision table inside the first screen (1280×800), no
table wider than the page and no table cell cut ("…", or text clipped by CSS).

Chromium is Debian's ``chromium`` package (``.ci/run`` installs it); the test skips, saying why, where it
cannot run. The first screen is kept as ``first_screen.png`` in the test's temp dir (its path is printed).
"""

from __future__ import annotations

import html
import json
import shutil
import struct
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import pytest

from bench.app import pipeline

pytestmark = pytest.mark.notebook

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "results_v1"
VIEWPORT = (1280, 800)
FLAGS = (
    "--headless",
    "--no-sandbox",  # the CI container runs as root, where Chromium's sandbox cannot start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)
#: Run in the page after layout; its findings are written into the DOM that --dump-dom prints.
PROBE = """<script>
(function () {
  const out = {};
  const d = document.getElementById("decision");
  if (d) { const b = d.getBoundingClientRect(); out.decision = {top: b.top, bottom: b.bottom, right: b.right,
           rows: d.tBodies[0].rows.length}; }
  out.viewport = {width: window.innerWidth, height: window.innerHeight};
  out.wide = [];
  out.clipped = [];
  document.querySelectorAll("table").forEach(function (t, i) {
    const b = t.getBoundingClientRect();
    if (b.right > window.innerWidth + 1) out.wide.push(i + ": " + (t.id || t.rows[0].innerText.slice(0, 60)));
  });
  document.querySelectorAll("td, th").forEach(function (c) {
    const s = getComputedStyle(c);
    const hides = s.overflow !== "visible" || s.textOverflow === "ellipsis";
    if (hides && (c.scrollWidth > c.clientWidth + 1 || c.scrollHeight > c.clientHeight + 1))
      out.clipped.push(c.innerText.slice(0, 80));
  });
  const pre = document.createElement("pre");
  pre.id = "browser-probe";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
})();
</script>"""


def _chromium() -> str:
    """The Chromium binary, or skip with the reason."""
    exe = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)
    if exe is None:
        pytest.skip("no Chromium here: `apt-get install -y chromium` (.ci/run does it) runs this test")
    try:
        subprocess.run([exe, "--version"], capture_output=True, check=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"Chromium does not start here ({exe}: {exc})")
    return exe


def _browse(exe: str, page: Path, *args: str) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory() as profile:
        cmd = [exe, *FLAGS, f"--user-data-dir={profile}", f"--window-size={VIEWPORT[0]},{VIEWPORT[1]}", *args]
        try:
            return subprocess.run([*cmd, page.as_uri()], capture_output=True, text=True, timeout=120, check=True)
        except (OSError, subprocess.SubprocessError) as exc:
            pytest.skip(f"headless Chromium could not render a page here: {exc}")


class _Cells(HTMLParser):
    """Text of every table cell, and the page's title."""

    def __init__(self) -> None:
        super().__init__()
        self.cells: list[str] = []
        self.title = ""
        self._in: str | None = None
        self._buf: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag in ("td", "th", "title"):
            self._in, self._buf = tag, []

    def handle_endtag(self, tag):
        if tag == self._in:
            text = "".join(self._buf).strip()
            if tag == "title":
                self.title = text
            else:
                self.cells.append(text)
            self._in = None

    def handle_data(self, data):
        if self._in:
            self._buf.append(data)


@pytest.fixture(scope="module")
def report_html(tmp_path_factory) -> Path:
    """report.html built by the pipeline from the committed fixture runs (ten real runs)."""
    out = tmp_path_factory.mktemp("browser") / "results"
    shutil.copytree(FIXTURES, out / "runs")
    return pipeline.report(out)


def test_the_report_reads_right_in_a_browser(report_html):
    exe = _chromium()
    probed = report_html.with_name("report_probed.html")
    probed.write_text(report_html.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"), encoding="utf-8")
    dom = _browse(exe, probed, "--dump-dom").stdout
    page = _Cells()
    page.feed(dom)
    assert page.title == pipeline.REPORT_TITLE

    start = dom.index('<pre id="browser-probe">') + len('<pre id="browser-probe">')
    probe = json.loads(html.unescape(dom[start : dom.index("</pre>", start)]))
    assert probe["viewport"]["width"] == VIEWPORT[0], probe["viewport"]
    decision = probe.get("decision")
    assert decision, "no table with id 'decision' in the page"
    assert decision["rows"] == 7  # the article's seven use cases
    assert decision["bottom"] <= VIEWPORT[1], f"the decision table ends at {decision['bottom']:.0f} px, below the first screen"
    assert decision["right"] <= VIEWPORT[0], decision
    assert not probe["wide"], f"tables wider than the page: {probe['wide']}"
    assert not probe["clipped"], f"cells whose text CSS clips: {probe['clipped']}"

    cut = [c for c in page.cells if "…" in c or c.endswith("...")]
    assert not cut, f"truncated cells: {cut[:5]}"
    assert any(c == "C10" for c in page.cells), "the verdicts table lists every claim, C1 to C10"

    shot = report_html.with_name("first_screen.png")
    _browse(exe, report_html, f"--screenshot={shot}")
    head = shot.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", head[16:24]) == VIEWPORT
    print(f"first screen: {shot}")


def test_the_recommendation_page_has_a_title_and_no_cut_cell(report_html):
    exe = _chromium()
    dom = _browse(exe, report_html.with_name("recommend.html"), "--dump-dom").stdout
    page = _Cells()
    page.feed(dom)
    assert page.title == pipeline.RECOMMEND_TITLE
    assert page.cells and not [c for c in page.cells if "…" in c]
