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
# # 9. Decoding: from a history to a ranked list
#
# **Goal.** A trained COBRA model generates in two steps, a sparse one (the
# next semantic ID) and a dense one (a vector searched among the films'
# VIDs). How the two are chained is a design choice with a cost: we build the
# four modes of the source article {cite}`sid2vid2026blog`, `direct`,
# `neighbor`, `soft` and `beam` (with three ways to fuse the beam's scores,
# one of them COBRA's BeamFusion {cite}`yang2025cobra`), check each against a
# few lines of our own, and compare them on validation quality and latency.
# Then we ask what the beam width `M` buys.
#
# **Run time.** About 1 min on 2 CPU cores (`cpu` profile; measured by the nbval run, which checks it).
#
# The code lives in `cobra.decode` (`DecodeConfig`, the registries `DECODERS`
# and `BEAM_FUSIONS`, `topk_items`) and `CobraRecommender.score(batch,
# decode=...)`.

# %%
import math
import tempfile
import time
import warnings

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from tqdm import TqdmWarning

from cobra.book import glue, setup
from cobra.data import eval_batches
from cobra.datasets import load_dataset
from cobra.decode import BEAM_FUSIONS, COBRA_MODES, DecodeConfig, seen_items, topk_items
from cobra.metrics import evaluate_baseline
from cobra.presets import get_preset
from cobra.runs import load_run
from cobra.text import display_title
from cobra.train import evaluate, fit

# fit imports tqdm.auto, which inside a notebook warns that ipywidgets is missing; we draw no progress bars.
warnings.filterwarnings("ignore", message="IProgress not found", category=TqdmWarning)
profile = setup()
ml = load_dataset(profile.dataset)
titles = [display_title(t, y) for t, y in zip(ml.items["title"], ml.items["year"], strict=True)]
print(f"profile {profile.name}: {profile.dataset}, COBRA decoders {list(COBRA_MODES)}, beam fusions {list(BEAM_FUSIONS)}")

# %% [markdown]
# ## A model to decode
#
# We train one `cobra-cpu` model (catalogue negatives, chapter 08). To keep the
# chapter within a few minutes on two CPU cores we train for a **short budget
# of 8 epochs** instead of the preset's 25 with early stopping, selecting the
# epoch by validation NDCG@10 under `direct` decoding (the cheapest mode). The
# full-budget model is `python -m cobra train --preset cobra-cpu`; its decoding
# modes are compared by `python -m cobra eval --run DIR --decode MODE`.

# %%
# nbval-rtol: 0.01 -- float32 training: other CPUs round differently (~0.1%)
EPOCHS = 8
overrides = {"train.epochs": EPOCHS, "model.decode.mode": "direct", "train.num_threads": 1}
with tempfile.TemporaryDirectory() as run_dir:
    result = fit(get_preset(f"cobra-{profile.name}", overrides), run_dir, progress=False)
    model, run_config, split = load_run(run_dir)  # best.pt, in eval mode
torch.set_num_threads(1)
print(f"best epoch {result['best_epoch']} of {result['epochs']}: valid NDCG@10 {result['valid_ndcg@10']:.4f} (direct)")
popular = evaluate_baseline("popular", profile.dataset, split="valid")
print(f"popular on the validation split: NDCG@10 {popular['ndcg@10']:.4f}, HR@10 {popular['hr@10']:.4f}")
glue("n_items", split.num_items)
n_valid_users = glue("n_valid_users", popular["users"])

# %% [markdown]
# ## The two steps, for one user
#
# **Sparse step.** The hidden state at the history's last `VID` token is a
# distribution over the next semantic ID: the cosine with every SID vector over
# the temperature, soft-maxed over the vocabulary (`V` distinct code tuples;
# with the uniqueness code each names one film, `V = N`). Here are the five
# most likely next SIDs for the first validation user:

# %%
# nbval-rtol: 0.01 -- float32 training: other CPUs round differently (~0.1%)
batch = next(eval_batches(split, "valid", run_config.model.max_seq_len, batch_size=64))  # 64 users
with torch.no_grad():
    state = model.sid_state(batch)  # (B, D)
    log_p = model.sid_log_probs(state)  # (B, V)
top = log_p[0].topk(5)
vocab_items = model.vocab_item[top.indices]  # one film per SID (V = N here)
glue("top_p_sid", top.values[0].exp().item())
pd.DataFrame({"SID": [tuple(int(c) for c in model.vocab_codes[v]) for v in top.indices],
              "p_sid": top.values.exp().numpy().round(4),
              "film with this SID": [titles[int(i) - 1] for i in vocab_items]}, index=range(1, 6))

# %% [markdown]
# **Dense step.** The chosen SID's vector is appended to the history as an open
# `SID` token; the hidden state there is the VID query `q`, and every film is
# scored by `cos(q, VID_i)`, an exact search over the
# {glue:text}`n_items:,d` VIDs (`topk_items`; an ANN index would only pay off
# for millions of items). The target film and the top five of the search:

# %%
# nbval-rtol: 0.01 -- float32 training: other CPUs round differently (~0.1%)
with torch.no_grad():
    query = model.vid_queries(batch, model.sid_vocab_vectors()[log_p.argmax(-1)].unsqueeze(1))[:, 0]  # (B, D)
    vids = model.item_vid_vectors()  # (N + 1, D)
scores, ids = topk_items(query, vids, exclude=seen_items(batch.ids, split.num_items), k=5)
print("target:", titles[int(batch.targets[0]) - 1])
for rank, (s, i) in enumerate(zip(scores[0], ids[0], strict=True), 1):
    print(f"  {rank}. cos {float(s):.4f}  {titles[int(i) - 1]}")

# %% [markdown]
# ## The four modes
#
# They differ only in what is appended before the dense step:
#
# - **`direct`**: the top-1 SID, as above (COBRA's two-step evaluation);
# - **`neighbor`**: the top-1 SID replaced by its nearest *other* SID in the
#   SID-embedding space; a robustness probe for when the top-1 code is unstable
#   or collides;
# - **`soft`**: no hard choice at all, the probability-weighted mix
#   $\sum_k w_k e_k$ of the top-`k` SID vectors, with
#   $w = \mathrm{softmax}(\log p_\text{sid} / \tau)$ (`k = 5`, `τ = 0.5`);
# - **`beam`**: the top-`M` SIDs each produce a VID query (the `M` beams run as
#   one batch of `B x M` rows); each beam retrieves its top-`N` films
#   (history removed) and the `M x N` candidates are ranked by a fused score.
#
# Each of the first three is a few lines given the model's building blocks.
# We write them ourselves and check them against the package on 64 users:

# %%
def appended_scores(sid_vectors):
    """(B, D) SID vectors appended to each history -> (B, N + 1) cosine scores of the VID queries."""
    q = F.normalize(model.vid_queries(batch, sid_vectors.unsqueeze(1))[:, 0], dim=-1)  # (B, D)
    s = q @ F.normalize(vids, dim=-1).T  # (B, N + 1)
    s[:, 0] = float("-inf")
    return s


with torch.no_grad():
    vocab = model.sid_vocab_vectors()  # (V, D)
    best = log_p.argmax(-1)  # (B,)
    mine = {"direct": appended_scores(vocab[best])}
    sims = F.normalize(vocab, dim=-1)[best] @ F.normalize(vocab, dim=-1).T  # (B, V)
    sims[torch.arange(len(best)), best] = float("-inf")  # never the SID itself
    mine["neighbor"] = appended_scores(vocab[sims.argmax(-1)])
    k_top = log_p.topk(5)
    w = torch.softmax(k_top.values / 0.5, dim=-1)  # (B, k)
    mine["soft"] = appended_scores((w.unsqueeze(-1) * vocab[k_top.indices]).sum(1))
    for mode, scores_mine in mine.items():
        assert torch.allclose(scores_mine, model.score(batch, decode=mode), atol=1e-5), mode
print("direct, neighbor and soft from scratch equal model.score(batch, decode=mode)")

# %% [markdown]
# ### Beam fusion
#
# For beam `m` (SID probability `p_sid(m)`) and candidate film `i` (cosine
# `cos(m, i)` with that beam's query), three fusions are implemented
# (`BEAM_FUSIONS`), following the source article and COBRA:
#
# - **`prod`**: $p_\text{sid}^{\alpha} \cdot p_\text{vid}^{1-\alpha}$, with
#   $p_\text{vid} = \mathrm{softmax}(\cos / t)$ over the catalogue at the
#   training temperature `t`;
# - **`sum`**: $\alpha\, p_\text{sid} + (1-\alpha)\, p_\text{vid}$;
# - **`softmax`** (COBRA's BeamFusion):
#   $\mathrm{softmax}_M(\tau \log p_\text{sid}) \cdot \mathrm{softmax}_{M \times N}(\psi \cos)$,
#   with COBRA's best `τ = 0.9`, `ψ = 16`.
#
# A film retrieved by several beams keeps its best score; a film no beam
# retrieved gets `-inf` (the evaluator then places it, with all other such
# films, behind every candidate, as an expected rank). The `softmax` fusion
# from scratch, for `M = 4` beams of `N = 200` films:

# %%
M, N_ITEMS, TAU, PSI = 4, 200, 0.9, 16.0
with torch.no_grad():
    beams = log_p.topk(M)  # (B, M)
    q = F.normalize(model.vid_queries(batch, vocab[beams.indices]), dim=-1)  # (B, M, D)
    cos = q @ F.normalize(vids, dim=-1).T  # (B, M, N + 1)
    cos[..., 0] = float("-inf")
    cos = cos.masked_fill(seen_items(batch.ids, split.num_items).unsqueeze(1), float("-inf"))  # history out
    cand = cos.topk(N_ITEMS, dim=-1)  # (B, M, N)
    fused = (torch.softmax(TAU * beams.values, -1).unsqueeze(-1)
             * torch.softmax(PSI * cand.values.flatten(1), -1).view_as(cand.values))  # (B, M, N)
    mine_beam = torch.full_like(cos[:, 0], float("-inf")).scatter_reduce(
        1, cand.indices.flatten(1), fused.flatten(1), reduce="amax")  # (B, N + 1), best over beams
    package = model.score(batch, decode=DecodeConfig(mode="beam", beam_width=M, beam_items=N_ITEMS,
                                                     fusion="softmax", tau=TAU, psi=PSI))
assert torch.equal(torch.isinf(mine_beam), torch.isinf(package))
assert torch.allclose(mine_beam[torch.isfinite(package)], package[torch.isfinite(package)], rtol=1e-4, atol=1e-9)
print(f"beam + softmax fusion from scratch equals the package; "
      f"{int(torch.isfinite(package[0]).sum())} candidate films for the first user")

# %% [markdown]
# ## Quality and latency on the validation split
#
# Now every mode on all {glue:text}`n_valid_users:,d` validation users,
# through the same `Evaluator` as every other model in the book. Latency is the
# wall time of the whole evaluation (decoding and ranking) divided by the
# number of users, on one CPU thread, batches of 512 users; it is a volatile
# number (it depends on the machine and its load), so we print it but do not
# draw conclusions finer than its order of magnitude.

# %%
# nbval-rtol: 0.01 -- float32 training: other CPUs round differently (~0.1%)
# every validation user here; a random 2,000 of them on larger datasets (ML-20M: 138k users x many decoders)
valid_users = split.sample_users(2_000)


def run(config):
    """Validation metrics of `model` decoded with `config` (cobra.train.evaluate), and milliseconds per user."""
    start = time.perf_counter()
    metrics = evaluate(model, valid_users, "valid", batch_size=512, score_options={"decode": config})
    ms = 1000 * (time.perf_counter() - start) / metrics["users"]
    return metrics, ms


configs = {mode: DecodeConfig(mode=mode) for mode in ("direct", "neighbor", "soft")}
configs |= {f"beam ({fusion})": DecodeConfig(mode="beam", fusion=fusion) for fusion in BEAM_FUSIONS}
rows, latency = [], {}
for name, config in configs.items():
    metrics, latency[name] = run(config)
    rows.append({"decode": name, "NDCG@10": metrics["ndcg@10"], "HR@10": metrics["hr@10"],
                 "NDCG@50": metrics["ndcg@50"], "HR@200": metrics["hr@200"]})
quality = pd.DataFrame(rows).set_index("decode")
quality.round(4)

# %%
# nbval-rtol: 0.01 -- float32 training: other CPUs round differently (~0.1%)
for name, ms in latency.items():
    print(f"{name:>14}: {ms:.2f} ms per user")
ndcg_direct = glue("ndcg_direct", quality.loc["direct", "NDCG@10"])
ndcg_beam = glue("ndcg_beam_softmax", quality.loc["beam (softmax)", "NDCG@10"])
beam_gain = glue("beam_gain", ndcg_beam / ndcg_direct - 1)

# %%
fig, ax = plt.subplots(figsize=(6.4, 3.8))
for i, name in enumerate(quality.index):
    x, y = latency[name], quality.loc[name, "NDCG@10"]
    ax.scatter(x, y, color=f"C{i}", s=40, zorder=3, label=name)
ax.axhline(popular["ndcg@10"], color="grey", ls="--", lw=1, label="popular")
ax.set_xlim(0, 1.15 * max(latency.values()))
ax.set_ylim(0, 1.15 * quality["NDCG@10"].max())
ax.set(xlabel="ms per user (one CPU thread; varies with the machine)", ylabel="validation NDCG@10",
       title="Decoding modes: quality against latency")
ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False, fontsize=9)
plt.show()

# %% [markdown]
# After this short budget every mode beats `popular`, and the order is clear:
#
# - **`beam` is best** with all three fusions, and COBRA's `softmax` fusion
#   leads (NDCG@10 {glue:text}`ndcg_beam_softmax:.3f` against
#   {glue:text}`ndcg_direct:.3f` for `direct`, {glue:text}`beam_gain:+.0%`):
#   the target `beam ≥ direct` holds, with room to spare. `prod` and
#   `sum` are close behind with the default `α = 0.5`, untuned.
# - **`soft` is second** at the cost of `direct`. This model's SID
#   distribution is flat (the top SID of the first user had `p_sid` of only
#   {glue:text}`top_p_sid:.1%`), so the top-1 code is often wrong; hedging
#   over the top 5, or keeping several beams, recovers films that a single
#   hard choice misses. This is the source article's argument for beams, "do
#   not commit to a category too early", measured.
# - **`neighbor` is worst**: it deliberately throws the top-1 SID away. It is
#   a probe of how much the exact code matters, not a mode to deploy.
# - **Latency.** `direct`, `neighbor` and `soft` run the backbone twice per
#   user (history, then history plus one SID); `beam` runs it `1 + M` times
#   (`M = 4` here), a few times slower per user in the printout above.
#
# ## What the beam width buys
#
# `beam` with `M = 1` keeps only the top-1 SID, like `direct`; with the
# `softmax` fusion its ranking inside the 200 candidates is the cosine
# ranking, so it must match `direct` on NDCG@10 (a useful sanity check). As
# `M` grows, films reached through less likely SIDs join the candidate list,
# and each extra beam costs one more pass of the backbone.

# %%
# nbval-rtol: 0.01 -- float32 training: other CPUs round differently (~0.1%)
widths = (1, 2, 4, 8, 16)
sweep, sweep_ms = [], []
for m in widths:
    metrics, ms = run(DecodeConfig(mode="beam", fusion="softmax", beam_width=m))
    sweep.append(metrics["ndcg@10"])
    sweep_ms.append(ms)
# beam drops every film of the history, so a target the user rated before is out of its reach, while the
# evaluator keeps it; MovieLens has no such targets (the synthetic stand-in has), and there M = 1 is direct
history = valid_users.history("valid")
repeats = np.any(history.items == valid_users.targets("valid")[1][np.repeat(np.arange(len(history)), history.lengths)])
assert repeats or math.isclose(sweep[0], quality.loc["direct", "NDCG@10"], rel_tol=1e-6)
print("NDCG@10 by beam width:", {m: round(v, 4) for m, v in zip(widths, sweep, strict=True)})
print(f"beam M = 1 equals direct ({sweep[0]:.4f}); best M = {widths[max(range(len(widths)), key=sweep.__getitem__)]}")
for m, ms in zip(widths, sweep_ms, strict=True):
    print(f"  M = {m:>2}: {ms:.2f} ms per user")
glue("best_width", widths[max(range(len(widths)), key=sweep.__getitem__)])
best_width_ratio = glue("best_width_ratio", max(sweep) / sweep[0])

# %%
fig, ax = plt.subplots(figsize=(6.0, 3.6))
ax.plot(widths, sweep, marker="o", label="beam (softmax fusion)")
ax.axhline(quality.loc["direct", "NDCG@10"], color="C1", ls="--", lw=1, label="direct")
ax.axhline(popular["ndcg@10"], color="grey", ls=":", lw=1, label="popular")
ax.set_xscale("log", base=2)
ax.set_xticks(widths, [str(m) for m in widths])
ax.minorticks_off()
ax.set(xlabel="beam width M (SIDs kept)", ylabel="validation NDCG@10", title="What the beam width buys")
ax.legend()
plt.show()

# %% [markdown]
# `M = 1` reproduces `direct` exactly, and quality then rises with every
# doubling of the width up to `M` = {glue:text}`best_width:d`
# ({glue:text}`best_width_ratio:.1f` times `direct`'s NDCG@10),
# while the latency grows roughly in proportion to `M`. The steady gains say
# more about this briefly trained model than about beams in general: its SID
# distribution is flat, so the right film's code is often several places down
# the list. A better-trained model with a sharper SID distribution should
# saturate at a smaller `M` (exercise 5).
#
# ## Summary
#
# - Every COBRA mode runs a sparse step (a distribution over the next SID) and
#   a dense step (append a SID vector, read the VID query, exact cosine search
#   over all films); the modes differ in what is appended.
# - `direct` appends the top-1 SID, `neighbor` its nearest other SID, `soft`
#   a probability-weighted mix of the top-`k` SIDs; `beam` runs `M` SIDs in
#   parallel and fuses `p_sid` with the dense similarity (`prod`, `sum` or
#   COBRA's `softmax` BeamFusion).
# - On this short-budget model, `beam` (softmax fusion) beats `direct` by
#   {glue:text}`beam_gain:.0%` on validation NDCG@10 and keeps improving up to
#   `M` = {glue:text}`best_width:d`; `soft` sits in between and `neighbor`
#   below `direct`. `beam` costs `M` backbone passes for the dense step where
#   the other modes need one.
#
# ## Exercises
#
# 1. Tune `soft_top_k` and `soft_temperature` on the validation split. Does
#    `soft` with `τ → 0` become `direct`? Check it.
# 2. Sweep `psi` of the softmax fusion over 1, 4, 16, 64 at `M = 4`. What
#    happens to the ranking when `psi` is very small, and when it is very large?
# 3. Plot the validation NDCG@10 of `prod` and `sum` against `alpha`. Which
#    `alpha` recovers `direct` with `M = 1`?
# 4. Set `beam_items` to 10 and compare HR@200 with the default 200: why does
#    it drop, and what does the evaluator do with films no beam retrieved?
# 5. Train the full-budget model (`python -m cobra train --preset cobra-cpu`)
#    and compare the modes with `python -m cobra eval --run DIR --decode MODE`.
#    Does the order of the modes change?
