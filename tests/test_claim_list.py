"""One list of the article's claims, one numbering, wherever the book prints it (issue 13, item 8):
the introduction (an executed MyST-NB Markdown notebook) and chapter 11 both print
``pdlib.verdict.claim_list_markdown`` of the same claims, and neither types a claim list by hand."""
from __future__ import annotations

import json
import re
from pathlib import Path

from pdlib import verdict as V

ROOT = Path(__file__).resolve().parents[1]
INTRO = ROOT / "book" / "intro.md"
CH10 = ROOT / "notebooks" / "11_verdict.ipynb"
CELL = re.compile(r"^```\{code-cell\}[^\n]*\n(.*?)^```\s*$", re.S | re.M)


def _intro_parts() -> tuple[str, list[str], str]:
    """(front matter, code of each code cell without its options, Markdown outside the cells)."""
    text = INTRO.read_text()
    assert text.startswith("---\n"), "the introduction must open with MyST-NB front matter"
    front, body = text[4:].split("\n---\n", 1)
    codes = []
    for m in CELL.finditer(body):
        src = m.group(1)
        if src.startswith("---\n"):                       # a YAML block of cell options
            src = src[4:].split("\n---\n", 1)[1]
        codes.append("\n".join(ln for ln in src.splitlines() if not ln.startswith(":")))
    return front, codes, CELL.sub("", body)


def _claim_texts() -> list[str]:
    return [t[:30] for t in V.ARTICLE_CLAIMS.values()]


def test_intro_is_an_executed_notebook_page():
    front, codes, _ = _intro_parts()
    assert "file_format: mystnb" in front and "kernelspec:" in front and "python3" in front
    assert codes and "V.claim_list_markdown(claims)" in codes[0] and "V.book_claims()" in codes[0]
    # the numbered list is CommonMark (numbered lines, bold), so it renders in any Markdown-output
    # format; only the commentary cell asks for MyST, for its citations and cross-references
    assert INTRO.read_text().count("markdown_format: myst") == 1


def test_intro_and_chapter_10_print_the_same_numbered_list(monkeypatch):
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda obj: shown.append(obj.data))
    _, codes, _ = _intro_parts()
    ns: dict = {}
    for src in codes:
        exec(compile(src, str(INTRO), "exec"), ns)
    claims = ns["claims"]
    expected = V.claim_list_markdown(V.book_claims())
    assert shown[0] == expected == V.claim_list_markdown(claims)
    # numbered 1..9 exactly as ARTICLE_CLAIMS, the L40S as claim 3
    nums = [int(ln.split(".", 1)[0]) for ln in expected.splitlines()]
    assert nums == list(range(1, 10)) and "L40S" in expected.splitlines()[2]
    # the commentary names every claim with the verdict its rule gives
    by = {c.number: c.verdict for c in claims}
    for k, verdict in by.items():
        if k not in (5, 6):
            assert f"**Claim {k}: {verdict}.**" in shown[1]
    assert f"**Claims 5 and 6: {by[5]}; {by[6]}.**" in shown[1]
    # chapter 11 prints the same function of the same claims
    nb = json.loads(CH10.read_text())
    code = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]
    assert any("claims = V.book_claims(distserve=ds" in s for s in code)
    assert any('rp.distserve_example(n=S["distserve_n"], max_gpus=S["distserve_max_gpus"]' in s for s in code)
    assert any(s.strip() == "display(Markdown(V.claim_list_markdown(claims)))" for s in code)


def test_no_page_types_a_claim_list_or_a_verdict_by_hand():
    _, _, intro_md = _intro_parts()
    nb = json.loads(CH10.read_text())
    ch11_md = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
    for text in (intro_md, ch11_md):
        for line in text.splitlines():
            if re.match(r"\s*\d+\.\s", line):
                assert not any(t in line for t in _claim_texts()), line
    # the introduction's own prose names no claim by number: numbers and verdicts come from code
    assert not re.search(r"(?i)\bclaims?\s+\d", intro_md)
    verdict_words = "|".join(re.escape(v) for v in V.VERDICTS)
    assert not re.search(rf"(?i)claim \d+ (is |:)?\s*({verdict_words})", ch11_md)
