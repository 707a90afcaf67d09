"""Every chapter at a profile's scale: ``python -m cobra bench chapters [--chapters 01,05] [--timeout S]``.

Explained in the README ("Full scale") and chapter 00 (book/00_introduction.py).

Each chapter's source (``book/NN_slug.py``, jupytext percent format, so plain Python) runs top to bottom in
its own process under the current profile and environment (``COBRA_PROFILE``, ``COBRA_DATASET``,
``COBRA_ENCODER``), with matplotlib's non-interactive backend and ``display`` printing. For each one it
reports whether it finished, its wall time, its peak process memory (``ru_maxrss``) and, on CUDA, its peak GPU
memory (``torch.cuda.max_memory_allocated``), with the last lines of a traceback when it failed. Outputs are not
compared: that is nbval's job at the ``cpu`` profile. This is how a chapter that only breaks at full scale is
caught: the test suite runs every chapter under the ``4090d`` profile on the tiny synthetic stand-in
(tests/test_full_scale.py), and on a GPU the same command measures the full-size one.

* :func:`run_chapter` -- one chapter in a child process;
* :func:`run` -- the command: every chapter (or ``chapters``), one after another.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from cobra.book import BOOK_DIR
from cobra.book import chapters as all_chapters
from cobra.config import ConfigError, get_profile

RESULT_TAG = "COBRA-CHAPTER-RESULT "  # the child's last stdout line: this tag, then its JSON record

_CHILD = """
import builtins, json, os, runpy, sys, time
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
plt.show = lambda *a, **k: None
builtins.display = lambda *objs, **kw: print(*objs)
start = time.perf_counter()
runpy.run_path(sys.argv[1], run_name="__main__")
record = {"seconds": round(time.perf_counter() - start, 2)}
import resource, torch
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
record["peak_rss_gb"] = round(rss / (2**30 if sys.platform == "darwin" else 2**20), 3)
if torch.cuda.is_available() and torch.cuda.is_initialized():
    record["peak_gpu_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 3)
    record["gpu"] = torch.cuda.get_device_name()
print(TAG + json.dumps(record), flush=True)
"""


def chapter_files(chapters: list[str] | None = None, book_dir: Path = BOOK_DIR) -> list[Path]:
    """The chapter sources ``book/NN_*.py``, all or those whose number is in ``chapters`` (``["01", "5"]``)."""
    files = all_chapters(book_dir)
    if chapters is None:
        return files
    wanted = {c.strip().zfill(2) for c in chapters if c.strip()}
    unknown = wanted - {f.name[:2] for f in files}
    if unknown or not wanted:
        raise ConfigError(f"--chapters: no chapter {sorted(unknown) or '(empty)'}; the chapters are "
                          f"{', '.join(f.name[:2] for f in files)}")
    return [f for f in files if f.name[:2] in wanted]


def run_chapter(path: Path, timeout: float | None = None, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run one chapter top to bottom in a child process (working directory ``book/``).

    Returns:
        dict with chapter, ok (bool), seconds (wall time of the chapter's code; of the whole child when it
        failed), peak_rss_gb (the child's peak resident memory), and peak_gpu_gb / gpu on CUDA; ``error``
        (the traceback's last lines, or the signal that killed it) when it failed,
        ``timed_out`` when it ran past ``timeout`` seconds.
    """
    start = time.perf_counter()
    record: dict[str, Any] = {"chapter": path.stem}
    try:
        child = _CHILD.replace("TAG", repr(RESULT_TAG))
        proc = subprocess.run([sys.executable, "-X", "faulthandler", "-c", child, str(path)],
                              cwd=path.parent, env={**os.environ, **(env or {})}, capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        return {**record, "ok": False, "timed_out": True, "seconds": round(time.perf_counter() - start, 2)}
    lines = proc.stdout.splitlines()
    tagged = [line for line in lines if line.startswith(RESULT_TAG)]
    if proc.returncode == 0 and tagged:
        return {**record, "ok": True, **json.loads(tagged[-1][len(RESULT_TAG):])}
    tail = "\n".join(proc.stderr.strip().splitlines()[-12:])
    if proc.returncode < 0:  # killed: a crash in native code (its stack, from faulthandler, is in the tail)
        tail = f"killed by {signal.Signals(-proc.returncode).name}\n{tail}"
    return {**record, "ok": False, "seconds": round(time.perf_counter() - start, 2), "error": tail}


def run_chapters(paths: list[Path], timeout: float | None = None, env: dict[str, str] | None = None,
                 jobs: int = 1) -> Iterator[dict[str, Any]]:
    """:func:`run_chapter` for each of ``paths``, ``jobs`` at a time; yields the records in ``paths`` order."""
    if jobs <= 1:
        for path in paths:
            yield run_chapter(path, timeout, env)
        return
    with ThreadPoolExecutor(max_workers=jobs) as pool:  # each chapter is its own process; threads only wait
        yield from pool.map(lambda path: run_chapter(path, timeout, env), paths)


def run(*, profile: str | None = None, progress: bool = True, chapters: str | None = None,
        timeout: float | None = None, jobs: int | None = None, out: str | None = None) -> dict[str, Any]:
    """``python -m cobra bench chapters``: run the chapters one by one and report each (see the module docstring).

    Args:
        profile: the profile to run under (default ``$COBRA_PROFILE``); passed to the children.
        chapters: comma-separated chapter numbers (default all). timeout: seconds per chapter (default none).
        jobs: chapters run at once (default 1; more share the machine, so their times are not comparable).
        out: also write the result there (JSON).

    Returns:
        dict with profile, dataset, encoder, chapters (one record each, see :func:`run_chapter`) and failed
        (the names of those that did not finish).
    """
    from cobra.bench.common import check_out_file, write_result

    check_out_file(out)
    prof = get_profile(profile)
    env = {"COBRA_PROFILE": prof.name, "TQDM_DISABLE": "1", "MPLBACKEND": "Agg"}
    records: list[dict[str, Any]] = []
    result = {"profile": prof.name, "dataset": prof.dataset, "encoder": prof.encoder, "chapters": records}
    paths = chapter_files(None if chapters is None else chapters.split(","))
    for path, record in zip(paths, run_chapters(paths, timeout, env, jobs or 1), strict=True):
        records.append(record)
        if out:  # after every chapter, so a run cut short keeps what it measured
            write_result({**result, "failed": [r["chapter"] for r in records if not r["ok"]]}, out)
        if progress:
            state = "ok" if record["ok"] else ("timed out" if record.get("timed_out") else "FAILED")
            gpu = f", peak GPU {record['peak_gpu_gb']:.2f} GB" if "peak_gpu_gb" in record else ""
            print(f"{path.stem:<24} {state:<9} {record['seconds']:8.1f} s{gpu}", file=sys.stderr, flush=True)
    return write_result({**result, "failed": [r["chapter"] for r in records if not r["ok"]]}, out)
