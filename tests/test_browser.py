"""The rendered book in a real browser: headless Chromium opens every page of the HTML build.

For each page of the table of contents, Chromium loads the built HTML from disk, runs its scripts (MathJax
among them, served by the book itself) and hands back the DOM it rendered. The test then checks what a
reader would see: internal links and images that lead somewhere, math typeset by MathJax with no raw
``$$`` left, citations that link into the bibliography, and exercise solutions folded away until clicked.
It saves screenshots of a few pages into the build (``_screenshots/``) for a person to look at.

Chromium is Debian's ``chromium`` package. ``.ci/run`` installs it, so CI always runs this test; on a machine
without it the test is skipped and says how to install it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
import yaml
from bs4 import BeautifulSoup

ROOT = Path(__file__).resolve().parent.parent
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
         "--virtual-time-budget=20000"]  # let scripts (MathJax) finish before the DOM or the picture is taken
SCREENSHOTS = ("index", "book/05_hstu", "book/11_experiments")
pytestmark = [pytest.mark.book, pytest.mark.slow]


def _pages() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    return [toc["root"]] + [c["file"] for part in toc.get("parts", []) for c in part["chapters"]]


@pytest.fixture(scope="module")
def chromium() -> str:
    found = next((path for name in BROWSERS if (path := shutil.which(name))), None)
    if found is None:
        message = ("Chromium is not installed, so the rendered book cannot be checked in a browser; install it "
                   "(Debian/Ubuntu: apt-get install chromium) to run this test")
        if os.environ.get("CI"):
            pytest.fail(message + " (.ci/run installs it in CI)")
        pytest.skip(message)
    return found


def _run(chromium: str, *args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([chromium, *FLAGS, *args], capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, f"chromium {' '.join(args)} failed:\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def rendered(chromium: str, book_html: Path) -> dict[str, BeautifulSoup]:
    """Page -> the DOM Chromium rendered (after scripts ran)."""
    return {page: BeautifulSoup(_run(chromium, "--dump-dom", (book_html / f"{page}.html").as_uri()).stdout,
                                "html.parser") for page in _pages()}


def _ids(path: Path, cache: dict[Path, set[str]]) -> set[str]:
    if path not in cache:
        soup = BeautifulSoup(path.read_text(), "html.parser")
        cache[path] = {tag["id"] for tag in soup.find_all(id=True)}
    return cache[path]


def test_links_and_images_lead_somewhere(rendered: dict[str, BeautifulSoup], book_html: Path) -> None:
    broken, ids = [], {}
    for page, soup in rendered.items():
        here = book_html / f"{page}.html"
        for tag, attr in (("a", "href"), ("img", "src"), ("link", "href"), ("script", "src")):
            for el in soup.find_all(tag, **{attr: True}):
                url = urlsplit(el[attr])
                if url.scheme or url.netloc or el[attr].startswith("data:"):
                    continue  # external (the test has no network) or inline
                target = (here.parent / unquote(url.path)).resolve() if url.path else here
                if not target.exists():
                    broken.append(f"{page}: <{tag} {attr}={el[attr]!r}> -> missing {target.name}")
                elif url.fragment and target.suffix == ".html" and url.fragment not in _ids(target, ids):
                    broken.append(f"{page}: <{tag} {attr}={el[attr]!r}> -> no #{url.fragment} in {target.name}")
    assert not broken, "\n".join(broken[:30])


def test_math_is_typeset_by_mathjax(rendered: dict[str, BeautifulSoup]) -> None:
    with_math = 0
    for page, soup in rendered.items():
        math = soup.select(".math")
        typeset = soup.find_all("mjx-container")
        assert len(typeset) >= len(math), f"{page}: {len(math)} math elements, {len(typeset)} typeset by MathJax"
        text = soup.select_one("main").get_text() if soup.select_one("main") else soup.get_text()
        assert "$$" not in text, f"{page}: raw $$ in the rendered text"
        with_math += bool(math)
    assert with_math >= 5, "the chapters have equations; MathJax saw almost none"


def test_citations_link_into_the_bibliography(rendered: dict[str, BeautifulSoup], book_html: Path) -> None:
    cited = 0
    for page, soup in rendered.items():
        main = soup.select_one("main") or soup
        assert "{cite}" not in main.get_text(), f"{page}: an unrendered {{cite}} role"
        for a in main.select("a[href*='bibliography.html#']"):
            cited += 1
            assert a.get_text(strip=True), f"{page}: an empty citation link"
    assert cited >= 10, f"only {cited} citation links in the whole book"
    bibliography = rendered["book/bibliography"]
    assert len(bibliography.select("div.citation, dl.citation > dt, .bibliography dt, dl.citation dt")) >= 5


def test_solutions_are_folded_until_clicked(rendered: dict[str, BeautifulSoup]) -> None:
    for page, soup in rendered.items():
        for solution in soup.select(".solution"):
            details = solution if solution.name == "details" else solution.find_parent("details")
            hidden = (details is not None and not details.has_attr("open")) or "toggle-hidden" in solution["class"]
            assert hidden, f"{page}: a solution is shown without a click"


def test_screenshots_for_a_person_to_look_at(chromium: str, book_html: Path) -> None:
    out = book_html / "_screenshots"
    out.mkdir(exist_ok=True)
    for page in SCREENSHOTS:
        png = out / f"{page.replace('/', '_')}.png"
        _run(chromium, "--window-size=1280,2400", f"--screenshot={png}", (book_html / f"{page}.html").as_uri())
        assert png.stat().st_size > 20_000, f"{png} looks empty"
    print(f"screenshots in {out}")
