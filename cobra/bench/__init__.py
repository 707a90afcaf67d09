"""Benchmarks: ``python -m cobra bench NAME [options] [--json]``, one module each.

Speed and quality targets live here, not in timed unit tests: each benchmark runs its contenders side
by side in one process and reports what it measured (and the ratios between them), so a noisy shared
machine hurts every contender alike.

* ``bench data`` (:mod:`cobra.bench.data`, chapter 01) -- 20M synthetic interactions -> sequences and split.
* ``bench sid`` (:mod:`cobra.bench.sid`, chapter 04) -- the SID methods side by side.
* ``bench speed`` (:mod:`cobra.bench.speed`, chapter 05) -- HSTU vs SASRec throughput at T = 50..400, and
  the ``4090d`` presets' peak memory.
* ``bench quality [--models a,b] [--seeds 3] [--set K=V ...] [--resume] [--out FILE]``
  (:mod:`cobra.bench.quality`, chapter 11) -- HR@10 / NDCG@10 over seeds for a list of presets.
* ``bench tune [--models a,b] [--jobs N] [--out FILE]`` (:mod:`cobra.bench.tune`, chapter 11) -- the same
  grid for every compared preset, chosen on validation.
* ``bench ablate [--variants a,b] [--seeds N] [--test] [--jobs N] [--out FILE]`` (:mod:`cobra.bench.ablate`,
  chapter 11) -- COBRA's ablations, on validation first.
* ``bench jobs [--models a,b] [--epochs N] [--out FILE]`` (:mod:`cobra.bench.jobs`, chapter 11) -- two runs
  one after the other with every thread, or side by side with half each (what ``--jobs 2`` does).
* ``bench batch [--batch-sizes 16,64,256] [--negatives in-batch,catalogue] [--seeds 3] [--device D]
  [--jobs N] [--out FILE]`` (:mod:`cobra.bench.batch`, chapter 09) -- COBRA per (VID negatives, batch size).
* ``bench scale [--models hstu,cobra] [--steps N] [--out FILE]`` (:mod:`cobra.bench.scale`) -- each preset of
  the profile measured on its dataset: inputs, seconds per training step and per epoch, one full evaluation,
  peak GPU memory.
* ``bench chapters [--chapters 01,05] [--timeout S] [--out FILE]`` (:mod:`cobra.bench.chapters`) -- every
  chapter run top to bottom at the current profile, with its wall time and peak GPU memory.

Every one also takes ``--profile`` and ``--json``. :data:`BENCHMARKS` registers them; each module's
``run(*, profile, progress, **options)`` is the command, with the benchmark's flags (declared in
:mod:`cobra.cli`) as keyword arguments. :mod:`cobra.bench.common` holds what they share: result files
(``--out``), mean and standard deviation over seeds, the machine description.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Benchmark:
    """One benchmark: its help line and the module whose ``run`` is the command (imported only to run it)."""

    help: str
    module: str

    def run(self, **options: Any) -> dict[str, Any]:
        """Import the module (torch and the rest load now, not for ``--help``) and call its ``run(**options)``."""
        return importlib.import_module(self.module).run(**options)


BENCHMARKS: dict[str, Benchmark] = {
    "data": Benchmark("sequences and the leave-one-out split from 20M synthetic ML-20M-shaped interactions",
                      "cobra.bench.data"),
    "sid": Benchmark("the three SID methods and scikit-learn's KMeans on ML-100K vectors and a 27k x 1024 set",
                     "cobra.bench.sid"),
    "speed": Benchmark("training throughput and peak memory of HSTU and SASRec at T = 50..400",
                       "cobra.bench.speed"),
    "quality": Benchmark("mean and std of HR@10 / NDCG@10 over seeds for a list of presets, with the popular "
                         "baseline", "cobra.bench.quality"),
    "tune": Benchmark("validation NDCG@10 of every compared preset on the same grid (lr x dropout), and each "
                      "one's best point", "cobra.bench.tune"),
    "ablate": Benchmark("COBRA's ablations (ID embedding, SID levels and uniqueness, negatives, lambda) on "
                        "validation, and on test for the chosen ones", "cobra.bench.ablate"),
    "jobs": Benchmark("two runs of a preset one after the other with every thread, and side by side with half "
                      "each: wall seconds and the ratio", "cobra.bench.jobs"),
    "batch": Benchmark("COBRA's test NDCG@10 per (VID negatives, batch size), trained to convergence on one step "
                       "clock", "cobra.bench.batch"),
    "scale": Benchmark("each preset of the profile on its dataset: input, epoch and full-evaluation time and peak "
                       "GPU memory", "cobra.bench.scale"),
    "chapters": Benchmark("every chapter top to bottom at the current profile: wall time and peak GPU memory",
                          "cobra.bench.chapters"),
}
