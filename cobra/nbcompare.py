"""Compare a notebook's committed outputs with a fresh run, numbers within a stated tolerance.

Readers run the chapters on Intel and AMD CPUs (AVX2 or AVX-512) and on ARM. Their math kernels round
float32 sums in different orders, so a number printed to four decimals can differ in its last digit
from the committed one, and a model trained for a few epochs drifts a little further. Decisions that
could flip (k-means assignments, the SID of an item) are computed in float64 on the CPU so they do not
depend on the machine; what remains is rounding, and this module tells rounding from a real change:

* the text around the numbers must be identical, up to runs of whitespace (pandas pads a column to its
  widest entry, so one value printed with one more digit shifts its neighbours);
* integers must be equal (counts, sizes, ranks and epochs are decisions, not rounding);
* floats must agree within ``rtol`` of their magnitude plus one unit in the last digit printed
  (``0.229`` and ``0.2290`` are the same number; ``0.4269`` and ``0.4358`` are not).

The default ``rtol`` is :data:`DEFAULT_RTOL`. A cell whose outputs come from training, where rounding
compounds over thousands of steps, may widen it with a comment in its source that says why::

    # nbval-rtol: 0.02 -- eight epochs of float32 training; kernels differ per CPU

:func:`outputs_differ` is the whole rule; :mod:`cobra.nbval_plugin` plugs it into nbval, and
``tests/test_nbcompare.py`` shows that another seed, a broken loss or another K still fails it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator

DEFAULT_RTOL = 1e-3
"""Relative tolerance for floats when a cell states none: 50x float32's rounding at 1e4 terms."""

MAX_RTOL = 0.05
"""The widest tolerance a cell may ask for; beyond it a comparison would no longer catch a changed seed."""

_NUMBER = re.compile(
    r"(?<![\w.])"  # not inside a word ("md5", "x86_64") or after a dot
    r"[-+−]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?%?"  # 1,682  0.4269  -3  2.5e-05  12.3%
    r"|(?<![\w.])[-+−]?\.\d+(?:[eE][-+]?\d+)?%?"  # .5
)
_SPACE = re.compile(r"\s+")
_RTOL_MARK = re.compile(r"#\s*nbval-rtol:\s*([0-9.eE+-]+)\s*(?:--|—)\s*(\S.*)")


def cell_rtol(source: str) -> float:
    """The tolerance a cell asks for with ``# nbval-rtol: X -- reason``, else :data:`DEFAULT_RTOL`.

    Raises:
        ValueError: for a tolerance that is not a number in ``[0, MAX_RTOL]`` or a mark without a reason.
    """
    found = None
    for line in source.splitlines():
        if "nbval-rtol" not in line:
            continue
        m = _RTOL_MARK.search(line)
        if m is None:
            raise ValueError(f"malformed tolerance mark {line.strip()!r}: write '# nbval-rtol: 0.01 -- why'")
        try:
            found = float(m.group(1))
        except ValueError:
            raise ValueError(f"tolerance in {line.strip()!r} is not a number") from None
        if not 0.0 <= found <= MAX_RTOL:
            raise ValueError(f"tolerance {found} in {line.strip()!r} is outside [0, {MAX_RTOL}]")
    return DEFAULT_RTOL if found is None else found


def _tokens(text: str) -> Iterator[tuple[str, str]]:
    """Split ``text`` into ("text", chunk) and ("num", literal) tokens, whitespace collapsed."""
    pos = 0
    for m in _NUMBER.finditer(text):
        yield "text", _SPACE.sub(" ", text[pos : m.start()])
        yield "num", m.group(0)
        pos = m.end()
    yield "text", _SPACE.sub(" ", text[pos:])


def _parse(literal: str) -> tuple[float, bool, float]:
    """(value, is_integer, unit in the last printed digit) of a number literal."""
    s = literal.replace(",", "").replace("−", "-")
    percent = s.endswith("%")
    s = s.rstrip("%")
    mantissa, _, exponent = s.lower().partition("e")
    decimals = len(mantissa.partition(".")[2])
    is_int = "." not in mantissa and not exponent
    scale = 10.0 ** int(exponent or 0) * (0.01 if percent else 1.0)
    return float(mantissa) * scale, is_int and not percent, 10.0**-decimals * scale


def numbers_close(ref: str, test: str, rtol: float) -> bool:
    """True when two number literals name the same value up to ``rtol`` and the printed precision."""
    a, a_int, a_unit = _parse(ref)
    b, b_int, b_unit = _parse(test)
    if a_int and b_int:
        return a == b
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return abs(a - b) <= rtol * max(abs(a), abs(b)) + max(a_unit, b_unit)


def outputs_differ(ref: str, test: str, rtol: float = DEFAULT_RTOL) -> str | None:
    """Why ``test`` is not ``ref`` up to whitespace and the number tolerance, or None when they agree.

    Args:
        ref: the committed output text.
        test: the freshly computed output text.
        rtol: relative tolerance for floats.

    Returns:
        None, or one line naming the first difference.
    """
    if ref == test:
        return None
    a, b = list(_tokens(ref.strip())), list(_tokens(test.strip()))
    if [k for k, _ in a] != [k for k, _ in b]:
        return f"different number of values: {sum(k == 'num' for k, _ in a)} committed, " \
               f"{sum(k == 'num' for k, _ in b)} now"
    for (kind, x), (_, y) in zip(a, b, strict=True):
        if kind == "text" and x.strip() != y.strip():
            return f"text differs: committed {x.strip()[:60]!r}, now {y.strip()[:60]!r}"
        if kind == "num" and not numbers_close(x, y, rtol):
            return f"number differs beyond rtol={rtol:g}: committed {x}, now {y}"
    return None
