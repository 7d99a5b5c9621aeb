"""The names of the files swarmlens hands out (downloads, mailed attachments), by one scheme:

    swarmlens-WHAT-PERIOD[-PART].EXT

WHAT is a user id, ``summary``, ``task-ID``, ``search`` or a report kind (``weekly``, ``monthly``,
``custom``); PERIOD is the period's key (``2026-03``, ``2026-W10``) or its first and last day;
PART names a table of a report. Every piece is cut to characters safe in a file name on every
system, so a folder of them sorts and reads by itself.
"""

from __future__ import annotations

import re

_UNSAFE = re.compile(r"[^A-Za-z0-9._@+-]+")


def safe_part(part: str) -> str:
    """One piece of a file name, cut to characters safe on every system ("_" for what is left out)."""
    return _UNSAFE.sub("_", str(part)).strip("._") or "_"


def download_name(*parts: str, ext: str) -> str:
    """``download_name("alice", "2026-03", ext="pdf")`` -> ``swarmlens-alice-2026-03.pdf``."""
    return "-".join(["swarmlens", *(safe_part(p) for p in parts if p != "")]) + "." + ext.lstrip(".")
