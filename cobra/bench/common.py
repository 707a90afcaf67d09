"""What the benchmarks share: result files, mean and standard deviation, and where a benchmark ran.

* :func:`write_result` -- ``--out FILE``: the result as indented JSON, with the ``command`` that made it
  and the ``machine`` it ran on (:func:`machine`), so a number quoted from the file says how to remake
  it; :func:`check_out_file` refuses a directory before a benchmark starts. Chapters read these files
  back with :func:`cobra.book.load_result`.
* :func:`mean_std` -- ``{key_mean, key_std}`` over seeds, the sample standard deviation.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cobra.config import ConfigError


def mean_std(key: str, values: Sequence[float]) -> dict[str, float]:
    """``{key_mean, key_std}`` of ``values``; the sample standard deviation (``ddof = 1``), 0 for one value."""
    return {f"{key}_mean": float(statistics.fmean(values)),
            f"{key}_std": float(statistics.stdev(values)) if len(values) > 1 else 0.0}


def machine() -> str:
    """One line on where a benchmark ran: CPU cores, torch version, GPU if any."""
    import torch

    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
    return f"{os.cpu_count()} CPU cores, torch {torch.__version__}, {gpu}"


def write_result(result: dict[str, Any], out: str | None) -> dict[str, Any]:
    """``--out FILE``: also write ``result`` there as indented JSON (parents created).

    The file also records ``command`` (this process's ``python -m cobra ...`` line) and ``machine``,
    so a number quoted from it says how to remake it. Returns ``result`` plus those keys and ``out``.
    """
    if not out:
        return result
    check_out_file(out)
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"command": "python -m cobra " + " ".join(sys.argv[1:]), "machine": machine(), **result}
    path.write_text(json.dumps(record, indent=2) + "\n")
    return {**record, "out": str(path)}


def check_out_file(out: str | Path | None) -> None:
    """Refuse an ``--out`` that names a directory (checked before a benchmark runs, not after)."""
    if out and Path(out).is_dir():
        raise ConfigError(f"--out {out} is a directory; a benchmark's --out takes a file to write its JSON result "
                          f"to, e.g. --out {Path(out) / 'bench.json'}")
