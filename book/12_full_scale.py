# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 12. Appendix: the book at full scale on one 24 GB GPU
#
# **Goal.** Run every chapter at the scale the papers use, MovieLens-20M and
# the `Qwen3-Embedding-0.6B` text encoder, on one RTX 4090D (24 GB). You will see what
# the `4090d` profile changes, how to set up the environment, what is
# downloaded, how long each preset and each chapter takes and how much GPU
# memory it needs (measured on a named card, or estimated and marked so), and
# what to change for a smaller card. Everything in this appendix is read from
# the benchmark results committed in `book/results/`, so it runs in seconds
# on any machine.
#
# **Prerequisites.** {doc}`chapter 00 <00_introduction>` (the two profiles)
# and {doc}`chapter 05 <05_hstu>` (presets and training runs).
#
# **Run time.** About 3 s on 2 CPU cores (`cpu` profile; measured by the nbval run, which checks it).

# %%
from dataclasses import asdict

import pandas as pd

from cobra.bench.scale import (
    CHAPTER_COLUMNS,
    PRESET_COLUMNS,
    chapter_table,
    preset_table,
)
from cobra.book import BOOK_DIR, chapters, claim, glue, load_result, setup
from cobra.config import PROFILES
from cobra.exercises import check
from cobra.movielens import DATASETS
from cobra.text import QWEN3_MODEL

profile = setup()
scale, by_chapter = load_result("scale_4090d_h200"), load_result("chapters_4090d_h200")
print(f"profile {profile.name}; the full-scale results were measured on\n"
      f"{scale['machine']}")

# %% [markdown]
# ## What the profile changes
#
# One environment variable, `COBRA_PROFILE=4090d`, switches every chapter,
# preset and command from the laptop scale to the full one. The two profiles
# side by side (`cobra.config.PROFILES`):

# %%
profiles = pd.DataFrame({name: asdict(p) for name, p in PROFILES.items()})
profiles[profiles["cpu"] != profiles["4090d"]]

# %% [markdown]
# Every preset then takes the `4090d` sizes (`hstu-4090d`, `cobra-4090d`,
# ...): longer histories, more codes per level, a larger model width, bf16
# autocast and `torch.compile` on CUDA. Two more variables replace a
# profile's parts without editing anything: `COBRA_DATASET` (another dataset,
# e.g. your own log or the synthetic stand-in below) and `COBRA_ENCODER`
# (another text encoder); `COBRA_MAX_EPOCHS` caps every preset's epochs for
# a dry run.
#
# ## The environment
#
# The repository's `environment.yml` creates a conda environment with
# PyTorch's CUDA wheels and the package in editable mode:
#
# ```bash
# conda env create -f environment.yml && conda activate cobra
# export COBRA_PROFILE=4090d
# python -m cobra data --json     # downloads and checks MovieLens-20M
# jupyter lab book/
# ```
#
# The file itself:

# %%
print((BOOK_DIR.parent / "environment.yml").read_text().strip())

# %% [markdown]
# ## What is downloaded
#
# The datasets come from GroupLens; each archive is checked against its
# pinned size and digest before it is unpacked, so a truncated or corrupted
# download is refused, never silently used. The text encoder of the `4090d`
# profile comes from the Hugging Face hub on first use and its embeddings
# are cached under `data/cache`.

# %%
downloads = pd.DataFrame(
    [{"dataset": name, "archive (MB)": round(spec.size / 1e6, 1) if spec.size else None,
      "checked by": "sha256" if spec.sha256 else "md5" if spec.md5 else "size only"}
     for name, spec in DATASETS.items()]).set_index("dataset")
print(f"4090d profile: dataset {PROFILES['4090d'].dataset}, encoder "
      f"{PROFILES['4090d'].encoder} ({QWEN3_MODEL})")
downloads

# %% [markdown]
# Where MovieLens-20M cannot be downloaded (as on the machines that built
# this book), `COBRA_DATASET=ml-20m-synthetic` generates a stand-in with its
# shape: the same numbers of users, films and events, heavy-tailed activity
# and popularity, timestamps and item vectors as wide as the encoder's. It
# measures time and memory; its metrics mean nothing, and every output made
# from it says `synthetic`. All the figures below were measured on it.
#
# ## Time and memory per preset
#
# `python -m cobra bench scale` trains each `4090d` preset for a few steps
# on the full-size stand-in and evaluates every user against the whole
# catalogue, recording the peak GPU memory of each (`torch.cuda`'s
# `max_memory_allocated`). An epoch is the seconds per step times the
# epoch's steps. Evaluations marked `≤` were extrapolated from a sample of
# users and include start-up costs, so they are upper bounds:

# %%
train_peak = {r["preset"]: r["train_peak_gb"] for r in scale["presets"]}
largest_peak = glue("largest_peak", max(max(r["train_peak_gb"], r["eval_peak_gb"])
                                        for r in scale["presets"]))
glue("peak_preset", max(train_peak, key=train_peak.get))
print(f"measured on {scale['machine'].split(' (')[0]}, {scale['dataset']}")
pd.DataFrame(preset_table(scale), columns=PRESET_COLUMNS).set_index("preset")

# %% [markdown]
# The largest peak, {glue:text}`largest_peak:.2f` GB ({glue:text}`peak_preset`
# in training), leaves most of a 24 GB card free. These are H200 figures: a
# 4090D has the same memory needs but computes several times slower, so
# multiply the times, not the memory. No 4090D was measured.
#
# ## Time and memory per chapter
#
# `python -m cobra bench chapters` executes each chapter under the `4090d`
# profile with a time limit and records its wall time, its peak process
# memory and its peak GPU memory. On the H200 the lease allowed 90 s per
# chapter. The chapters that train did not fit; their times are estimated
# from the preset table above, with the epochs and runs each chapter trains
# (`cobra.bench.scale.chapter_estimates`). The other chapters that did not
# finish there (and those written after that run) were run to the end with
# the same command and data on 2 CPU cores, no GPU; their rows give that
# run's time and its peak process memory as a bound on the GPU memory (a
# tensor on the GPU was a tensor in the CPU process):

# %%
cpu_run = load_result("chapters_4090d_cpu")  # the same command on 2 CPU cores
rows = chapter_table(scale, by_chapter, cpu_run)  # the README's table
claim([row[0] for row in rows] == [p.stem for p in chapters()],
      "every chapter has a row")
pd.DataFrame(rows, columns=CHAPTER_COLUMNS).set_index("chapter")

# %% [markdown]
# How do the CPU run's times compare with the GPU machine's? The chapters
# that finished on both:

# %%
on_gpu = {r["chapter"]: r["seconds"] for r in by_chapter["chapters"] if r["ok"]}
both = pd.DataFrame([{"chapter": r["chapter"], "H200 machine (s)": on_gpu[r["chapter"]],
                      "2 CPU cores (s)": r["seconds"]}
                     for r in cpu_run["chapters"] if r["ok"] and r["chapter"] in on_gpu]
                    ).set_index("chapter")
cpu_peaks = {r["chapter"]: r["peak_rss_gb"] for r in cpu_run["chapters"] if r["ok"]}
glue("cpu_peak", max(cpu_peaks.values()))
peak_chapter = glue("cpu_peak_chapter", max(cpu_peaks, key=cpu_peaks.get))
ratio = both["2 CPU cores (s)"] / both["H200 machine (s)"]
glue("ratio_min", ratio.min())
glue("ratio_max", ratio.max())
slowest = glue("ratio_max_chapter", ratio.idxmax())
claim(slowest == "01_data" and peak_chapter == "07_tiger",
      "01 is the slowest on the CPU against the GPU machine, 07 the largest peak")
both.round(1)

# %% [markdown]
# The CPU run took from {glue:text}`ratio_min:.1f` to
# {glue:text}`ratio_max:.1f` times the GPU machine's time. The short chapters
# are mostly start-up, and the GPU machine's start-up includes CUDA's;
# {glue:text}`ratio_max_chapter` parses 20 million events, which a faster CPU
# does faster. So the CPU times are a guide, not a bound: a chapter's work on
# tensors (the k-means of {doc}`03 <03_semantic_ids>` and
# {doc}`04 <04_sid_diagnostics>`, the training steps and beam search of
# {doc}`07 <07_tiger>`) runs faster on a GPU, and its work on the CPU (the
# UMAP maps and neighbour searches of {doc}`02 <02_item_embeddings>`) as fast
# as your CPU allows. The memory is a bound: the largest process peak,
# {glue:text}`cpu_peak:.2f` GB ({glue:text}`cpu_peak_chapter`, which takes
# TIGER's training steps in float32 on the CPU), is still well inside a 24 GB
# card.
#
# ## A smaller card
#
# The memory of a training step is the model's weights, gradients and Adam
# moments (small here: the largest tables are the catalogue's embeddings)
# plus the activations, which grow with the batch size times the history
# length. A rough rule, safe because it also scales the fixed part: the
# peak grows in proportion to the batch. The largest power-of-two batch
# that keeps each preset's training peak under 90% of a card, by that rule
# (an estimate, not a measurement):

# %%
CARDS = (8, 12, 16, 24)


def largest_batch(batch: int, peak_gb: float, card_gb: float) -> int:
    """The largest power of two b <= 4 batch with b / batch * peak_gb <= 0.9 card_gb."""
    b = 4 * batch
    while b > 1 and b / batch * peak_gb > 0.9 * card_gb:
        b //= 2
    return b


smaller = pd.DataFrame(
    {f"{card} GB": {r["preset"]: largest_batch(r["batch_size"], r["train_peak_gb"],
                                               card)
                    for r in scale["presets"]} for card in CARDS})
smaller.insert(0, "preset batch", [r["batch_size"] for r in scale["presets"]])
smaller

# %% [markdown]
# On a card smaller than the table allows, set `train.batch_size` to the
# value above (`--set train.batch_size=32`) and, since fewer examples per
# step give noisier gradients, consider a smaller learning rate; lower
# `model.max_seq_len` (memory falls faster than linearly with the history
# length, through attention); lower `model.eval_chunk` if evaluation runs
# out of memory (it scores the catalogue in row chunks); and keep
# `train.amp=bf16`. Measure your own peaks with `python -m cobra bench scale
# --presets PRESET`: the rule above is a starting point.
#
# ## Summary
#
# - `COBRA_PROFILE=4090d` switches every chapter and preset to
#   MovieLens-20M, its text encoder and the full model sizes;
#   `COBRA_DATASET`, `COBRA_ENCODER` and `COBRA_MAX_EPOCHS` adjust a run
#   without editing code.
# - The datasets are checked against pinned sizes and digests; a stand-in
#   with MovieLens-20M's shape measures time and memory where the real data
#   cannot be downloaded.
# - Every preset fits a 24 GB card with room to spare (largest peak
#   {glue:text}`largest_peak:.2f` GB, measured); the times are an H200's and
#   a 4090D's are longer. Every chapter fits too: measured, estimated from the
#   presets, or bounded by a CPU run's process memory (at most
#   {glue:text}`cpu_peak:.2f` GB).
# - For a smaller card, lower the batch size first, then the history length
#   and the evaluation chunk.
#
# ## Exercises
#
# Each exercise says how long it takes on the `cpu` profile; each ends with a
# check: `check("12.1", your_answer)` prints whether it is right, with a hint
# if not. Solutions are folded below each exercise (click to open).
#
# ```{exercise}
# :label: ex-12-1
#
# Plan a training run: how many minutes does `cobra-4090d` need for 30
# epochs on the measured card, with one full evaluation of every user after
# each epoch (the early stopping's validation)? Use `scale["presets"]`:
# `epoch_seconds` and `eval_seconds`. *About a second.* Check:
# `check("12.1", minutes)`.
# ```

# %% [markdown] tags=["solution"]
# ````{solution-start} ex-12-1
# :class: dropdown
# ````

# %% tags=["solution"]
cobra_row = next(r for r in scale["presets"] if r["preset"] == "cobra-4090d")
minutes = 30 * (cobra_row["epoch_seconds"] + cobra_row["eval_seconds"]) / 60
print(f"cobra-4090d, 30 epochs with validation: {minutes:.0f} minutes on the H200")
check("12.1", minutes)

# %% [markdown] tags=["solution"]
# The evaluation is a sizeable share of each epoch for COBRA, which runs its
# backbone twice per user. On a 4090D multiply by its slowdown; to save
# time, validate every few epochs or on a sample of users.
#
# ````{solution-end}
# ````

# %% [markdown]
# ```{exercise}
# :label: ex-12-2
#
# By the rule of this appendix (the peak in proportion to the batch), what
# is the largest power-of-two batch for `tiger-4090d` that keeps its
# training peak under 90% of a 12 GB card? Compute it from its row of
# `scale["presets"]` without `largest_batch`. *About a second.* Check:
# `check("12.2", batch)`.
# ```

# %% [markdown] tags=["solution"]
# ````{solution-start} ex-12-2
# :class: dropdown
# ````

# %% tags=["solution"]
tiger_row = next(r for r in scale["presets"] if r["preset"] == "tiger-4090d")
per_example = tiger_row["train_peak_gb"] / tiger_row["batch_size"]  # GB per example
batch = 1
while 2 * batch * per_example <= 0.9 * 12:  # the next power of two still fits
    batch *= 2
print(f"tiger-4090d: {per_example * 1000:.0f} MB per example, batch {batch} on 12 GB")
check("12.2", batch)

# %% [markdown] tags=["solution"]
# TIGER needs the most memory per example: its sequence holds a film's
# codes after the history, so its attention runs over more tokens than the
# other models'. Measure before you trust the rule: the fixed part of the
# memory does not shrink with the batch.
#
# ````{solution-end}
# ````
