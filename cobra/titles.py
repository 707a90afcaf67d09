"""Readable MovieLens titles: ``"Usual Suspects, The (1995)"`` -> ``"The Usual Suspects"``.

Explained in chapter 02 (book/02_item_embeddings.py).

:func:`display_title` is shared by :mod:`cobra.text` (item texts, and re-exported
there as ``cobra.text.display_title``) and :mod:`cobra.tmdb` (search queries). It
lives on its own so that neither of those two modules imports the other at import time.
"""

from __future__ import annotations

import re
from typing import Any

import pandas as pd

_ARTICLES = ("The", "A", "An", "Les", "La", "Le", "L'", "Il", "Das", "Der", "Die", "El")
_TRAILING_ARTICLE = re.compile(r"^(.*?), (" + "|".join(re.escape(a) for a in _ARTICLES) + r")(\s*\(.*\))?$")


def _no_year(year: Any) -> bool:
    if year is None:
        return True
    if isinstance(year, str):
        return not year.strip()
    try:
        return bool(pd.isna(year))
    except (TypeError, ValueError):
        return False


def display_title(title: str, year: Any = None) -> str:
    """Readable title: drop a trailing ``(year)`` and move a trailing article to the front.

    ``"Usual Suspects, The (1995)"`` -> ``"The Usual Suspects"``.
    """
    title = " ".join(str(title).split())
    if not _no_year(year):
        title = re.sub(rf"\s*\({int(year)}\)$", "", title)
    title = re.sub(r"\s*\(\d{4}\)$", "", title)
    # "Shawshank Redemption, The" and "City of Lost Children, The (Cité des ...)" alike.
    match = _TRAILING_ARTICLE.match(title)
    if match:
        head, article, rest = match.groups()
        sep = "" if article.endswith("'") else " "
        title = f"{article}{sep}{head}{rest or ''}"
    return title


__all__ = ["display_title"]
