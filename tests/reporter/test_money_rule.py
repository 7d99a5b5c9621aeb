"""One money rule on every page and PDF: every dollar amount the reporter shows, found by walking
every same-origin link from the dashboard as ops (pages and their PDFs), has cents from a cent up
and more digits only below a cent, and no amount reads as a zero with extra decimals ("$0.00000")."""

from __future__ import annotations

import io
import re
from collections import deque
from decimal import Decimal
from html.parser import HTMLParser
from urllib.parse import urldefrag, urljoin, urlsplit

MONEY = re.compile(r"(-?<?)\$([0-9][0-9,]*(?:\.[0-9]+)?)")


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            href = dict(attrs).get("href")
            if href:
                self.links.append(href)


def broken_amounts(text: str) -> list[str]:
    """The amounts of ``text`` that break the rule."""
    bad = []
    for m in MONEY.finditer(text):
        sign, number = m.groups()
        if "<" in sign:  # "<$0.000001": a non-zero amount below the smallest shown
            continue
        whole, _, decimals = number.replace(",", "").partition(".")
        value = Decimal(number.replace(",", ""))
        if value >= Decimal("0.01") or value == 0:
            ok = len(decimals) == 2  # cents
        else:  # below a cent: two significant digits
            ok = len(decimals.lstrip("0")) == 2 and len(decimals) <= 6
        if not ok:
            bad.append(m.group(0))
    return bad


def test_the_rule_itself():
    assert broken_amounts("$0.03 $1,234.50 $0.0077 $0.000042 $0.00 <$0.000001") == []
    assert broken_amounts("$0.02895 $0.00000 $0.0045 $12.5000 $0.01") == ["$0.02895", "$0.00000", "$12.5000"]


def test_every_amount_on_every_page_and_pdf_follows_the_rule(ops):
    from pypdf import PdfReader

    seen, queue, pages, pdfs = set(), deque(["/"]), 0, 0
    problems: dict[str, list[str]] = {}
    amounts = 0
    while queue and len(seen) < 400:
        path = queue.popleft()
        if path in seen:
            continue
        seen.add(path)
        r = ops.get(path)
        if r.status_code != 200:
            continue
        kind = r.headers.get("Content-Type", "")
        if kind.startswith("application/pdf"):
            pdfs += 1
            text = "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(r.data)).pages)
        elif kind.startswith("text/html"):
            pages += 1
            text = r.get_data(as_text=True)
            parser = _Links()
            parser.feed(text)
            for href in parser.links:
                url = urldefrag(urljoin("http://localhost" + path, href))[0]
                parts = urlsplit(url)
                if parts.netloc != "localhost" or parts.path in ("/logout",) or parts.path.endswith(".csv") \
                        or "format=csv" in parts.query or parts.path.startswith("/static/"):
                    continue
                queue.append(parts.path + (f"?{parts.query}" if parts.query else ""))
            text = re.sub(r"<[^>]+>", " ", text)
        else:
            continue
        amounts += len(MONEY.findall(text))
        bad = broken_amounts(text)
        if bad:
            problems[path] = bad
    assert pages >= 15 and pdfs >= 2, (pages, pdfs)
    assert amounts >= 50, amounts  # the walk saw money, or it proves nothing
    assert problems == {}, "\n".join(f"{k}: {v}" for k, v in problems.items())
