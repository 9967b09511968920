"""The search page (``api/static``) in headless Chromium, against a real ``braid serve``.

Debian's ``/usr/bin/chromium`` loads the page over HTTP, the page's own JavaScript calls
``/v1/search``, and the tests read what it rendered: the DOM (``--dump-dom``, after the
scripts ran) and the pixels of a screenshot. Facet values and filter chips are real links,
so following one is loading the ``href`` the page rendered (what a click does). The paging
buttons run JavaScript, so they are clicked over the DevTools protocol, spoken on a pipe
(``--remote-debugging-pipe``: no driver or websocket library needed).

The corpus is the 12 sample documents; expected values are counted by hand from
``tests/data/sample.jsonl``.
"""

from __future__ import annotations

import fcntl
import json
import os
import select
import struct
import subprocess
import time
import zlib
from collections.abc import Callable, Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import httpx
import numpy as np
import pytest
from api_helpers import TORCH_THREADS, braid_command, free_port

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--window-size=1280,900",
]
# Virtual time runs only while the page is idle: real network waits do not use it up.
DUMP_FLAGS = [*CHROMIUM_FLAGS, "--virtual-time-budget=15000"]
QUERY = "planets orbiting other stars"
# style.css: --mark (a <mark>'s background) and --accent (a selected facet value).
MARK_RGB = (0xFF, 0xE0, 0x66)
ACCENT_RGB = (0x2F, 0x5B, 0xD3)

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium"
)


@pytest.fixture(scope="module")
def page_server(
    tmp_path_factory: pytest.TempPathFactory, sample_docs: list[dict[str, object]]
) -> Iterator[httpx.Client]:
    """``braid serve`` on a free port, holding exactly the 12 sample documents."""
    data_dir = tmp_path_factory.mktemp("page-server")
    port = free_port()
    env = {
        **os.environ,
        "BRAID_EMBEDDER__DEVICE": "cpu",
        "BRAID_EMBEDDER__CPU_THREADS": str(TORCH_THREADS),
        "TOKENIZERS_PARALLELISM": "false",
    }
    env.pop("BRAID_API__KEYS", None)
    command = [*braid_command(), "serve", "--port", str(port), "--data-dir", str(data_dir)]
    log_path = data_dir / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60.0)
        try:
            deadline = time.monotonic() + 120
            while True:
                assert process.poll() is None, log_path.read_text()
                try:
                    if client.get("/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "server not ready in 120 s"
                time.sleep(0.2)
            added = client.post("/v1/documents?wait=true", json={"documents": sample_docs})
            assert added.status_code == 200, added.text
            assert added.json()["job"]["result"]["documents"] == 12
            yield client
        finally:
            client.close()
            process.kill()
            process.wait()


def page_url(client: httpx.Client, **params: str) -> str:
    return f"{str(client.base_url).rstrip('/')}/?{urlencode(params)}"


def api_doc_ids(client: httpx.Client, **body: Any) -> list[str]:
    """The documents the API answers for one search: what the page should show."""
    response = client.post("/v1/search", json={"query": QUERY, **body})
    assert response.status_code == 200, response.text
    return [d["doc_id"] for d in response.json()["documents"]]


# -- the rendered DOM ----------------------------------------------------------------------


class Node:
    """One element of the dumped DOM (enough of a tree to query it)."""

    def __init__(self, tag: str, attrs: dict[str, str], parent: Node | None) -> None:
        self.tag = tag
        self.attrs = attrs
        self.parent = parent
        self.children: list[Node | str] = []

    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def find_all(self, match: Callable[[Node], bool]) -> list[Node]:
        found: list[Node] = []
        for child in self.children:
            if isinstance(child, Node):
                if match(child):
                    found.append(child)
                found.extend(child.find_all(match))
        return found

    def select(self, tag: str | None = None, **attrs: str) -> list[Node]:
        """Elements with this tag (any, if None) whose attributes have these values
        (``class_`` for class: one of its classes)."""

        def match(node: Node) -> bool:
            if tag is not None and node.tag != tag:
                return False
            for key, value in attrs.items():
                if key == "class_":
                    if value not in node.attrs.get("class", "").split():
                        return False
                elif node.attrs.get(key.replace("_", "-")) != value:
                    return False
            return True

        return self.find_all(match)

    def by_id(self, element_id: str) -> Node:
        (node,) = self.select(id=element_id)
        return node


class _TreeBuilder(HTMLParser):
    VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {}, None)
        self.current = self.root

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs}, self.current)
        self.current.children.append(node)
        if tag not in self.VOID:
            self.current = node

    def handle_endtag(self, tag: str) -> None:
        node: Node | None = self.current
        while node is not None and node.tag != tag:
            node = node.parent
        if node is not None and node.parent is not None:
            self.current = node.parent

    def handle_data(self, data: str) -> None:
        self.current.children.append(data)


def dump_dom(url: str, profile: Path) -> Node:
    """The page's DOM once its scripts ran and its search answered."""
    done = subprocess.run(
        [str(CHROMIUM), *DUMP_FLAGS, f"--user-data-dir={profile}", "--dump-dom", url],
        capture_output=True,
        timeout=120,
        check=True,
    )
    builder = _TreeBuilder()
    builder.feed(done.stdout.decode())
    root = builder.root
    (body,) = root.select("body")
    assert body.attrs.get("data-searched") == "1", "the page's search did not finish"
    return root


def cards(dom: Node) -> list[Node]:
    return dom.by_id("results").select("article", class_="doc")


def card_ids(dom: Node) -> list[str]:
    return [c.attrs["data-doc-id"] for c in cards(dom)]


def facet_counts(dom: Node) -> dict[str, dict[str, int]]:
    """The sidebar as {field: {value as shown: count}}."""
    counts: dict[str, dict[str, int]] = {}
    for group in dom.by_id("facet-panel").select("section", class_="facet"):
        values = counts.setdefault(group.attrs["data-field"], {})
        for item in group.select(class_="facet-value"):
            (count,) = item.select("span", class_="count")
            values[item.text().removesuffix(count.text()).strip()] = int(count.text())
    return counts


def facet_link(dom: Node, base: str, field: str, value: object) -> str:
    """The absolute URL the facet value's link goes to."""
    (link,) = dom.by_id("facet-panel").select("a", data_field=field, data_value=json.dumps(value))
    return urljoin(base, link.attrs["href"])


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


# -- the screenshot's pixels ---------------------------------------------------------------


def png_rgb(data: bytes) -> np.ndarray[Any, np.dtype[np.uint8]]:
    """Decode an 8-bit, non-interlaced RGB or RGBA PNG (what Chromium writes) to RGB."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, bytearray(), None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
    assert header is not None
    width, height, depth, colour, _, _, interlace = header
    assert depth == 8 and colour in (2, 6) and interlace == 0, header
    bpp = 3 if colour == 2 else 4
    stride = width * bpp
    raw = np.frombuffer(zlib.decompress(bytes(idat)), dtype=np.uint8).reshape(height, stride + 1)
    out = np.zeros((height, stride), dtype=np.uint8)
    prior = np.zeros(stride, dtype=np.uint8)
    for y in range(height):
        kind, line = int(raw[y, 0]), raw[y, 1:]
        if kind == 0:
            row = line.copy()
        elif kind == 1:  # Sub: a running sum per channel (uint8 wraps as PNG's mod 256)
            row = np.cumsum(line.reshape(width, bpp), axis=0, dtype=np.uint8).reshape(stride)
        elif kind == 2:  # Up
            row = line + prior
        else:
            row = _unfilter_sequential(kind, line.tobytes(), prior.tobytes(), bpp)
        out[y] = row
        prior = row
    return out.reshape(height, width, bpp)[:, :, :3]


def _unfilter_sequential(
    kind: int, line: bytes, prior: bytes, bpp: int
) -> np.ndarray[Any, np.dtype[np.uint8]]:
    """PNG's Average (3) and Paeth (4) filters, byte by byte (each needs its left byte)."""
    row = bytearray(line)
    for i in range(len(row)):
        a = row[i - bpp] if i >= bpp else 0
        b = prior[i]
        if kind == 3:
            row[i] = (row[i] + ((a + b) >> 1)) & 255
            continue
        c = prior[i - bpp] if i >= bpp else 0
        p = a + b - c
        pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
        predicted = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
        row[i] = (row[i] + predicted) & 255
    return np.frombuffer(bytes(row), dtype=np.uint8)


def screenshot(url: str, profile: Path, name: str, tmp_path: Path) -> np.ndarray[Any, Any]:
    """A 1280x900 screenshot of the page (kept in BRAID_SCREENSHOT_DIR when set), as RGB."""
    path = Path(os.environ.get("BRAID_SCREENSHOT_DIR", tmp_path)) / name
    subprocess.run(
        [str(CHROMIUM), *DUMP_FLAGS, f"--user-data-dir={profile}", f"--screenshot={path}", url],
        capture_output=True,
        timeout=120,
        check=True,
    )
    pixels = png_rgb(path.read_bytes())
    assert pixels.shape == (900, 1280, 3)
    return pixels


def pixels_of(pixels: np.ndarray[Any, Any], rgb: tuple[int, int, int]) -> tuple[Any, Any]:
    """(ys, xs) of the pixels of this colour (give or take 2 per channel: rounding)."""
    ys, xs = np.nonzero(np.all(np.abs(pixels.astype(np.int16) - rgb) <= 2, axis=2))
    return ys, xs


# -- DevTools over a pipe ------------------------------------------------------------------


def _above_four(fd: int) -> int:
    high = fcntl.fcntl(fd, fcntl.F_DUPFD, 5)
    os.close(fd)
    return high


class DevTools:
    """Chromium driven over ``--remote-debugging-pipe``: JSON messages ended by NUL bytes,
    commands on the browser's fd 3, answers and events on its fd 4."""

    def __init__(self, profile: Path) -> None:
        to_browser, self._writer = os.pipe()
        self._reader, from_browser = os.pipe()
        # The browser's ends above 4, so that neither is overwritten by the other's
        # redirection below before it is read (pytest's capture holds low fds).
        to_browser, from_browser = _above_four(to_browser), _above_four(from_browser)
        # The shell puts the two pipe ends where Chromium looks for them, then is Chromium
        # (bash: dash's redirections take one-digit fds only).
        self.process = subprocess.Popen(
            [
                "/bin/bash",
                "-c",
                f'exec "$0" "$@" 3<&{to_browser} 4>&{from_browser}',
                str(CHROMIUM),
                *CHROMIUM_FLAGS,
                f"--user-data-dir={profile}",
                "--remote-debugging-pipe",
                "about:blank",
            ],
            pass_fds=(to_browser, from_browser),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_browser)
        os.close(from_browser)
        self._buffer = b""
        self._next_id = 0
        target = self.send("Target.createTarget", {"url": "about:blank"})
        attached = self.send(
            "Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}
        )
        self.session: str = attached["sessionId"]

    def send(
        self, method: str, params: dict[str, Any] | None = None, session: str | None = None
    ) -> dict[str, Any]:
        """Send one command and return its result (events in between are dropped)."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        os.write(self._writer, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + 60
        while True:
            while b"\0" in self._buffer:
                raw, self._buffer = self._buffer.split(b"\0", 1)
                answer = json.loads(raw)
                if answer.get("id") == self._next_id:
                    if "error" in answer:
                        raise RuntimeError(f"{method}: {answer['error']}")
                    result: dict[str, Any] = answer["result"]
                    return result
            left = deadline - time.monotonic()
            assert left > 0, f"no answer to {method} in 60 s"
            if select.select([self._reader], [], [], left)[0]:
                chunk = os.read(self._reader, 1 << 16)
                assert chunk, "chromium closed its pipe"
                self._buffer += chunk

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (a promise is awaited)."""
        result = self.send(
            "Runtime.evaluate",
            {"expression": expression, "awaitPromise": True, "returnByValue": True},
            self.session,
        )
        if "exceptionDetails" in result:
            raise RuntimeError(result["exceptionDetails"])
        return result["result"].get("value")

    def wait_for(self, condition: str, timeout: float = 60) -> None:
        """Until ``condition`` (JavaScript) is true; retried across a page load, which
        destroys the context an evaluation runs in."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                if self.evaluate(f"Boolean({condition})"):
                    return
            except RuntimeError:
                pass
            assert time.monotonic() < deadline, f"still not {condition}"
            time.sleep(0.05)

    def open(self, url: str) -> None:
        """Load the page and wait for its search to finish."""
        self.send("Page.navigate", {"url": url}, self.session)
        self.wait_for(f"location.href === {json.dumps(url)} && document.body.dataset.searched")

    def click(self, selector: str) -> None:
        """Click an element; when that starts a search, wait for its answer."""
        # The page marks the results busy synchronously in the click's handler.
        self.evaluate(f"document.querySelector({json.dumps(selector)}).click()")
        self.wait_for("!document.getElementById('results-area').hasAttribute('aria-busy')")

    def close(self) -> None:
        try:
            self.send("Browser.close")
            self.process.wait(timeout=30)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
            os.close(self._writer)
            os.close(self._reader)


# -- tests ---------------------------------------------------------------------------------


def test_search_page_in_headless_chromium(page_server: httpx.Client, tmp_path: Path) -> None:
    """One card per document, the query's terms marked, facets counted, all rendered."""
    url = page_url(page_server, q=QUERY, mode="bm25", facets="source,tags")
    dom = dump_dom(url, tmp_path / "profile")
    # BM25 finds the two documents with "planet", "star" or "orbit" in them.
    assert card_ids(dom) == ["exoplanet-transit", "saturn-rings"]
    first, second = cards(dom)
    assert [h.text() for h in first.select("h2")] == ["Finding exoplanets by transits"]
    assert [d.text() for d in first.select(class_="doc-id")] == ["exoplanet-transit"]
    assert "source: science" in first.select(class_="meta")[0].text()
    # "When a planet passes in front of its star, the star's light ... orbital period."
    assert [m.text() for m in first.select("mark")] == ["planet", "star", "star", "orbital"]
    assert [m.text() for m in second.select("mark")] == ["planet"]
    assert [p.attrs["data-chunk-id"] for p in first.select("li", class_="passage")] == [
        "exoplanet-transit#0"
    ]
    (snippet,) = first.select("p", class_="snippet")
    assert snippet.text().startswith("When a planet passes in front of its star, the star's")
    # Per-stage explain: BM25 ranks 1 and 2, no dense stage in bm25 mode.
    stages = {s.attrs["data-stage"]: s.text() for s in first.select(class_="stage")}
    assert stages["bm25"] == "bm25 #1" and stages["dense"] == "dense –"
    assert second.select(data_stage="bm25")[0].text() == "bm25 #2"
    # Counted over the two candidates: both science and astronomy, Saturn also planets.
    assert facet_counts(dom) == {"source": {"science": 2}, "tags": {"astronomy": 2, "planets": 1}}
    assert dom.by_id("summary").text() == "results 1–2"
    assert "total" in dom.by_id("timings").text()
    assert "hidden" in dom.by_id("pager").attrs  # one page: no next, no previous
    # The fields not counted yet, offered as links that add them to the facets.
    adds = dom.by_id("facet-panel").select("a", class_="add-facet")
    assert [a.text() for a in adds] == ["published", "reviewed", "year"]
    assert query_of(adds[2].attrs["href"])["facets"] == "source,tags,year"

    pixels = screenshot(url, tmp_path / "profile", "search-page.png", tmp_path)
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 50  # not one colour: text, marks
    ys, xs = pixels_of(pixels, MARK_RGB)
    # Five marked words, each some hundreds of pixels, right of the facet sidebar.
    assert len(ys) > 1000 and xs.min() > 250


def test_facet_links_narrow_and_chips_widen(page_server: httpx.Client, tmp_path: Path) -> None:
    """Following a facet value filters on it; the chip it leaves removes it again."""
    profile = tmp_path / "profile"
    url = page_url(page_server, q=QUERY, mode="bm25", facets="source,tags")
    start = dump_dom(url, profile)
    planets_url = facet_link(start, url, "tags", "planets")
    assert json.loads(query_of(planets_url)["filter"]) == {"tags": "planets"}
    narrowed = dump_dom(planets_url, profile)
    assert card_ids(narrowed) == ["saturn-rings"]
    assert facet_counts(narrowed) == {
        "source": {"science": 1},
        "tags": {"astronomy": 1, "planets": 1},
    }
    (selected,) = narrowed.by_id("facet-panel").select("a", aria_current="true")
    assert selected.attrs["data-value"] == '"planets"'
    (chip,) = narrowed.by_id("chips").select("a", class_="chip")
    assert chip.text() == "tags: planets ×"
    # Another field's value is added to the filter ...
    both = query_of(facet_link(narrowed, planets_url, "source", "science"))
    assert json.loads(both["filter"]) == {"tags": "planets", "source": "science"}
    # ... the same field's replaces it: planets AND astronomy would leave Saturn alone.
    astronomy_url = facet_link(narrowed, planets_url, "tags", "astronomy")
    assert json.loads(query_of(astronomy_url)["filter"]) == {"tags": "astronomy"}
    assert card_ids(dump_dom(astronomy_url, profile)) == ["exoplanet-transit", "saturn-rings"]
    # The chip's link drops the filter: both documents again, and no chips.
    widened = dump_dom(urljoin(planets_url, chip.attrs["href"]), profile)
    assert card_ids(widened) == ["exoplanet-transit", "saturn-rings"]
    assert "filter" not in query_of(chip.attrs["href"])
    assert "hidden" in widened.by_id("chips").attrs

    pixels = screenshot(planets_url, profile, "search-page-facet.png", tmp_path)
    ys, xs = pixels_of(pixels, ACCENT_RGB)
    # The selected value's bar, in the sidebar: left of the results, below the form (the
    # heading "braid" is above it, the Search button right of it).
    assert np.sum((xs < 240) & (ys > 200)) > 2000


def test_hybrid_page_explains_each_stage(page_server: httpx.Client, tmp_path: Path) -> None:
    profile = tmp_path / "profile"
    filter_text = '{"source": "science"}'
    dom = dump_dom(page_url(page_server, q=QUERY, mode="hybrid", filter=filter_text), profile)
    # The filter leaves the three science documents; dense retrieval finds every one.
    assert card_ids(dom) == ["exoplanet-transit", "saturn-rings", "photosynthesis"]
    photosynthesis = cards(dom)[2]
    assert photosynthesis.select("mark") == []  # found by dense retrieval only: no marks
    stages = {s.attrs["data-stage"]: s for s in photosynthesis.select(class_="stage")}
    assert stages["bm25"].text() == "bm25 –" and "none" in stages["bm25"].attrs["class"]
    assert stages["dense"].text() == "dense #3"
    assert "adaptive" in stages  # the fusion stage, named after the method
    (chip,) = dom.by_id("chips").select("a", class_="chip")
    assert chip.text() == "source: science ×"
    # min_score travels from the URL into the request: the page drops what the API drops.
    unfiltered = api_doc_ids(page_server, mode="hybrid")
    kept = api_doc_ids(page_server, mode="hybrid", min_score=0.2)
    assert 0 < len(kept) < len(unfiltered)
    dom = dump_dom(page_url(page_server, q=QUERY, mode="hybrid", min_score="0.2"), profile)
    assert card_ids(dom) == kept


@pytest.mark.parametrize(
    ("params", "message", "control"),
    [
        ({"facets": "source,nope"}, "facet field 'nope': no document has it", "facets"),
        ({"mode": "bm25", "min_score": "0.5"}, "(at $.min_score)", "min-score"),
        ({"filter": "{source: docs}"}, "filter is not valid JSON", "filter"),
    ],
)
def test_page_shows_errors_at_their_field(
    page_server: httpx.Client,
    tmp_path: Path,
    params: dict[str, str],
    message: str,
    control: str,
) -> None:
    dom = dump_dom(page_url(page_server, q=QUERY, **params), tmp_path / "profile")
    error = dom.by_id("error")
    assert "hidden" not in error.attrs and message in error.text()
    assert dom.by_id(control).attrs.get("aria-invalid") == "true"
    assert cards(dom) == []
    assert "hidden" in dom.by_id("facet-panel").attrs and "hidden" in dom.by_id("pager").attrs


def test_next_and_previous_pages(page_server: httpx.Client, tmp_path: Path) -> None:
    """The paging buttons, clicked: pages of 5 walk the one deep list without repeats."""
    every = api_doc_ids(page_server, mode="hybrid", top_k=12)
    assert len(every) == 12  # dense retrieval ranks every document
    browser = DevTools(tmp_path / "profile")
    try:
        url = page_url(page_server, q=QUERY, mode="hybrid", top_k="5", facets="source")

        def shown() -> tuple[list[str], str, bool, bool]:
            value = browser.evaluate(
                "[[...document.querySelectorAll('#results article.doc')].map(a => a.dataset.docId),"
                " document.getElementById('summary').textContent,"
                " document.getElementById('prev').disabled,"
                " document.getElementById('next').disabled]"
            )
            return value[0], value[1], value[2], value[3]

        browser.open(url)
        assert shown() == (every[0:5], "results 1–5", True, False)
        browser.click("#next")
        assert shown() == (every[5:10], "results 6–10", False, False)
        browser.click("#next")
        assert shown() == (every[10:12], "results 11–12", False, True)
        browser.click("#prev")
        assert shown() == (every[5:10], "results 6–10", False, False)
        browser.click("#prev")
        assert shown() == (every[0:5], "results 1–5", True, False)
        browser.click("#next")
        # A facet value clicked on page 2: a new page whose filtered search is at page 1.
        science = """#facet-panel a[data-field="source"][data-value='"science"']"""
        browser.evaluate(f"document.querySelector({json.dumps(science)}).click()")
        browser.wait_for(
            "new URLSearchParams(location.search).get('filter') && document.body.dataset.searched"
        )
        ids, summary, _, _ = shown()
        assert ids == ["exoplanet-transit", "saturn-rings", "photosynthesis"]
        assert summary == "results 1–3"
        # The form shows the search the URL holds.
        assert browser.evaluate("document.getElementById('filter').value") == '{"source":"science"}'
        assert browser.evaluate("document.getElementById('top-k').value") == "5"
    finally:
        browser.close()


def test_markup_in_documents_stays_text(page_server: httpx.Client, tmp_path: Path) -> None:
    """Only the server's <mark> tags become elements: a title, a text or a metadata value
    holding markup is shown as the characters it is."""
    title = '<img src="x" onerror="document.body.dataset.pwned = 1">'
    text = "Angle brackets: <script>document.body.dataset.pwned = 1</script> and <b>bold</b>."
    doc = {"id": "markup", "title": title, "text": text, "source": "<i>web</i>"}
    added = page_server.post("/v1/documents?wait=true", json={"documents": [doc]})
    assert added.status_code == 200, added.text
    try:
        url = page_url(page_server, q="angle brackets bold", mode="bm25", facets="source")
        dom = dump_dom(url, tmp_path / "profile")
        (body,) = dom.select("body")
        assert "data-pwned" not in body.attrs
        assert card_ids(dom) == ["markup"]
        (card,) = cards(dom)
        assert [h.text() for h in card.select("h2")] == [title]
        (snippet,) = card.select("p", class_="snippet")
        assert [m.text() for m in snippet.select("mark")] == ["Angle", "brackets", "bold"]
        assert snippet.text() == text
        assert [c.tag for c in snippet.children if isinstance(c, Node)] == ["mark"] * 3
        assert facet_counts(dom) == {"source": {"<i>web</i>": 1}}
        results = dom.by_id("results-area").find_all(lambda n: n.tag in {"img", "script", "b"})
        assert results == [] and dom.by_id("facet-panel").select("i") == []
    finally:
        deleted = page_server.delete("/v1/documents/markup?wait=true")
        assert deleted.json()["job"]["result"]["deleted"] == ["markup"]
