"""The body of a notification mail, once, as its plain-text and its HTML part.

A ``MailBody`` holds what a message says (heading, paragraphs, a short table of figures, one link,
a footer); ``text()`` and ``html()`` render the same content, so the two parts of a mail never say
different things. The HTML comes from ``templates/mail.html`` through Jinja2 with autoescape on
(every user id, plan name and figure is escaped); it needs neither Flask nor a request.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field
from functools import lru_cache


@dataclass
class MailBody:
    subject: str
    heading: str
    paragraphs: list[str] = field(default_factory=list)
    facts: list[tuple[str, str]] = field(default_factory=list)  # (label, value shown as is)
    link: tuple[str, str] | None = None  # (label, absolute URL)
    footer: str = ""
    tone: str = ""  # '', 'warn' or 'bad': the heading's colour

    def text(self) -> str:
        out = [self.heading, ""]
        for p in self.paragraphs:
            out += [textwrap.fill(p, 78, break_long_words=False, break_on_hyphens=False), ""]
        if self.facts:
            width = max(len(label) for label, _ in self.facts)
            out += [f"  {label + ':':<{width + 1}}  {value}" for label, value in self.facts] + [""]
        if self.link:
            out += [f"{self.link[0]}: {self.link[1]}", ""]
        if self.footer:
            out += ["-- ", textwrap.fill(self.footer, 78, break_long_words=False)]
        return "\n".join(out).rstrip() + "\n"

    def html(self) -> str:
        return _template().render(body=self)


@lru_cache(maxsize=1)
def _template():
    import jinja2

    env = jinja2.Environment(loader=jinja2.PackageLoader("swarmlens", "templates"),
                             autoescape=True, undefined=jinja2.StrictUndefined)
    return env.get_template("mail.html")
