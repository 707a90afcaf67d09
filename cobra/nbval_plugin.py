"""A pytest plugin for nbval over the chapters, loaded by every pytest run here (``-p cobra.nbval_plugin``
in ``pyproject.toml``); it acts only on notebook cells collected by ``pytest --nbval``.

Two additions to plain nbval:

* Outputs are compared by :func:`cobra.nbcompare.outputs_differ`: text exactly (up to whitespace),
  integers exactly, floats within a relative tolerance (``# nbval-rtol: X -- reason`` in a cell widens
  it), so the committed outputs validate on any reader's CPU while a changed result still fails.
* After the last cell of a chapter, one more item, ``run time``, compares the chapter's wall time under
  nbval with the time its first cell states ("**Run time.** about 3 min on 2 CPU cores"); it must lie
  within a factor of 2 (times under 10 s count as 10 s: there a kernel's start-up dominates). It is
  checked on idle 2-core machines with the native kernels only, since that is what the statement is
  about; elsewhere (other core counts, perturbed kernels, a load average above 3 while the chapter ran)
  it is skipped and says why.
"""

from __future__ import annotations

import os
import re
import time
import types
from collections import defaultdict
from pathlib import Path

import pytest
from nbval.plugin import IPyNbCell, IPyNbFile, transform_streams_for_comparison

from cobra.nbcompare import cell_rtol, outputs_differ

RUN_TIME = re.compile(r"\*\*Run time\.\*\* [Aa]bout (\d+(?:\.\d+)?) (s|min) on 2 CPU cores")
# Another reader's CPU, simulated: generic ATen kernels, SSE-level MKL and oneDNN, one thread. The Makefile's
# PERTURBED (a test keeps the two equal); not the kernels a stated run time was measured with.
PERTURBED = {"ATEN_CPU_CAPABILITY": "default", "MKL_ENABLE_INSTRUCTIONS": "SSE4_2", "MKL_CBWR": "COMPATIBLE",
             "ONEDNN_MAX_CPU_ISA": "SSE41", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}

FLOOR_S = 10.0  # times under this count as this: "about 3 s" and 8 s on a busy machine both mean "seconds"
_elapsed: dict[str, float] = defaultdict(float)  # notebook path -> seconds spent in its cells (setup included)
_failed: set[str] = set()
_busiest: dict[str, float] = defaultdict(float)  # notebook path -> highest 1-min load average seen in its cells
BUSY_LOAD = 3.0  # a chapter alone loads 2 cores at most; above this something else ran beside it


def _flatten(self: IPyNbCell, outputs: list) -> dict[str, list]:
    """nbval's view of a cell's outputs: one list of values per output field or MIME type."""
    skip = self.parent.skip_compare
    flat: dict[str, list] = defaultdict(list)
    for out in transform_streams_for_comparison(outputs):
        for key, value in out.items():
            if key in skip:
                continue
            if key == "data":
                for mime, data in value.items():
                    if mime not in skip:
                        flat[mime].append(self.sanitize(data))
            else:
                flat[key].append(self.sanitize(value))
    return flat


def _compare_outputs(self: IPyNbCell, test: list, ref: list, skip_compare=None) -> bool:
    """Replaces ``IPyNbCell.compare_outputs``: the same fields, values compared with a tolerance."""
    rtol = cell_rtol(self.cell.source)
    now, committed = _flatten(self, test), _flatten(self, ref)
    self.comparison_traceback = []
    if set(now) != set(committed):
        self.comparison_traceback.append(f"output fields differ: committed {sorted(committed)}, now {sorted(now)}")
        return False
    for key, refs in committed.items():
        if len(now[key]) != len(refs):
            self.comparison_traceback.append(f"{key}: {len(refs)} outputs committed, {len(now[key])} now")
            return False
        for r, t in zip(refs, now[key], strict=True):
            why = outputs_differ(r, t, rtol) if isinstance(r, str) and isinstance(t, str) else (
                None if r == t else "values differ")
            if why:
                self.comparison_traceback += [f"{key}: {why}", "---- committed:", str(r)[-3000:],
                                              "---- now:", str(t)[-3000:]]
                return False
    return True


class RunTimeItem(pytest.Item):
    """The chapter's stated run time against its measured time under nbval (factor of 2)."""

    def runtest(self) -> None:
        if self.nodeid.split("::")[0] in _failed:
            pytest.skip("a cell of this chapter failed; its time says nothing")
        perturbed = [v for v in PERTURBED if os.environ.get(v)]
        if perturbed:
            pytest.skip(f"stated times are for the native kernels; {', '.join(perturbed)} set")
        if os.cpu_count() != 2:
            pytest.skip(f"stated times are for 2 CPU cores; this machine has {os.cpu_count()}")
        if _busiest[str(self.path)] > BUSY_LOAD:
            pytest.skip(f"the machine was busy (load average {_busiest[str(self.path)]:.1f} on 2 cores); "
                        "stated times are for an otherwise idle machine")
        source = Path(self.path).with_suffix(".py").read_text()
        m = RUN_TIME.search(source)
        assert m, f"{Path(self.path).with_suffix('.py').name} states no '**Run time.** about N min on 2 CPU cores'"
        stated = float(m.group(1)) * (60.0 if m.group(2) == "min" else 1.0)
        measured = _elapsed[str(self.path)]
        # Below FLOOR_S seconds a chapter's time is mostly its kernel's start, which varies with the load.
        lo, hi = max(stated, FLOOR_S) / 2, max(stated, FLOOR_S) * 2
        assert lo <= max(measured, FLOOR_S) <= hi, (
            f"{Path(self.path).name} states about {stated:.0f} s but ran {measured:.0f} s under nbval; "
            f"update its '**Run time.**' line")

    def repr_failure(self, excinfo, style=None):
        return str(excinfo.value)  # the message says it all; no traceback of the plugin

    def reportinfo(self):
        return self.path, 0, f"{self.path.name}::run time"


def pytest_collection_modifyitems(session, config, items):
    """Give every chapter cell the tolerant comparison, and append a run-time check after each chapter."""
    out, last_parent = [], None
    for item in items:
        if last_parent is not None and item.parent is not last_parent:
            out.append(RunTimeItem.from_parent(last_parent, name="run time"))
            last_parent = None
        out.append(item)
        if isinstance(item, IPyNbCell):
            item.compare_outputs = types.MethodType(_compare_outputs, item)
            if isinstance(item.parent, IPyNbFile) and Path(item.path).name[:2].isdigit():
                last_parent = item.parent
    if last_parent is not None:
        out.append(RunTimeItem.from_parent(last_parent, name="run time"))
    items[:] = out


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    start = time.perf_counter()
    yield
    if isinstance(item, IPyNbCell):
        _elapsed[str(item.path)] += time.perf_counter() - start
        if hasattr(os, "getloadavg"):
            _busiest[str(item.path)] = max(_busiest[str(item.path)], os.getloadavg()[0])


def pytest_runtest_logreport(report):
    if report.failed and ".ipynb::" in report.nodeid:
        _failed.add(report.nodeid.split("::")[0])


def pytest_terminal_summary(terminalreporter):
    """One line per chapter: its wall time under nbval, to compare with (or update) its '**Run time.**' line."""
    chapters = {Path(p).name: t for p, t in _elapsed.items() if Path(p).name[:2].isdigit()}
    if chapters:
        terminalreporter.write_sep("-", "chapter wall times under nbval")
        for name, seconds in sorted(chapters.items()):
            terminalreporter.write_line(f"{name:32s} {seconds:7.1f} s")
