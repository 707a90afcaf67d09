"""What the benchmarks share: result files, mean and standard deviation, and where a benchmark ran.

* :func:`write_result` -- ``--out FILE``: the result as indented JSON, with the ``command`` that made it,
  the ``machine`` and ``cpu`` it ran on (:func:`machine`, :func:`cpu_model`) and its wall time, so a
  number quoted from the file says how to remake it; :func:`check_out_file` refuses a directory before
  a benchmark starts. Chapters read these files back with :func:`cobra.book.load_result`.
* :func:`mean_std` -- ``{key_mean, key_std}`` over seeds, the sample standard deviation.
* :func:`fit_runs` -- train a set of runs, one after the other or several at once (``--jobs``), each
  resuming where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import os
import statistics
import sys
import time
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cobra.config import ConfigError

if TYPE_CHECKING:
    from cobra.presets import RunConfig


_STARTED = time.monotonic()  # a benchmark command imports this module first: its wall time counts from here


def mean_std(key: str, values: Sequence[float]) -> dict[str, float]:
    """``{key_mean, key_std}`` of ``values``; the sample standard deviation (``ddof = 1``), 0 for one value."""
    return {f"{key}_mean": float(statistics.fmean(values)),
            f"{key}_std": float(statistics.stdev(values)) if len(values) > 1 else 0.0}


def settings_tag(sets: Mapping[str, Any]) -> str:
    """Eight hex digits that name a set of ``--set`` overrides (for run directories: other settings, other runs)."""
    return hashlib.sha256(json.dumps(dict(sets), sort_keys=True).encode()).hexdigest()[:8]


def machine() -> str:
    """One line on where a benchmark ran: CPU cores, torch version, GPU if any."""
    import torch

    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
    return f"{os.cpu_count()} CPU cores, torch {torch.__version__}, {gpu}"


def cpu_model() -> str:
    """The CPU's model name (``"AMD EPYC 7B13"``, ``"Intel(R) Xeon(R) Processor"``), ``"unknown"`` where
    the system does not say: float32 results differ in their last digits from one CPU type to another."""
    import platform

    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware")):  # x86 and most ARM kernels
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


# Environment variables that change what a command computes (cobra.config), recorded in its command line.
COMMAND_ENV = ("COBRA_PROFILE", "COBRA_DATASET", "COBRA_ENCODER", "COBRA_MAX_EPOCHS")


def command_line() -> str:
    """This process's ``python -m cobra ...`` line, preceded by the ``COBRA_*`` settings it ran with."""
    env = " ".join(f"{k}={os.environ[k]}" for k in COMMAND_ENV if os.environ.get(k))
    return (env + " " if env else "") + "python -m cobra " + " ".join(sys.argv[1:])


def write_result(result: dict[str, Any], out: str | None) -> dict[str, Any]:
    """``--out FILE``: also write ``result`` there as indented JSON (parents created).

    The file also records ``command`` (this process's command line, :func:`command_line`), ``machine``,
    ``cpu`` (:func:`cpu_model`) and ``wall_s`` (seconds since the command began), so a number quoted
    from it says how to remake it, where it came from and how long that takes. Returns ``result`` plus
    those keys and ``out``.
    """
    if not out:
        return result
    check_out_file(out)
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"command": command_line(), "machine": machine(), "cpu": cpu_model(),
              "wall_s": round(time.monotonic() - _STARTED, 1), **result}
    path.write_text(json.dumps(record, indent=2) + "\n")
    return {**record, "out": str(path)}


def check_out_file(out: str | Path | None) -> None:
    """Refuse an ``--out`` that names a directory (checked before a benchmark runs, not after)."""
    if out and Path(out).is_dir():
        raise ConfigError(f"--out {out} is a directory; a benchmark's --out takes a file to write its JSON result "
                          f"to, e.g. --out {Path(out) / 'bench.json'}")


def _fit_quietly(config: RunConfig, run_dir: Path, threads: int) -> dict[str, Any]:
    """One run in a worker process: ``threads`` CPU threads, no progress bar, resumed where it stopped."""
    import torch

    from cobra.train import fit

    torch.set_num_threads(threads)
    return fit(config, run_dir, resume=True, progress=False)


def fit_runs(tasks: Mapping[Hashable, tuple[RunConfig, Path]], jobs: int = 1, progress: bool = False
             ) -> dict[Hashable, dict[str, Any]]:
    """Train every ``(config, run_dir)`` of ``tasks`` and return ``{key: fit result}``.

    Finished runs are read back and unfinished ones resume (:func:`cobra.train.fit` with ``resume=True``), so
    an interrupted benchmark continues where it stopped. ``jobs > 1`` trains that many at once, each in its
    own process with ``cpu_count // jobs`` threads: on a small CPU, two one-thread runs side by side finish
    sooner than two two-thread runs one after the other (``python -m cobra bench jobs`` measures it); with
    ``progress`` a bar then counts the runs as they finish.
    """
    if jobs < 1:
        raise ConfigError(f"--jobs must be >= 1, got {jobs}")
    if jobs == 1:
        from cobra.train import fit

        return {key: fit(c, d, resume=True, progress=progress) for key, (c, d) in tasks.items()}
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    from tqdm.auto import tqdm

    threads = max(1, (os.cpu_count() or 1) // jobs)
    done: dict[Hashable, dict[str, Any]] = {}
    with (ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool,
          tqdm(total=len(tasks), desc=f"runs, {jobs} at once", unit="run", disable=not progress) as bar):
        futures = {pool.submit(_fit_quietly, c, d, threads): key for key, (c, d) in tasks.items()}
        for future in as_completed(futures):
            done[futures[future]] = future.result()
            bar.update()
    return {key: done[key] for key in tasks}
