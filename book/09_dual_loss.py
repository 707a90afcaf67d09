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
# # 9. The dual loss, and where its negatives come from
#
# **Goal.** Train the interleaved sequence of {doc}`chapter 08 <08_interleaving>`
# with COBRA's two losses {cite}`yang2025cobra`: a classification loss on the
# next semantic ID (at `VID` tokens) and a contrastive loss on the dense vector
# (at `SID` tokens), $\ell = \ell_\text{sid} + \lambda\,\ell_\text{vid}$
# {eq}`eq-cobra-loss`. We compute both by hand on a real batch and check them
# against the model, work through the in-batch InfoNCE of the source article
# {cite}`sid2vid2026blog` (SID vectors masked out, duplicates handled) on a toy
# example small enough to check on paper, then meet the two batch-independent
# sources of negatives, the whole catalogue and a cache. Finally we look at the experiment behind the source article's
# diagnosis: COBRA with in-batch negatives at batch 16, 64 and 256 against
# catalogue negatives at the same batch sizes, each trained to convergence.
#
# **Prerequisites.** {doc}`chapter 05 <05_hstu>` (the sampled softmax) and
# {doc}`chapter 08 <08_interleaving>` (what each token predicts).
#
# **Run time.** About 3 s on 2 CPU cores (`cpu` profile; measured by the nbval run, which checks it).
#
# The code lives in `cobra.losses` (`sampled_softmax_loss`, `info_nce_loss`
# with `negatives="in-batch" | "catalogue" | "cache"`, `VidCache`,
# `code_ce_loss`) and `cobra.cobra_model.CobraRecommender.training_loss`.

# %%
import math
import re
import textwrap
import warnings

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from tqdm import TqdmWarning

from cobra.book import glue, load_result, setup
from cobra.cobra_model import SID_LOSSES
from cobra.data import TrainWindows, load_split
from cobra.exercises import check
from cobra.inputs import semantic_ids, sid_config_of
from cobra.interleave import interleave_targets
from cobra.losses import VidCache, code_ce_loss, info_nce_loss, sampled_softmax_loss
from cobra.presets import get_preset
from cobra.runs import build_model
from cobra.text import embed_items
from cobra.train import epoch_batches, epoch_order

# fit imports tqdm.auto, which inside a notebook warns that ipywidgets is missing;
# we draw no progress bars.
warnings.filterwarnings("ignore", message="IProgress not found", category=TqdmWarning)
profile = setup()
preset = get_preset(f"cobra-{profile.name}")
split = load_split(profile.dataset)
# (N, L + 1) int64, cached
codes = semantic_ids(preset.dataset, preset.encoder, sid_config_of(preset))
# (N, 384) float32
text = embed_items(profile.dataset, profile.encoder, progress=False).vectors
# eval(): no dropout, numbers repeat
model = build_model(preset, codes, text, num_items=split.num_items).eval()
config = model.config
print(f"{split.num_items} items; {preset.preset}: D = {config.dim}, "
      f"temperature {config.temperature}, SID loss '{config.sid_loss}',")
print(f"VID negatives '{config.vid_negatives}', lambda_vid {config.lambda_vid}")
n_items = glue("n_items", split.num_items)

# %% [markdown]
# ## One training batch, two losses
#
# A training batch holds windows of at most `max_seq_len` films per user and,
# for every window, the film that comes next. As
# {doc}`chapter 08 <08_interleaving>` showed, the model appends that next film
# as an open `SID` token, interleaves, runs HSTU, and reads two kinds of
# predictions off the hidden states: the SID of the next film at every `VID`
# token, the first factor of COBRA's cascade (equation {eq}`eq-cobra-cascade`
# of {doc}`chapter 08 <08_interleaving>`), and the VID of the same film at
# every `SID` token, the second factor. Each has its
# loss, $\ell_\text{sid}$ and $\ell_\text{vid}$ (both defined below, each a
# mean over the positions that carry it), and COBRA trains on their sum, the
# VID loss weighted by $\lambda$ (`lambda_vid`):
#
# $$
# \ell = \ell_\text{sid} + \lambda\, \ell_\text{vid}.
# $$ (eq-cobra-loss)
#
# `training_loss` returns the total and its two parts:

# %%
windows = TrainWindows(split, config.max_seq_len)
# 4 windows: ids / timestamps / next_ids (B, T), lengths (B,)
batch = windows.__getitems__([0, 1, 2, 3])
with torch.no_grad():
    loss, parts = model.training_loss(batch, generator=torch.Generator().manual_seed(0))
print(f"lengths {batch.lengths.tolist()}; loss {float(loss):.4f} = "
      f"loss_sid {parts['loss_sid']:.4f} + "
      f"{config.lambda_vid} x loss_vid {parts['loss_vid']:.4f}")

# %% [markdown]
# Let us rebuild both numbers from the pieces. First the sequence the model
# trains on: each window plus its next film, stamped with that film's own
# time, the request time of {doc}`chapter 05 <05_hstu>` (`batch.query_time`).

# %%
B = len(batch)
rows = torch.arange(B)
L = batch.lengths  # (B,)
items = torch.cat([batch.ids, batch.ids.new_zeros(B, 1)], dim=1)  # (B, T + 1)
# (B, T + 1)
times = torch.cat([batch.timestamps, batch.timestamps.new_zeros(B, 1)], dim=1)
items[rows, L] = batch.next_ids[rows, L - 1]  # the window's next film, appended
# the next film's own time: when the prediction is needed
times[rows, L] = batch.query_time
with torch.no_grad():
    # (B, 2T + 2, D)
    hidden = model.encode_items(items, times, L + 1, drop_last_vid=True)
# (B, 2T + 2)
targets, sid_pos, vid_pos = interleave_targets(items, L + 1, drop_last_vid=True)
print(f"hidden {tuple(hidden.shape)}: "
      f"{int(sid_pos.sum())} positions carry the SID loss, "
      f"{int(vid_pos.sum())} the VID loss")
print(f"({int(vid_pos.sum())} = sum of lengths + one open SID per row)")

# %% [markdown]
# ### The SID loss: a softmax over semantic IDs
#
# At every `VID_t` token the model predicts the semantic ID of film `t + 1`,
# a classification over the model's SID *vocabulary*: the distinct code
# tuples (with the uniqueness code, one per film: `V = N`). Their vectors are
# the SID tower's embeddings, the same ones used as inputs (shared input and
# output tables). The hidden state $h$ is scored against every SID vector $s_j$
# ($j = 1, \dots, V$) by cosine over a temperature $\tau$, and the loss is the
# cross entropy of the true SID, whose vector is $s^+$:
#
# $$
# \ell_\text{sid} = -\log \frac{e^{\cos(h, s^+)/\tau}}{\sum_{j=1}^{V} e^{\cos(h, s_j)/\tau}}.
# $$ (eq-sid-full-softmax)
#
# That is the `cobra-cpu` preset's `sid_loss="full-softmax"`: with
# {glue:text}`n_items:,d` SIDs the exact softmax is cheap, and it is the same
# loss family as the sequential models' full softmax over films
# ({doc}`chapter 11 <11_experiments>` compares them under one recipe).

# %%
vocab = model.sid_vocab_vectors().detach()  # (V, D)
# (M,) vocabulary index of each true next SID
true_sid = model.item_sid[targets[sid_pos]]
# (M, V)
logits_sid = (F.normalize(hidden[sid_pos], dim=-1) @ F.normalize(vocab, dim=-1).T
              / config.temperature)
my_sid = F.cross_entropy(logits_sid, true_sid)
print(f"{config.sid_loss}: V = {vocab.shape[0]} SIDs; "
      f"loss_sid by hand {float(my_sid):.4f}, from the model {parts['loss_sid']:.4f}")
if config.sid_loss == "full-softmax":  # the cpu preset (4090d samples its negatives)
    assert math.isclose(float(my_sid), parts["loss_sid"], rel_tol=1e-4)

# %% [markdown]
# The source article keeps HSTU's recipe {cite}`zhai2024hstu` instead, which
# scales to large vocabularies: compare the true SID with `R = 128` SIDs drawn
# uniformly at random, mask a negative that happens to be the positive (logit
# `-5e4`), and take the cross entropy of the positive among those `1 + R`
# (`sid_loss="sampled-softmax"`, the `4090d` preset's, where `V` is about
# 27,000). With $\mathcal{R}$ the $R$ vocabulary entries drawn for a position:
#
# $$
# \ell_\text{sid}^{\text{sampled}} = -\log \frac{e^{\cos(h, s^+)/\tau}}{e^{\cos(h, s^+)/\tau} + \sum_{j \in \mathcal{R}} e^{\cos(h, s_j)/\tau}}.
# $$ (eq-sid-sampled-softmax)
#
# Neither loss depends on the batch: every position is compared with the whole
# vocabulary {eq}`eq-sid-full-softmax`, or draws its own $R$ negatives from it
# {eq}`eq-sid-sampled-softmax`.

# %%
# (V + 1, D), row 0 = padding
table = torch.cat([vocab.new_zeros(1, vocab.shape[1]), vocab])
with torch.no_grad():
    sampled = sampled_softmax_loss(hidden[sid_pos], true_sid + 1, table,
                                   num_negatives=config.num_negatives,
                                   temperature=config.temperature,
                                   generator=torch.Generator().manual_seed(0))
    package = SID_LOSSES["sampled-softmax"](model, hidden[sid_pos], targets[sid_pos],
                                            torch.Generator().manual_seed(0))
print(f"sampled softmax (R = {config.num_negatives}): by hand {float(sampled):.4f}, "
      f"package {float(package):.4f}")
print(f"(full softmax over all {vocab.shape[0]}: {float(my_sid):.4f})")
assert math.isclose(float(sampled), float(package), rel_tol=1e-4)

# %% [markdown]
# The package also has a TIGER-style variant (`sid_loss="code-ce"`): one linear
# head per code level and the sum of the levels' cross entropies,
# `code_ce_loss`. For two positions and two levels it is just two ordinary
# cross entropies added up:

# %%
logits = [torch.tensor([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0]]),
          torch.tensor([[0.5, 0.5], [3.0, -3.0]])]
true_codes = torch.tensor([[0, 0], [1, 0]])  # (M, L)
by_hand = sum(F.cross_entropy(lg, true_codes[:, level])
              for level, lg in enumerate(logits))
print(f"code_ce_loss {float(code_ce_loss(logits, true_codes)):.4f} "
      f"== {float(by_hand):.4f}")

# %% [markdown]
# ### The VID loss: InfoNCE over dense vectors
#
# At every `SID_t` token the model predicts the dense vector of film `t`. This
# is metric learning: the hidden state $q$ should be close (in cosine) to the
# film's VID $v^+$ and far from other films' VIDs $v_j$. InfoNCE is the cross
# entropy of the positive among a set $\mathcal{N}$ of negatives, at the same
# temperature $\tau$:
#
# $$
# \ell_\text{vid} = -\log \frac{e^{\cos(q, v^+)/\tau}}{e^{\cos(q, v^+)/\tau} + \sum_{j \in \mathcal{N}} e^{\cos(q, v_j)/\tau}}.
# $$ (eq-vid-infonce)
#
# Everything hinges on $\mathcal{N}$. The `cobra-cpu` preset uses **the whole
# catalogue** (`catalogue`): every film's VID, so the loss is a full softmax
# over the $N$ films (the positive is one of the columns):

# %%
q_vid, pos_vid = hidden[vid_pos], targets[vid_pos]  # (M, D), (M,)
with torch.no_grad():
    # (N, D), row c = item c + 1
    all_vids = F.normalize(model.item_vid_vectors()[1:], dim=-1)
my_vid = F.cross_entropy(F.normalize(q_vid, dim=-1) @ all_vids.T / config.temperature,
                         pos_vid - 1)
print(f"loss_vid by hand {float(my_vid):.4f}, from the model {parts['loss_vid']:.4f}")
assert math.isclose(float(my_vid), parts["loss_vid"], rel_tol=1e-4)
# the sparse half as the model computed it (by hand above, where it is a full softmax)
total = parts["loss_sid"] + config.lambda_vid * float(my_vid)
assert math.isclose(total, float(loss), rel_tol=1e-4)
print(f"loss = loss_sid + lambda * loss_vid = {total:.4f}: equal to training_loss")

# %% [markdown]
# ## In-batch negatives, as in the source article
#
# The source article used the common shortcut of two-tower retrieval:
# negatives are the **other items of the same batch** {cite}`sid2vid2026blog`.
# Two details matter in the interleaved setting, and the article stresses both:
#
# - **SID vectors are masked out.** Its candidate pool recorded the
#   `(id, vector)` of every position of the batch, SID *and* VID positions,
#   without deduplication. A VID query must be contrasted with VIDs only;
#   pulling it towards or away from SID-space vectors mixes two spaces and, in
#   the article's words, degrades training. `info_nce_loss` takes a
#   `pool_is_sid` flag per pool entry and never uses flagged entries.
# - **Duplicates of the positive are masked.** A popular film appears at many
#   positions of a batch. A pool entry with the same item id as the row's
#   positive is neither a negative (that would push the query away from its
#   own target) nor a second positive: it is dropped; the positive enters
#   once, as the first column.
#
# A toy example in two dimensions, with temperature $\tau = 0.5$ so the
# numbers stay readable: four queries whose positives are items `[1, 2, 1, 4]`
# (item 1 twice), and a pool holding those four VIDs plus two SID-space
# vectors.

# %%
# (N + 1, 2), row 0 padding
vids = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.7, 0.7]])
queries = torch.tensor([[0.9, 0.2], [0.1, 1.0], [0.8, 0.1], [0.5, 0.5]])  # (M, 2)
pos = torch.tensor([1, 2, 1, 4])  # (M,)
# (C,) = 4 VID entries + 2 SID entries
pool_ids = torch.cat([pos, torch.tensor([1, 3])])
# (C, 2)
pool_vectors = torch.cat([vids[pos], torch.tensor([[0.95, 0.05], [0.2, 0.3]])])
pool_is_sid = torch.tensor([False, False, False, False, True, True])
role = [["SID (masked)" if pool_is_sid[c]
         else "duplicate (masked)" if pool_ids[c] == pos[m]
         else "negative"
         for c in range(len(pool_ids))] for m in range(len(pos))]
glue("q0_negatives", role[0].count("negative"))
pd.DataFrame(role,
             index=[f"query {m} (positive item {int(p)})" for m, p in enumerate(pos)],
             columns=[f"pool {c}: {'SID' if s else 'VID'} of item {int(i)}"
                      for c, (i, s)
                      in enumerate(zip(pool_ids, pool_is_sid, strict=True))])

# %% [markdown]
# Query 0 (positive item 1) keeps {glue:text}`q0_negatives:d` negatives (the
# VIDs of items 2 and 4): both copies of item 1 are duplicates, the last two
# entries are SIDs. Now the loss by brute force, one row at a time, against
# `info_nce_loss`:

# %%
tau = 0.5
per_row = []
for m in range(len(pos)):
    q = F.normalize(queries[m], dim=0)
    s_pos = q @ F.normalize(vids[pos[m]], dim=0) / tau
    s_neg = [q @ F.normalize(pool_vectors[c], dim=0) / tau for c in range(len(pool_ids))
             if role[m][c] == "negative"]
    per_row.append(float(torch.logsumexp(torch.stack([s_pos, *s_neg]), dim=0) - s_pos))
brute = np.mean(per_row)
package = float(info_nce_loss(queries, pos, vids, "in-batch", tau, pool_ids=pool_ids,
                              pool_vectors=pool_vectors, pool_is_sid=pool_is_sid))
print("per-row losses", [round(x, 4) for x in per_row])
print(f"mean by brute force {brute:.4f} == info_nce_loss {package:.4f}")
assert math.isclose(brute, package, rel_tol=1e-5)

# %% [markdown]
# Without the duplicate mask, rows 0 and 2 would count a copy of their own
# positive as a negative, and without the SID mask row 0 would be pushed away
# from item 1's SID vector, which sits right next to its target:

# %%
# fake ids: nothing is a duplicate
no_dup = info_nce_loss(queries, pos, vids, "in-batch", tau,
                       pool_ids=torch.arange(10, 16), pool_vectors=pool_vectors,
                       pool_is_sid=pool_is_sid)
no_sid = info_nce_loss(queries, pos, vids, "in-batch", tau, pool_ids=pool_ids,
                       pool_vectors=pool_vectors)
print(f"both masks                     {package:.4f}")
print(f"duplicates kept as negatives   {float(no_dup):.4f}")
print(f"SID entries kept as negatives  {float(no_sid):.4f}")

# %% [markdown]
# Inside `CobraRecommender` the in-batch pool is simply the batch's VID
# positives, one entry per VID-loss position (no SID vectors ever enter it, and
# no deduplication, as in the article), so only the duplicate mask is at work.
#
# ## Negatives that do not depend on the batch
#
# - **`catalogue`**: every item's VID, recomputed through the VID tower at
#   every step (so gradients reach all of them). The cost is one matrix
#   product per batch, the VID-loss queries times the `(D, N)` matrix of all
#   VIDs: nothing for the {glue:text}`n_items:,d` films here, and still modest
#   for the ~27k of MovieLens-20M on a GPU.
# - **`cache`**: a fixed-size FIFO queue (`VidCache`) of recent positives and
#   their (detached) VIDs, the MoCo-style compromise when the catalogue is too
#   large. Entries equal to the row's positive are masked, like duplicates.
#
# Both give the same number of negatives whatever the batch size. Checks of
# both against brute force, on the toy example:

# %%
cat = float(info_nce_loss(queries, pos, vids, "catalogue", tau))
# (M, N)
logits_all = F.normalize(queries, dim=-1) @ F.normalize(vids[1:], dim=-1).T / tau
assert math.isclose(cat, float(F.cross_entropy(logits_all, pos - 1)), rel_tol=1e-5)

cache = VidCache(size=3, dim=2)
cache.push(torch.tensor([3, 1]), vids[[3, 1]])
# the queue holds 3 slots: item 3 (the oldest) is dropped
cache.push(torch.tensor([2, 4]), vids[[2, 4]])
cache_ids, cache_vecs = cache.entries()
print("cache holds items", cache_ids.tolist(), "(oldest first)")
cached = float(info_nce_loss(queries, pos, vids, "cache", tau, cache=cache))
brute_cache = np.mean([float(torch.logsumexp(torch.stack(
    [F.normalize(queries[m], dim=0) @ F.normalize(vids[pos[m]], dim=0) / tau]
    + [F.normalize(queries[m], dim=0) @ F.normalize(v, dim=0) / tau
       for i, v in zip(cache_ids, cache_vecs, strict=True) if i != pos[m]]), dim=0)
    - F.normalize(queries[m], dim=0) @ F.normalize(vids[pos[m]], dim=0) / tau)
    for m in range(len(pos))])
assert math.isclose(cached, float(brute_cache), rel_tol=1e-5)
print(f"catalogue InfoNCE {cat:.4f}, cache InfoNCE {cached:.4f}: "
      "both equal their brute-force values")

# %% [markdown]
# ## How many negatives does a batch hold?
#
# With in-batch negatives, a row's negatives are the other VID-loss positions of
# its batch: about `B x` (window length) of them, but popular films repeat, so
# fewer *distinct* films. We count both over one epoch of training batches:

# %%
num_windows = len(windows)
counts, steps_per_epoch = [], {}
for bs in (4, 16, 64, 256):
    order = epoch_order(num_windows, seed=preset.train.seed, epoch=0)
    pos_per_batch, distinct = [], []
    for b in epoch_batches(windows, bs, order):
        L_b = b.lengths
        # every VID target
        held = torch.cat([b.ids[b.ids != 0], b.next_ids[torch.arange(len(b)), L_b - 1]])
        pos_per_batch.append(len(held))
        distinct.append(len(torch.unique(held)))
    steps_per_epoch[bs] = len(pos_per_batch)
    counts.append({"batch size": bs, "VID positions": np.mean(pos_per_batch),
                   "distinct films": np.mean(distinct),
                   "share of catalogue": np.mean(distinct) / split.num_items})
counts = pd.DataFrame(counts).set_index("batch size")
glue("steps_b16", steps_per_epoch[16])
glue("steps_b256", steps_per_epoch[256])
glue("positions_b16", counts.loc[16, "VID positions"])
glue("share_b16", counts.loc[16, "share of catalogue"])
counts.round(3)

# %% [markdown]
# On MovieLens-100K even a batch of 16 windows meets a large share of the
# {glue:text}`n_items:,d` films, because windows are long (up to 50 films) and
# the catalogue is small. On MovieLens-20M, with ~27k films and the memory of a
# doubled sequence forcing small batches, the share is far lower: the situation
# the source article describes. In-batch negatives are also drawn in proportion to
# popularity, not uniformly: a rare film is almost never a negative. We should
# therefore expect the in-batch penalty here to be milder than on
# MovieLens-20M, and to shrink as the batch grows.
#
# ## The experiment: batch size against the source of negatives
#
# Now the source article's diagnosis, tested directly: train `cobra-cpu` with
# `in-batch` and with `catalogue` negatives at batch sizes 16, 64 and 256,
# three seeds each, and compare test NDCG@10. Everything else is the preset's
# (learning rate, model, SID loss, `beam` decoding).
#
# **One clock for every batch size.** A batch of 256 takes
# {glue:text}`steps_b256:d` optimiser steps per epoch on ML-100K, a batch of 16
# takes {glue:text}`steps_b16:d`, so runs with the same number of epochs would
# compare under-trained large batches with trained small ones.
# Instead every run is validated about every 60 optimiser steps, stops after 4
# validations without improvement, and its best validation checkpoint is
# tested: each cell is trained to convergence on the same clock. That is
# `cobra.bench.batch.bench_batch`, and 18 trainings do not fit a chapter's few
# minutes on two CPU cores, so we ran them once and load the result:
#
# ```
# python -m cobra bench batch --device cuda --jobs 18 --seeds 3 --out book/results/bench_batch.json
# ```
#
# (On one H100, 18 runs at once, {glue:text}`bench_wall_min:d` minutes; without
# `--device cuda` the same command trains on the CPU, a few hours on two cores.)
# The file was measured with an earlier `cobra-cpu`, which added an item-ID
# embedding to the VID and trained the sparse step with a sampled softmax;
# {doc}`chapter 11 <11_experiments>` gives today's preset, chosen on
# validation, and the command trains that one.

# %%
bench = load_result("bench_batch")
glue("bench_wall_min", int(re.search(r"(\d+) min wall", bench["machine"]).group(1)))
print(textwrap.fill(bench["protocol"], 88))
print(textwrap.fill(f"ran on: {bench['machine']}", 88))
grid = pd.DataFrame([{"negatives": c["negatives"], "batch size": c["batch_size"],
                      "test NDCG@10": c["ndcg@10_mean"], "std": c["ndcg@10_std"],
                      "steps (mean)": c["steps_mean"]} for c in bench["cells"]])
grid.round(4)

# %%
BATCHES, SOURCES = bench["batch_sizes"], ("in-batch", "catalogue")
fig, ax = plt.subplots(figsize=(6.0, 3.6))
for source, marker in zip(SOURCES, ("o", "s"), strict=True):
    sub = grid[grid["negatives"] == source]
    ax.errorbar(sub["batch size"], sub["test NDCG@10"], yerr=sub["std"], marker=marker,
                capsize=3, label=f"{source} negatives")
ax.set_xscale("log", base=2)
ax.set_xticks(BATCHES, [str(b) for b in BATCHES])
ax.minorticks_off()
ax.set(xlabel="batch size (windows per step)",
       ylabel="test NDCG@10 (mean ± std, 3 seeds)",
       title="COBRA on ML-100K, trained to convergence: batch size vs negatives")
ax.set_ylim(bottom=0)
ax.legend()
plt.show()

# %% [markdown]
# How much does NDCG@10 move between batch 16 and batch 256, for each source,
# and how far apart are the two sources at the same batch size?

# %%
test = grid.pivot(index="batch size", columns="negatives", values="test NDCG@10")
for source in SOURCES:
    print(f"{source:>9}: NDCG@10 {test.loc[16, source]:.4f} at batch 16 -> "
          f"{test.loc[256, source]:.4f} at batch 256 ({bench['change'][source]:+.1%})")
gap = (test["catalogue"] - test["in-batch"]) / test["in-batch"]
print("catalogue over in-batch at the same batch size:")
print(" ", {bs: f"{g:+.1%}" for bs, g in gap.items()})
glue("gap_min", gap.min())
glue("gap_max", gap.max())
glue("change_in_batch", bench["change"]["in-batch"])
change_catalogue = glue("change_catalogue", bench["change"]["catalogue"])

# %% [markdown]
# **Reading the result.**
#
# - **Catalogue negatives hold steady across batch sizes**: their NDCG@10
#   changes by {glue:text}`change_catalogue:+.1%` from batch 16 to batch 256,
#   inside the seed-to-seed spread (the error bars). The VID loss no longer
#   depends on the batch, and the model does not either.
# - **Catalogue negatives beat in-batch ones at every batch size**, by
#   {glue:text}`gap_min:+.0%` to {glue:text}`gap_max:+.0%` NDCG@10 with
#   everything else equal. That is the source article's diagnosis, reproduced:
#   the in-batch InfoNCE is the weak part of the model, and a
#   batch-independent source of negatives repairs it.
# - **But here the in-batch runs do not get worse as the batch shrinks**
#   ({glue:text}`change_in_batch:+.1%` from batch 16 to batch 256). The table
#   of the previous section says why: on MovieLens-100K a batch of even 16
#   windows holds ~{glue:text}`positions_b16:,.0f` VID positions and meets
#   {glue:text}`share_b16:.0%` of the {glue:text}`n_items:,d` films, so
#   in-batch negatives are not starved; they are *skewed* towards popular
#   films at every batch size, and that skew is what costs quality.
#   The starvation the source article describes needs a catalogue much larger
#   than a batch's positions, MovieLens-20M's ~27k films at the small batches a
#   24 GB card allows, which is where the `4090d` presets point.
#
# ## Summary
#
# - COBRA trains with two losses on one pass over the interleaved sequence:
#   a softmax over the SID vocabulary at `VID` tokens (the full softmax on
#   the `cpu` profile, the source article's sampled softmax with uniform
#   negatives and masked accidental hits on large vocabularies; neither
#   depends on the batch, {eq}`eq-sid-full-softmax` and
#   {eq}`eq-sid-sampled-softmax`) and InfoNCE over VIDs at `SID` tokens
#   {eq}`eq-vid-infonce`; the total is
#   $\ell = \ell_\text{sid} + \lambda\,\ell_\text{vid}$ {eq}`eq-cobra-loss`.
# - In-batch InfoNCE needs two masks in the interleaved setting: SID-space
#   vectors are never negatives, and copies of the row's positive are neither
#   negatives nor extra positives.
# - Its negatives are the batch's other positives: their number grows with the
#   batch and they follow item popularity. `catalogue` (a full softmax over
#   every VID) and `cache` (a FIFO of recent VIDs) do not depend on the batch.
# - Trained to convergence on one clock of optimiser steps, COBRA with
#   catalogue negatives moves by {glue:text}`change_catalogue:+.1%` between
#   batch 16 and 256 and beats in-batch negatives at every batch size. On
#   ML-100K the in-batch penalty comes from popularity skew, not from starved
#   small batches.
#
# ## Exercises
#
# Each exercise says how long it takes on the `cpu` profile. Those with one
# right answer end with a check: `check("09.2", your_answer)` prints whether
# it is right, with a hint if not. Solutions are folded below each exercise
# (click to open); try first. Exercises that train models say how long the
# training takes; their solutions read the committed results, or do a cheap
# part of the work, so that the chapter stays fast.
#
# ```{exercise}
# :label: ex-09-1
#
# Rerun one cell of the grid on your machine (`python -m cobra bench batch
# --batch-sizes 64 --negatives catalogue --seeds 1`) and compare it with the
# loaded table. How close is a CPU run to the GPU one? *About 5 minutes.*
# An open question: the solution shows the command and prints the range the
# committed GPU runs of that cell span, to compare your number with.
# ```

# %% [markdown] tags=["solution"]
# ````{solution-start} ex-09-1
# :class: dropdown
# ````

# %% tags=["solution"]
# python -m cobra bench batch --batch-sizes 64 --negatives catalogue --seeds 1
cell = next(c for c in bench["cells"]
            if c["negatives"] == "catalogue" and c["batch_size"] == 64)
gpu_runs = pd.DataFrame(cell["runs"]).set_index("seed")
ndcg = gpu_runs["ndcg@10"]
print(f"committed GPU runs of the cell: test NDCG@10 {ndcg.min():.4f} to "
      f"{ndcg.max():.4f} (mean {cell['ndcg@10_mean']:.4f})")
gpu_runs[["ndcg@10", "hr@10", "epochs", "best_epoch", "steps"]].round(4)

# %% [markdown] tags=["solution"]
# Your seed-0 run should land close to the committed seed-0 run, not
# necessarily equal to it: CPU and GPU kernels add in different orders, and
# the small differences grow over hundreds of optimiser steps, so the early
# stop may pick another epoch. A CPU run within the spread of the three GPU
# seeds is as good as equal; the seed matters more than the device.
#
# ````{solution-end}
# ````

# %% [markdown]
# ```{exercise}
# :label: ex-09-2
#
# The grid compares trained models. Compare *equal epochs* instead: three
# epochs per cell, e.g. `python -m cobra train --preset cobra-cpu --set
# train.batch_size=256 --set train.epochs=3` (*A few minutes* for the three
# batch sizes.) Before training, count: how many optimiser steps do three
# epochs give at batch 256 (as the chapter counted `steps_per_epoch`), and
# after how many steps did the grid's catalogue runs at batch 256 reach
# their best validation score? Each run in `bench["cells"]` lists its
# `best_epoch`, `epochs` and `steps`; its steps per epoch are `steps /
# epochs` (the grid counted one window per user, fewer than `windows`
# holds now). How much of a "batch-size effect" is only a difference in
# optimiser steps? *About a second.* Check: `check("09.2",
# (steps_in_3_epochs, mean_best_step))`, the second the mean over the runs.
# ```

# %% [markdown] tags=["solution"]
# ````{solution-start} ex-09-2
# :class: dropdown
# ````

# %% tags=["solution"]
def best_steps(bs: int) -> list[float]:
    """Steps to the best validation of the grid's catalogue runs at batch bs."""
    cell = next(c for c in bench["cells"]
                if c["batch_size"] == bs and c["negatives"] == "catalogue")
    return [r["best_epoch"] * r["steps"] / r["epochs"] for r in cell["runs"]]


for bs in BATCHES:
    print(f"batch {bs:>3}: {3 * steps_per_epoch[bs]:>3} steps in three epochs; "
          f"the grid's runs peaked after {np.mean(best_steps(bs)):.0f} steps")
steps_in_3_epochs = 3 * steps_per_epoch[256]
mean_best_step = float(np.mean(best_steps(256)))
check("09.2", (steps_in_3_epochs, mean_best_step))

# %% [markdown] tags=["solution"]
# Three epochs are a few dozen optimiser steps at batch 256, several times
# fewer than the trained runs needed, while at batch 16 they are about as
# many as its runs needed. An equal-epochs comparison would show a large
# "batch-size effect" that is nothing but the under-training of the large
# batches; on the common clock of the grid it is gone for catalogue
# negatives.
#
# ````{solution-end}
# ````

# %% [markdown]
# ```{exercise}
# :label: ex-09-3
#
# Add `cache` negatives (`--set model.vid_negatives=cache`, with
# `--set model.cache_size=1024` and `8192`) to the grid: two trainings with
# `python -m cobra train --preset cobra-cpu` at batch 16, *about 10 minutes*
# together. Where does it land between in-batch and catalogue? First
# predict it from the negatives alone: push the VID positives of one epoch
# of batch-16 batches (as counted in the chapter) into a `VidCache(size,
# dim=1)` (zero vectors will do) and count the distinct films its
# `entries()` hold at the end. *A few seconds.* Check: `check("09.3",
# distinct_1024)`, for the cache of 1024.
# ```

# %% [markdown] tags=["solution"]
# ````{solution-start} ex-09-3
# :class: dropdown
# ````

# %% tags=["solution"]
distinct_in_cache = {}
for size in (1024, 8192):
    queue = VidCache(size=size, dim=1)
    for b in epoch_batches(windows, 16, epoch_order(num_windows, seed=preset.train.seed,
                                                    epoch=0)):
        held = torch.cat([b.ids[b.ids != 0],
                          b.next_ids[torch.arange(len(b)), b.lengths - 1]])
        queue.push(held, torch.zeros(len(held), 1))
    distinct_in_cache[size] = len(torch.unique(queue.entries()[0]))
    print(f"cache of {size:>4}: {distinct_in_cache[size]} distinct films "
          f"({distinct_in_cache[size] / split.num_items:.0%} of the catalogue)")
print(f"in-batch at batch 16: {counts.loc[16, 'distinct films']:.0f} distinct films "
      f"on average; catalogue: all {split.num_items}")
distinct_1024 = distinct_in_cache[1024]
check("09.3", distinct_1024)

# %% [markdown] tags=["solution"]
# A cache of 1024 entries holds a few more distinct films than a batch of 16
# (both hold recent positives, drawn by popularity), so it should land near
# in-batch; a cache of 8192 holds about three quarters of the catalogue and
# should land closer to catalogue negatives. Its entries are still drawn by
# popularity, and they are stale (computed by earlier weights, with no
# gradient), so expect it below catalogue. On MovieLens-100K the catalogue
# is small enough that nothing beats using all of it.
#
# ````{solution-end}
# ````

# %% [markdown]
# ```{exercise}
# :label: ex-09-4
#
# In the toy example, set the temperature to $\tau = 0.05$ (the model's).
# Which pool entries dominate each row's loss now? *About a second.* Check:
# `check("09.4", loss_005)`, the mean in-batch InfoNCE of the toy example
# (both masks) at $\tau = 0.05$.
# ```

# %% [markdown] tags=["solution"]
# ````{solution-start} ex-09-4
# :class: dropdown
# ````

# %% tags=["solution"]
weights = []
for m in range(len(pos)):
    q = F.normalize(queries[m], dim=0)
    columns = ["positive"] + [f"pool {c}" for c in range(len(pool_ids))
                              if role[m][c] == "negative"]
    candidates = [vids[pos[m]]] + [pool_vectors[c] for c in range(len(pool_ids))
                                   if role[m][c] == "negative"]
    logits_m = torch.stack([q @ F.normalize(v, dim=0) for v in candidates]) / 0.05
    shares = torch.softmax(logits_m, dim=0).tolist()
    weights.append(dict(zip(columns, shares, strict=True)))
loss_005 = float(info_nce_loss(queries, pos, vids, "in-batch", 0.05, pool_ids=pool_ids,
                               pool_vectors=pool_vectors, pool_is_sid=pool_is_sid))
print(f"mean loss at tau = 0.05: {loss_005:.4f} (at tau = 0.5: {package:.4f})")
check("09.4", loss_005)
pd.DataFrame(weights, index=[f"query {m}" for m in range(len(pos))],
             columns=["positive", *[f"pool {c}" for c in range(4)]]).round(3)

# %% [markdown] tags=["solution"]
# The table holds each row's softmax weights over its positive and its
# negatives (blank: not a negative of that row). At $\tau = 0.05$ the
# softmax is nearly a maximum: every query here is closest to its own
# positive, so the losses almost vanish, and the little weight left goes to
# the single hardest negative (item 4's VID, pool 3, for queries 0 to 2);
# the far negatives get none. A low temperature makes InfoNCE look only at
# the hardest negatives.
#
# ````{solution-end}
# ````

# %% [markdown]
# ```{exercise}
# :label: ex-09-5
#
# Estimate the share of the catalogue a batch of 16 windows of 200 films
# covers on MovieLens-20M (about 27,000 films; 16 x 201 VID positions),
# assuming popularity follows the curve of {doc}`chapter 01 <01_data>`.
# Hint: if each position draws film $i$ with probability $p_i$, film $i$ is
# in a batch of $n$ positions with probability $1 - (1 - p_i)^n$; stretch
# MovieLens-100K's popularity (ratings per film, sorted) to 27,000 films
# with `np.interp`. What does that predict for the source article's runs?
# *About a second.* An open question: the solution first checks the formula
# on MovieLens-100K against the chapter's count, then prints its estimate.
# ```

# %% [markdown] tags=["solution"]
# ````{solution-start} ex-09-5
# :class: dropdown
# ````

# %% tags=["solution"]
def expected_share(p: np.ndarray, n: float) -> float:
    """Expected share of films with at least one of n draws, film i drawn with p[i]."""
    return float((1 - (1 - p) ** n).mean())


ratings = np.bincount(split.train.items, minlength=split.num_items + 1)[1:]  # (N,)
p_100k = np.sort(ratings)[::-1] / ratings.sum()  # popularity, most rated first
formula = expected_share(p_100k, counts.loc[16, "VID positions"])
print(f"ML-100K, batch 16: formula {formula:.0%}, "
      f"counted {counts.loc[16, 'share of catalogue']:.0%}")
n_20m = 27_000
stretched = np.interp(np.linspace(0, 1, n_20m), np.linspace(0, 1, len(p_100k)), p_100k)
p_20m = stretched / stretched.sum()  # (27,000,) the same curve over more films
print(f"ML-20M, 16 windows of 200 films: about {expected_share(p_20m, 16 * 201):.0%} "
      "of the catalogue")

# %% [markdown] tags=["solution"]
# The formula agrees with the count on MovieLens-100K within a point or
# two, so it is a fair estimate. On MovieLens-20M the same batch meets only
# a small share of
# the catalogue: most films are almost never a negative, which is the
# starvation the source article blamed for its in-batch results. The real
# ML-20M curve has an even longer tail than this stretched one, so the true
# share is lower still.
#
# ````{solution-end}
# ````

# %% [markdown]
# ```{exercise}
# :label: ex-09-6
#
# In-batch negatives are sampled in proportion to popularity. The "logQ"
# correction subtracts from every candidate's logit (the positive's too) the
# `log` of that film's in-batch frequency: its share of the pool's VID
# entries. Add it to the brute-force loss of the toy example (in-batch, both
# masks, $\tau = 0.5$). Which rows' losses change, and why? *About a
# second.* Does it help at batch 16? That needs a training run with a
# modified loss (a copy of `info_nce_loss` patched into `cobra.losses`),
# *about 5 minutes* per seed; the solution explains what to expect. Check:
# `check("09.6", logq_loss)`, the mean corrected loss of the toy example.
# ```

# %% [markdown] tags=["solution"]
# ````{solution-start} ex-09-6
# :class: dropdown
# ````

# %% tags=["solution"]
vid_entries = pool_ids[~pool_is_sid]  # the VID entries of the pool: items 1, 2, 1, 4
log_q = {int(i): math.log(float((vid_entries == i).float().mean()))
         for i in vid_entries}  # item -> log of its share of the VID entries
corrected = []
for m in range(len(pos)):
    q = F.normalize(queries[m], dim=0)
    s_pos = q @ F.normalize(vids[pos[m]], dim=0) / tau - log_q[int(pos[m])]
    s_neg = [q @ F.normalize(pool_vectors[c], dim=0) / tau - log_q[int(pool_ids[c])]
             for c in range(len(pool_ids)) if role[m][c] == "negative"]
    logsumexp = torch.logsumexp(torch.stack([s_pos, *s_neg]), dim=0)
    corrected.append(float(logsumexp - s_pos))
logq_loss = float(np.mean(corrected))
print("per-row losses    ", [round(x, 4) for x in per_row])
print("with logQ         ", [round(x, 4) for x in corrected])
print(f"mean {brute:.4f} -> {logq_loss:.4f}")
check("09.6", logq_loss)

# %% [markdown] tags=["solution"]
# Item 1 fills half of the pool, so its logit is raised the least
# ($-\log 0.5$ against $-\log 0.25$ for items 2 and 4): relative to the
# others it falls. Rows 0 and 2, whose positive is item 1, lose more; rows
# 1 and 3, which meet item 1 twice as a negative, lose less. In training
# this undoes the popularity skew of in-batch negatives: a popular film
# meets many queries as a negative, and the correction weakens each of
# those meetings, so it is no longer pushed away just for being everywhere.
# It should help where the skew is the problem, which on MovieLens-100K is
# every batch size (the section above); it cannot create negatives a batch
# does not hold.
#
# ````{solution-end}
# ````
