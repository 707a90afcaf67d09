"""Readable MovieLens titles: ``"Usual Suspects, The (1995)"`` -> ``"The Usual Suspects"``.

Explained in chapter 02 (book/02_item_embeddings.py). :func:`film_rows` finds the chapters' example films
by title, and stands in popular items where a dataset lacks them.

:func:`display_title` is shared by :mod:`cobra.text` (item texts, and re-exported
there as ``cobra.text.display_title``) and :mod:`cobra.tmdb` (search queries). It
lives on its own so that neither of those two modules imports the other at import time.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np
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


def film_rows(titles: Sequence[str], wanted: Sequence[str], popularity: Sequence[float] | np.ndarray) -> list[int]:
    """0-based rows of the ``wanted`` titles in ``titles``, for a chapter's worked examples.

    A title the dataset lacks (another MovieLens variant, your own data, the synthetic stand-in) is replaced
    by the most popular item not chosen yet, so the examples run on any dataset.

    Args:
        titles: (N,) display titles, row ``i`` = item ``i + 1``. wanted: titles to look up, in order.
        popularity: (N,) how often each item was rated; ties go to the lower row.
    """
    index = {t: i for i, t in reversed(list(enumerate(titles)))}  # the first row of a repeated title
    rows = [index.get(t, -1) for t in wanted]
    spare = (i for i in np.argsort(-np.asarray(popularity, dtype=np.float64), kind="stable") if i not in rows)
    return [row if row >= 0 else int(next(spare)) for row in rows]


__all__ = ["display_title", "film_rows"]
