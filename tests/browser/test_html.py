"""The built book shows no plumbing: no traceback, no warning text, no absolute path of the build machine, no
placeholder such as ``<hash>``, no Python repr of a plot object. Runs after the book is built (``make test``);
skipped when it is not."""
import re
from pathlib import Path

import pytest

from test_pages import HTML, toc_pages

BAD = {
    "a traceback": re.compile(r"Traceback \(most recent call last\)"),
    "a warning": re.compile(r"\b\w*Warning: |\bwarnings\.warn\("),
    "an absolute path": re.compile(r"(?<![\w.:/])/(?:work|home|root|tmp|usr|opt)/[\w.-]+/"),
    "a placeholder": re.compile(r"&lt;hash&gt;|<hash>"),
    "a plot object's repr": re.compile(r"&lt;(?:Figure|Axes|matplotlib)[ .:]|\bText\(\d|\[&lt;matplotlib"),
}


def _text(path: Path) -> str:
    """The page's visible text: scripts, styles and tags left out."""
    raw = path.read_text(errors="replace")
    raw = re.sub(r"<(script|style)\b.*?</\1>", " ", raw, flags=re.S | re.I)
    return re.sub(r"<[^>]+>", " ", raw)


@pytest.mark.parametrize("page_file", toc_pages())
def test_no_plumbing_on_the_page(page_file):
    path = HTML / f"{page_file}.html"
    if not path.exists():
        pytest.skip(f"the book is not built ({path} missing)")
    text = _text(path)
    found = {what: m.group(0) for what, pattern in BAD.items() if (m := pattern.search(text))}
    assert not found, f"{page_file}: " + "; ".join(f"{what} ({snippet!r})" for what, snippet in found.items())


def test_the_check_catches_what_it_looks_for(tmp_path):
    page = tmp_path / "p.html"
    page.write_text("<p>/work/main/notebooks/x.py:12: UserWarning: careful</p><p>&lt;hash&gt;</p>")
    text = _text(page)
    assert {w for w, p in BAD.items() if p.search(text)} == {"a warning", "an absolute path", "a placeholder"}
