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
# # 10. Decoding: from a history to a ranked list
#
# **Goal.** A trained COBRA model generates in two steps, a sparse one (the
# next semantic ID) and a dense one (a vector searched among the films'
# VIDs). How the two are chained is a design choice with a cost: we build the
# four modes of the source article {cite}`sid2vid2026blog`, `direct`,
# `neighbor`, `soft` and `beam` (with three ways to fuse the beam's scores,
# one of them COBRA's BeamFusion {cite}`yang2025cobra`), and one ablation,
# `sparse`, that skips the dense step. We check each against a few lines of
# our own on a briefly trained model, measure what each costs, and ask what
# the beam width $M$ buys. Which mode to *ship* is decided on fully trained
# models: the five converged runs of {doc}`chapter 11 <11_experiments>`, read
# from their committed results.
#
# **Prerequisites.** {doc}`chapter 08 <08_interleaving>` and {doc}`chapter 09
# <09_dual_loss>` (the model and its two losses).
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
import pandas as pd
import torch
import torch.nn.functional as F
from tqdm import TqdmWarning

from cobra.book import claim, glue, load_result, setup
from cobra.data import eval_batches
from cobra.datasets import load_dataset
from cobra.decode import BEAM_FUSIONS, COBRA_MODES, DecodeConfig, topk_items
from cobra.exercises import check
from cobra.metrics import evaluate_baseline, rank_metrics
from cobra.presets import get_preset
from cobra.runs import load_run
from cobra.text import display_title
from cobra.train import evaluate, fit

# fit imports tqdm.auto, which inside a notebook warns that ipywidgets is missing;
# we draw no progress bars.
warnings.filterwarnings("ignore", message="IProgress not found", category=TqdmWarning)
profile = setup()
ml = load_dataset(profile.dataset)
titles = [display_title(t, y)
          for t, y in zip(ml.items["title"], ml.items["year"], strict=True)]
print(f"profile {profile.name}: {profile.dataset}\n"
      f"COBRA decoders {list(COBRA_MODES)},\nbeam fusions {list(BEAM_FUSIONS)}")

# %% [markdown]
# ## A model to decode
#
# We train one `cobra-cpu` model (catalogue negatives,
# {doc}`chapter 09 <09_dual_loss>`). To keep the chapter within a few minutes
# on two CPU cores we train for a **short budget of 3 epochs** (every training
# event is a target in each, {doc}`chapter 05 <05_hstu>`) instead of the
# preset's 100 with early stopping, selecting the epoch by validation
# NDCG@10 under `direct` decoding (the cheapest mode). This model is for the
# mechanics: building the modes, checking them, timing them. Its quality
# numbers describe a model early in training, so the conclusions about which
# mode is best come from the converged runs at the end of the chapter. A
# full-budget model is `python -m cobra train --preset cobra-cpu`; its decoding
# modes are compared by `python -m cobra eval --run DIR --decode MODE`.

# %%
# nbval-rtol: 0.01 -- float32 training: other CPUs round differently (~0.1%)
EPOCHS = 3
overrides = {"train.epochs": EPOCHS, "model.decode.mode": "direct",
             "train.num_threads": 1}
with tempfile.TemporaryDirectory() as run_dir:
    result = fit(get_preset(f"cobra-{profile.name}", overrides), run_dir,
                 progress=False)
    model, run_config, split = load_run(run_dir)  # best.pt, in eval mode
torch.set_num_threads(1)
print(f"best epoch {result['best_epoch']} of {result['epochs']}: "
      f"valid NDCG@10 {result['valid_ndcg@10']:.4f} (direct)")
popular = evaluate_baseline("popular", profile.dataset, split="valid")
print(f"popular on the validation split: NDCG@10 {popular['ndcg@10']:.4f}, "
      f"HR@10 {popular['hr@10']:.4f}")
glue("n_items", split.num_items)
n_valid_users = glue("n_valid_users", popular["users"])

# %% [markdown]
# ## The two steps, for one user
#
# **Sparse step.** The hidden state at the history's last `VID` token is a
# distribution over the next semantic ID, $p_\text{sid}$: the cosine with
# every SID vector over the temperature $\tau$, soft-maxed over the vocabulary
# ($V$ distinct code tuples; with the uniqueness code each names one film,
# $V = N$). Here are the five most likely next SIDs for the first validation
# user:

# %%
# nbval-rtol: 0.01 -- float32 training: other CPUs round differently (~0.1%)
# 64 users
batch = next(eval_batches(split, "valid", run_config.model.max_seq_len, batch_size=64))
with torch.no_grad():
    state = model.sid_state(batch)  # (B, D)
    log_p = model.sid_log_probs(state)  # (B, V)
top = log_p[0].topk(5)
vocab_items = model.vocab_item[top.indices]  # one film per SID (V = N here)
glue("top_p_sid", top.values[0].exp().item())
pd.DataFrame({"SID": [tuple(int(c) for c in model.vocab_codes[v]) for v in top.indices],
              "p_sid": top.values.exp().numpy().round(4),
              "film with this SID": [titles[int(i) - 1] for i in vocab_items]},
             index=range(1, 6))

# %% [markdown]
# **Dense step.** The chosen SID's vector is appended to the history as an open
# `SID` token; the hidden state there is the VID query $q$, and every film
# $i$ is scored by $\cos(q, v_i)$, with $v_i$ its VID, an exact search over the
# {glue:text}`n_items:,d` VIDs (`topk_items`; an ANN index would only pay off
# for millions of items). The target film and the top five of the search:

# %%
# nbval-rtol: 0.01 -- float32 training: other CPUs round differently (~0.1%)
with torch.no_grad():
    # (B, D)
    query = model.vid_queries(
        batch, model.sid_vocab_vectors()[log_p.argmax(-1)].unsqueeze(1))[:, 0]
    vids = model.item_vid_vectors()  # (N + 1, D)
# the user's whole history left out
scores, ids = topk_items(query, vids, exclude=batch.exclude, k=5)
print("target:", titles[int(batch.targets[0]) - 1])
for rank, (s, i) in enumerate(zip(scores[0], ids[0], strict=True), 1):
    print(f"  {rank}. cos {float(s):.4f}  {titles[int(i) - 1]}")

# %% [markdown]
# ## The four modes
#
# They differ only in what is appended before the dense step. Sort the SIDs
# by $p_\text{sid}$: $j_1$ is the most likely, $j_2$ the next, and so on.
# Write $s_j$ for the vector of SID $j$, $v_i$ for the VID of film $i$, and
# $q(s)$ for the VID query read at an open `SID` token that carries the
# vector $s$. Each mode gives every film $i$ a score:
#
# **`direct`** appends the top-1 SID, as above (COBRA's two-step evaluation):
#
# $$
# \mathrm{score}(i) = \cos\big(q(s_{j_1}), v_i\big).
# $$ (eq-decode-direct)
#
# **`neighbor`** appends the top-1 SID's nearest *other* SID in the
# SID-embedding space instead, a robustness probe for when the top-1 code is
# unstable or collides:
#
# $$
# \mathrm{score}(i) = \cos\big(q(s_{j'}), v_i\big), \qquad
# j' = \arg\max_{j \ne j_1} \cos(s_j, s_{j_1}).
# $$ (eq-decode-neighbor)
#
# **`soft`** makes no hard choice at all: it appends the probability-weighted
# mix of the vectors of the $k_\text{soft}$ most likely SIDs,
# $\mathrm{top} = \{j_1, \dots, j_{k_\text{soft}}\}$, weighted by a softmax at
# the temperature $\tau_\text{soft}$ ($k_\text{soft} = 5$, `soft_top_k`;
# $\tau_\text{soft} = 0.5$, `soft_temperature`):
#
# $$
# \mathrm{score}(i) = \cos\Big(q\Big(\sum_{j \in \mathrm{top}} \omega_j\, s_j\Big), v_i\Big), \qquad
# \omega_j = \mathrm{softmax}_{j \in \mathrm{top}}\big(\log p_\text{sid}(j) / \tau_\text{soft}\big).
# $$ (eq-decode-soft)
#
# **`beam`** keeps the top $M$ SIDs $j_1, \dots, j_M$ (`beam_width`); each
# produces a VID query (the $M$ beams run as one batch of $B \times M$ rows),
# each beam retrieves its top $n_b$ films (`beam_items`, history removed), and
# the $M \times n_b$ candidates are ranked by a fused score
# ({eq}`eq-decode-beam`, below).
#
# And one ablation that is not COBRA's:
#
# **`sparse`** has no dense step at all. Each film is scored by
# $\log p_\text{sid}$ of its *own* semantic ID, $\mathrm{sid}(i)$:
#
# $$
# \mathrm{score}(i) = \log p_\text{sid}\big(\mathrm{sid}(i)\big).
# $$ (eq-decode-sparse)
#
# When several films share a SID they tie; with the uniqueness code every film
# has its own SID ($V = N$), so the sparse head alone is already a full
# ranking of the catalogue, a next-item classifier whose output vectors are
# the SID embeddings. `sparse` asks what the dense step adds on top of it.
#
# Every mode but `beam` is a few lines given the model's building blocks. We
# write {eq}`eq-decode-direct`, {eq}`eq-decode-neighbor`, {eq}`eq-decode-soft`
# and {eq}`eq-decode-sparse` ourselves and check them against the package on
# 64 users:

# %%
def appended_scores(sid_vectors):
    """(B, D) SID vectors appended to each history -> (B, N + 1) cosine scores of the
    VID queries.
    """
    # (B, D)
    q = F.normalize(model.vid_queries(batch, sid_vectors.unsqueeze(1))[:, 0], dim=-1)
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
    own_sid = model.item_sid.clamp(min=0)  # (N + 1,) each film's vocabulary entry
    mine["sparse"] = log_p[:, own_sid]  # (B, N + 1): log p_sid of each film's own SID
    mine["sparse"][:, 0] = float("-inf")
    for mode, scores_mine in mine.items():
        assert torch.allclose(scores_mine, model.score(batch, decode=mode),
                              atol=1e-5), mode
print("direct, neighbor, soft and sparse from scratch "
      "equal model.score(batch, decode=mode)")

# %% [markdown]
# ### Beam fusion
#
# Beam $m$ ($m = 1, \dots, M$) appends the vector of its SID $j_m$ and reads
# the query $q_m = q(s_{j_m})$; its candidates $\mathcal{C}_m$ are the $n_b$
# films with the highest $\cos(q_m, v_i)$, history removed. Three fusions
# score a candidate film $i$ of beam $m$ (`BEAM_FUSIONS`), following the
# source article and COBRA. They use beam $m$'s VID distribution over the
# catalogue at the training temperature $\tau$,
# $p_\text{vid}(i \mid m) = \mathrm{softmax}_i\big(\cos(q_m, v_i) / \tau\big)$,
# and `prod` and `sum` weight the SID term by $\alpha$ (`alpha`, default `0.5`).
#
# **`prod`** multiplies the two probabilities:
#
# $$
# \mathrm{score}_m(i) = p_\text{sid}(j_m)^{\alpha} \cdot p_\text{vid}(i \mid m)^{1-\alpha}.
# $$ (eq-beam-prod)
#
# **`sum`** adds them:
#
# $$
# \mathrm{score}_m(i) = \alpha\, p_\text{sid}(j_m) + (1-\alpha)\, p_\text{vid}(i \mid m).
# $$ (eq-beam-sum)
#
# **`softmax`**, COBRA's BeamFusion, multiplies a softmax over the $M$ beams
# by a softmax over all $M \times n_b$ candidates, with COBRA's best
# $\tau_\text{beam} = 0.9$ (`tau`) and $\psi = 16$ (`psi`):
#
# $$
# \mathrm{score}_m(i) = \mathrm{softmax}_M\big(\tau_\text{beam} \log p_\text{sid}(j_m)\big) \cdot \mathrm{softmax}_{M \times n_b}\big(\psi \cos(q_m, v_i)\big).
# $$ (eq-beam-softmax)
#
# A film retrieved by several beams keeps its best score; a film no beam
# retrieved gets $-\infty$ (the evaluator then places it, with all other such
# films, behind every candidate, as an expected rank):
#
# $$
# \mathrm{score}(i) = \max_{m \,:\, i \in \mathcal{C}_m} \mathrm{score}_m(i),
# \qquad \mathrm{score}(i) = -\infty \text{ if } i \notin \mathcal{C}_1 \cup \dots \cup \mathcal{C}_M.
# $$ (eq-decode-beam)
#
# The `softmax` fusion {eq}`eq-beam-softmax` from scratch, for $M = 4$ beams
# of $n_b = 200$ films:

# %%
M, N_ITEMS, TAU, PSI = 4, 200, 0.9, 16.0
with torch.no_grad():
    beams = log_p.topk(M)  # (B, M)
    q = F.normalize(model.vid_queries(batch, vocab[beams.indices]), dim=-1)  # (B, M, D)
    cos = q @ F.normalize(vids, dim=-1).T  # (B, M, N + 1)
    cos[..., 0] = float("-inf")
    # the whole history out, as the evaluator
    cos = cos.masked_fill(batch.exclude.unsqueeze(1), float("-inf"))
    cand = cos.topk(N_ITEMS, dim=-1)  # (B, M, N)
    # (B, M, N)
    fused = (torch.softmax(TAU * beams.values, -1).unsqueeze(-1)
             * torch.softmax(PSI * cand.values.flatten(1), -1).view_as(cand.values))
    # (B, N + 1), best over beams
    mine_beam = torch.full_like(cos[:, 0], float("-inf")).scatter_reduce(
        1, cand.indices.flatten(1), fused.flatten(1), reduce="amax")
    package = model.score(
        batch, decode=DecodeConfig(mode="beam", beam_width=M, beam_items=N_ITEMS,
                                   fusion="softmax", tau=TAU, psi=PSI))
assert torch.equal(torch.isinf(mine_beam), torch.isinf(package))
assert torch.allclose(mine_beam[torch.isfinite(package)],
                      package[torch.isfinite(package)], rtol=1e-4, atol=1e-9)
print("beam + softmax fusion from scratch equals the package;\n"
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
# every validation user here; a random 2,000 of them on larger datasets
# (ML-20M: 138k users x many decoders)
valid_users = split.sample_users(2_000)


def run(config):
    """Validation metrics of `model` decoded with `config` (cobra.train.evaluate), and
    milliseconds per user.
    """
    start = time.perf_counter()
    metrics = evaluate(model, valid_users, "valid", batch_size=512,
                       score_options={"decode": config})
    ms = 1000 * (time.perf_counter() - start) / metrics["users"]
    return metrics, ms


configs = {mode: DecodeConfig(mode=mode) for mode in ("direct", "neighbor", "soft")}
configs |= {f"beam ({fusion})": DecodeConfig(mode="beam", fusion=fusion)
            for fusion in BEAM_FUSIONS}
configs["sparse"] = DecodeConfig(mode="sparse")
rows, latency = [], {}
for name, config in configs.items():
    metrics, latency[name] = run(config)
    rows.append({"decode": name, "NDCG@10": metrics["ndcg@10"],
                 "HR@10": metrics["hr@10"], "NDCG@50": metrics["ndcg@50"],
                 "HR@200": metrics["hr@200"]})
quality = pd.DataFrame(rows).set_index("decode")
quality.round(4)

# %%
# nbval-rtol: 0.01 -- float32 training: other CPUs round differently (~0.1%)
for name, ms in latency.items():
    print(f"{name:>14}: {ms:.2f} ms per user")
ndcg_direct = glue("ndcg_direct", quality.loc["direct", "NDCG@10"])
ndcg_beam = glue("ndcg_beam_softmax", quality.loc["beam (softmax)", "NDCG@10"])
beam_gain = glue("beam_gain", ndcg_beam / ndcg_direct - 1)
glue("ndcg_soft", quality.loc["soft", "NDCG@10"])
glue("ndcg_sparse", quality.loc["sparse", "NDCG@10"])
glue("ndcg_popular", popular["ndcg@10"])
# the order the text below describes
ndcg10 = quality["NDCG@10"]
claim(ndcg10.idxmax() == "sparse" and ndcg10.idxmin() == "neighbor",
      "sparse is best, neighbor worst")
claim(ndcg10["soft"] > ndcg10["beam (softmax)"] > ndcg10["direct"],
      "soft, then beam, then direct")
claim(ndcg10["direct"] < popular["ndcg@10"] < ndcg10["beam (softmax)"],
      "direct is below popular, beam above")

# %%
fig, ax = plt.subplots(figsize=(6.4, 3.8))
for i, name in enumerate(quality.index):
    x, y = latency[name], quality.loc[name, "NDCG@10"]
    ax.scatter(x, y, color=f"C{i}", s=40, zorder=3, label=name)
ax.axhline(popular["ndcg@10"], color="grey", ls="--", lw=1, label="popular")
ax.set_xlim(0, 1.15 * max(latency.values()))
ax.set_ylim(0, 1.15 * quality["NDCG@10"].max())
ax.set(xlabel="ms per user (one CPU thread; varies with the machine)",
       ylabel="validation NDCG@10", title="Decoding modes: quality against latency")
ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False, fontsize=9)
plt.show()

# %% [markdown]
# After this short budget the order is clear, and it is not the one the
# source article leads us to expect:
#
# - **`sparse` is best by far** (NDCG@10 {glue:text}`ndcg_sparse:.3f`).
#   With one SID per film, the sparse head is a next-film classifier, trained
#   from the first step with a softmax over every SID; the dense step replaces
#   its ranking by cosines with the VIDs, which after three epochs still say
#   little beyond the text similarity of the films.
# - **Of COBRA's own modes, those that hedge win.** `soft`
#   ({glue:text}`ndcg_soft:.3f`) and `beam` with the `softmax` fusion
#   ({glue:text}`ndcg_beam_softmax:.3f`, {glue:text}`beam_gain:+.0%` over
#   `direct`'s {glue:text}`ndcg_direct:.3f`) come before `direct`; `prod` and
#   `sum` are close behind with the default $\alpha = 0.5$, untuned. This
#   model's SID distribution is flat (the top SID of the first user had
#   $p_\text{sid}$ of only {glue:text}`top_p_sid:.1%`), so the top-1 code is
#   often wrong; hedging over the top 5, or keeping several beams, recovers
#   films that a single hard choice misses. This is the source article's
#   argument for beams, "do not commit to a category too early", measured.
# - **`direct` and `neighbor` fall below `popular`**
#   ({glue:text}`ndcg_popular:.3f`). `neighbor` deliberately throws the top-1
#   SID away: it is a probe of how much the exact code matters, not a mode to
#   deploy.
# - **Latency.** `direct`, `neighbor` and `soft` run the backbone twice per
#   user (history, then history plus one SID); `beam` runs it $1 + M$ times
#   ($M = 4$ here), a few times slower per user in the printout above.
#
# ## What the beam width buys
#
# `beam` with $M = 1$ keeps only the top-1 SID, like `direct`; with the
# `softmax` fusion its ranking inside the $n_b = 200$ candidates is the cosine
# ranking, so it must match `direct` on NDCG@10 (a useful sanity check). As
# $M$ grows, films reached through less likely SIDs join the candidate list,
# and each extra beam costs one more pass of the backbone.

# %%
# nbval-rtol: 0.01 -- float32 training: other CPUs round differently (~0.1%)
widths = (1, 2, 4, 8, 16)
sweep, sweep_ms = [], []
for m in widths:
    metrics, ms = run(DecodeConfig(mode="beam", fusion="softmax", beam_width=m))
    sweep.append(metrics["ndcg@10"])
    sweep_ms.append(ms)
# beam leaves out the same films as the evaluator (the whole history, the target kept),
# so M = 1 is direct
assert math.isclose(sweep[0], quality.loc["direct", "NDCG@10"], rel_tol=1e-6)
print("NDCG@10 by beam width:",
      {m: round(v, 4) for m, v in zip(widths, sweep, strict=True)})
print(f"beam M = 1 equals direct ({sweep[0]:.4f}); "
      f"best M = {widths[max(range(len(widths)), key=sweep.__getitem__)]}")
for m, ms in zip(widths, sweep_ms, strict=True):
    print(f"  M = {m:>2}: {ms:.2f} ms per user")
claim(all(a < b for a, b in zip(sweep[:-1], sweep[1:], strict=True)),
      "quality rises with every doubling of M")
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
ax.set(xlabel="beam width M (SIDs kept)", ylabel="validation NDCG@10",
       title="What the beam width buys")
ax.legend()
plt.show()

# %% [markdown]
# $M = 1$ reproduces `direct` exactly, and quality then rises with every
# doubling of the width up to $M =$ {glue:text}`best_width:d`
# ({glue:text}`best_width_ratio:.1f` times `direct`'s NDCG@10),
# while the latency grows roughly in proportion to $M$. The steady gains say
# more about this briefly trained model than about beams in general: its SID
# distribution is flat, so the right film's code is often several places down
# the list. A better-trained model with a sharper SID distribution should
# saturate at a smaller $M$ (exercise 5).
#
# ## Which mode to ship: the converged runs
#
# A model three epochs into training is not the model anyone deploys, and the
# ranking of decoders can change as the SID distribution sharpens.
# {doc}`Chapter 11 <11_experiments>` trains `cobra-cpu` to convergence with
# five seeds (early stopping on validation), which takes longer than a chapter
# may, so the benchmark scored each of those best checkpoints under every
# mode, on validation and on test, and committed the result
# (`book/results/bench_quality.json`).
# The choice is made on validation; test is reported for the choice:

# %%
# MovieLens-100K, whatever the profile
converged = load_result("bench_quality")["models"]["cobra-cpu"]
decodes = pd.DataFrame(
    [{"decode": mode, "valid NDCG@10": d["valid_ndcg@10_mean"],
      "test NDCG@10": d["ndcg@10_mean"], "test std": d["ndcg@10_std"],
      "test HR@10": d["hr@10_mean"]}
     for mode, d in converged["decodes"].items()]).set_index("decode")
shipped = converged["best_decode_on_valid"]
print(f"{len(converged['runs'])} converged runs "
      f"(best epochs {[r['best_epoch'] for r in converged['runs']]}); "
      f"chosen on validation: {shipped}")
glue("conv_sparse_valid", decodes.loc["sparse", "valid NDCG@10"])
glue("conv_beam_valid", decodes.loc["beam", "valid NDCG@10"])
glue("conv_direct_valid", decodes.loc["direct", "valid NDCG@10"])
glue("conv_shipped_test", decodes.loc[shipped, "test NDCG@10"])
glue("conv_beam_test", decodes.loc["beam", "test NDCG@10"])
glue("conv_sparse_gain", decodes.loc["sparse", "valid NDCG@10"]
     / decodes.loc["beam", "valid NDCG@10"] - 1)
# the text below reads the order of these rows
assert shipped == "sparse" and decodes["valid NDCG@10"].idxmin() == "neighbor"
assert decodes.loc["beam", "valid NDCG@10"] > decodes.loc["soft", "valid NDCG@10"]
decodes.round(4)

# %% [markdown]
# The converged models keep the sparse head on top, and reorder the dense
# modes:
#
# - **`sparse` is best**, by a wide margin: validation NDCG@10
#   {glue:text}`conv_sparse_valid:.4f` against {glue:text}`conv_beam_valid:.4f`
#   for `beam` ({glue:text}`conv_sparse_gain:+.0%`), and
#   {glue:text}`conv_shipped_test:.4f` on test against
#   {glue:text}`conv_beam_test:.4f`. With the uniqueness code every film has
#   its own SID, so after full training the sparse head is a sharp next-film
#   classifier. Every dense mode *replaces* its ranking by the cosine between
#   a VID query and the films' VIDs, which are learned projections of frozen
#   text vectors: films with similar descriptions get similar VIDs whether or
#   not the same people watch them, so the dense ranking is a coarser one.
# - **`beam` is now the best of COBRA's own modes** (it trailed `soft` after
#   three epochs), and `direct`
#   ({glue:text}`conv_direct_valid:.4f`) the weakest but for `neighbor`: the
#   beam's BeamFusion keeps $p_\text{sid}$ in the score, so it keeps part of
#   the sparse ranking; `direct` commits to one SID, that is one film, and then
#   ranks the catalogue by text similarity to it.
#
# So on MovieLens-100K with unique semantic IDs, the mode to ship is the one
# that skips the dense step. That says more about this setup than about
# COBRA: the dense step earns its place when a SID is a *category* shared by
# many films, so that the sparse step can only narrow the search and the
# dense step must pick inside it ({doc}`chapter 11 <11_experiments>` ablates
# coarser IDs).

# %% [markdown]
# ## Summary
#
# - Every COBRA mode runs a sparse step (a distribution over the next SID) and
#   a dense step (append a SID vector, read the VID query, exact cosine search
#   over all films); the modes differ in what is appended.
# - `direct` appends the top-1 SID, `neighbor` its nearest other SID, `soft`
#   a probability-weighted mix of the top $k_\text{soft}$ SIDs; `beam` runs
#   $M$ SIDs in parallel and fuses $p_\text{sid}$ with the dense similarity
#   (`prod`, `sum` or COBRA's `softmax` BeamFusion).
# - `sparse` ranks films by $\log p_\text{sid}$ of their own SID alone; with
#   one SID per film it is a next-film classifier, and it shows what the dense
#   step adds.
# - On the briefly trained model of this chapter, `beam` (softmax fusion)
#   beats `direct` by {glue:text}`beam_gain:.0%` on validation NDCG@10 and
#   keeps improving up to $M =$ {glue:text}`best_width:d`, at $M$ backbone
#   passes for the dense step where the other modes need one.
# - `sparse` is ahead of every dense mode, on this model and on the converged
#   runs of {doc}`chapter 11 <11_experiments>`, where validation chooses it
#   ({glue:text}`conv_sparse_gain:+.0%` over `beam`): with unique semantic
#   IDs the dense step re-ranks by text similarity and loses collaborative
#   signal.
#
# ## Exercises
#
# Each exercise says how long it takes on the `cpu` profile. Those with one
# right answer end with a check: `check("10.4", your_answer)` prints whether
# it is right, with a hint if not. Solutions are folded below each exercise
# (click to open); try first. They reuse this chapter's `model` and `batch`,
# and `run_few(config)`, which scores a quarter of the validation users (at
# least a hundred) with one decoding setup, so that the sweeps stay quick:

# %%
few_users = split.sample_users(max(100, min(2_000, n_valid_users) // 4))


def run_few(config):
    """Validation metrics of `model` decoded with `config`, on `few_users`."""
    return evaluate(model, few_users, "valid", batch_size=512,
                    score_options={"decode": config})


# %% [markdown]
# ```{exercise}
# :label: ex-10-1
#
# Tune `soft_top_k` over $k_\text{soft} \in \{2, 10\}$ and `soft_temperature`
# over $\tau_\text{soft} \in \{0.1, 1\}$ with `run_few`.
# Then show that `soft` with $\tau_\text{soft} \to 0$ is `direct`: compare
# `model.score(batch, decode=...)` of the two. *About 5 seconds.* An open
# question: the solution prints the grid and whether the largest score
# difference is below $10^{-5}$.
# ```

# %% [markdown] tags=["solution"]
# ````{solution-start} ex-10-1
# :class: dropdown
# ````

# %% tags=["solution"]
soft_grid = pd.DataFrame(
    [{"k_soft": k, "tau_soft": t,
      "NDCG@10": run_few(DecodeConfig(mode="soft", soft_top_k=k,
                                      soft_temperature=t))["ndcg@10"]}
     for k in (2, 10) for t in (0.1, 1.0)]).set_index(["k_soft", "tau_soft"])
print(f"soft at the defaults: {run_few(DecodeConfig(mode='soft'))['ndcg@10']:.4f}")
print(soft_grid.round(4))
# tau_soft = 1e-6: two SIDs whose log p_sid are closer than about 1e-5 still
# share the weight (at 1e-4 one user's near-tie left a gap of 1e-4)
with torch.no_grad():
    cold = model.score(batch, decode=DecodeConfig(mode="soft", soft_temperature=1e-6))
    direct_scores = model.score(batch, decode="direct")
gap = (cold[:, 1:] - direct_scores[:, 1:]).abs().max().item()  # over (B, N) scores
print(f"soft at tau_soft = 1e-6 gives direct's scores (to 1e-5): {gap < 1e-5}")
assert gap < 1e-5

# %% [markdown] tags=["solution"]
# As $\tau_\text{soft} \to 0$ the weights $\omega$ become one-hot on the top
# SID, the mix is that SID's vector and `soft` *is* `direct` (the scores
# agree to rounding). The other end, a large $\tau_\text{soft}$ with many
# SIDs, appends an average of many codes. The grid's best cell is the
# setting to use, chosen on validation; compare it with the default and
# with `direct` above.
#
# ````{solution-end}
# ````

# %% [markdown]
# ```{exercise}
# :label: ex-10-2
#
# Sweep `psi` ($\psi$) of the softmax fusion over 1, 4, 16 and 64 at
# $M = 4$. What happens to the ranking when $\psi$ is very small, and when
# it is very large? *About 5 seconds.* An open question: the solution
# prints the sweep.
# ```

# %% [markdown] tags=["solution"]
# ````{solution-start} ex-10-2
# :class: dropdown
# ````

# %% tags=["solution"]
psi_sweep = {psi: run_few(DecodeConfig(mode="beam", fusion="softmax", psi=psi))
             for psi in (1.0, 4.0, 16.0, 64.0)}
for psi, m in psi_sweep.items():
    print(f"psi = {psi:>4.0f}: NDCG@10 {m['ndcg@10']:.4f}, HR@10 {m['hr@10']:.4f}")

# %% [markdown] tags=["solution"]
# The fused score of a film is $\mathrm{softmax}_M(\tau_\text{beam}
# \log p_\text{sid}) \cdot \mathrm{softmax}(\psi \cos)$. With a small $\psi$
# the second factor is nearly flat: every film of a beam gets about the same
# share, so the ranking sorts films by their beam's SID probability, and
# inside a beam almost at random. With a large $\psi$ the best cosine of
# each beam takes nearly all of that beam's mass and the rest fall to zero,
# so the list is the beams' top films followed by a tail ordered by tiny
# numbers. The sweep shows where between the two this model sits.
#
# ````{solution-end}
# ````

# %% [markdown]
# ```{exercise}
# :label: ex-10-3
#
# Score `prod` and `sum` at $\alpha \in \{0.25, 0.5, 0.75\}$ ($M = 4$). Then
# set $M = 1$: which $\alpha$ makes `prod` rank exactly as `direct`? Reason
# first: with one beam, what is $\log p_\text{sid}$ across the candidates?
# *About 10 seconds.* An open question: the solution prints the sweep and
# the $M = 1$ cases.
# ```

# %% [markdown] tags=["solution"]
# ````{solution-start} ex-10-3
# :class: dropdown
# ````

# %% tags=["solution"]
alpha_sweep = pd.DataFrame(
    {fusion: {a: run_few(DecodeConfig(mode="beam", fusion=fusion, alpha=a))["ndcg@10"]
              for a in (0.25, 0.5, 0.75)} for fusion in ("prod", "sum")})
alpha_sweep.index.name = "alpha"
print(alpha_sweep.round(4))
direct_few = run_few(DecodeConfig(mode="direct"))["ndcg@10"]
for a in (0.5, 1.0):
    one_beam = DecodeConfig(mode="beam", fusion="prod", alpha=a, beam_width=1)
    print(f"M = 1, prod, alpha = {a}: NDCG@10 {run_few(one_beam)['ndcg@10']:.4f} "
          f"(direct {direct_few:.4f})")

# %% [markdown] tags=["solution"]
# With one beam, $\log p_\text{sid}$ is the same number for every candidate,
# so `prod` ranks by $(1 - \alpha) \log p_\text{vid}$, which orders films as
# their cosine does: *every* $\alpha < 1$ gives `direct`'s ranking and its
# NDCG@10 exactly. At $\alpha = 1$ the dense term is gone, all
# $n_b$ candidates tie, and the evaluator averages over their order: the
# score falls. At $M = 4$ the SID term separates the beams, and $\alpha$
# sets how much a strong beam outweighs a close cosine.
#
# ````{solution-end}
# ````

# %% [markdown]
# ```{exercise}
# :label: ex-10-4
#
# Set `beam_items` ($n_b$) to 10 and compare HR@200 with the default 200.
# Why does it drop? To see what the evaluator does with the films no beam
# retrieved, take the first user of `batch`: its candidates are all films
# except those `batch.exclude` removes (the target stays a candidate). If
# the $M = 4$ beams retrieve $C = 40$ distinct films and the target is not
# among them, what HR@200 does the evaluator give, in expectation over the
# order of the tied films? *About 5 seconds.* Check: `check("10.4",
# expected_hr200)`.
# ```

# %% [markdown] tags=["solution"]
# ````{solution-start} ex-10-4
# :class: dropdown
# ````

# %% tags=["solution"]
for n_b in (10, 200):
    hr200 = run_few(DecodeConfig(mode="beam", beam_items=n_b))["hr@200"]
    print(f"HR@200 with n_b = {n_b}: {hr200:.4f}")
target = int(batch.targets[0])
excluded = batch.exclude[0].clone()
excluded[target] = False  # the target is always a candidate
candidates = split.num_items - int(excluded[1:].sum())
C = 40
expected_hr200 = (200 - C) / (candidates - C)
print(f"first user: {candidates} candidates; C = {C} retrieved, the target not "
      f"among them:\nexpected HR@200 = {expected_hr200:.4f}")

# %% tags=["solution"]
toy = torch.full((1, split.num_items + 1), float("-inf"))  # (1, N + 1)
retrieved = torch.nonzero(~excluded).flatten()
retrieved = retrieved[(retrieved != target) & (retrieved != 0)][:C]
toy[0, retrieved] = torch.linspace(1.0, 0.0, C)  # C films ranked, the rest tied
by_evaluator = rank_metrics(toy, batch.targets[:1], batch.exclude[:1])["hr@200"]
assert math.isclose(float(by_evaluator), expected_hr200, rel_tol=1e-9)
check("10.4", expected_hr200)

# %% [markdown] tags=["solution"]
# A target that no beam retrieved sits behind all $C$ retrieved films, tied
# with every other unretrieved candidate; the evaluator takes the
# expectation over the tie, $(200 - C) / (n - C)$ for $n$ candidates, a
# small number. With $n_b = 10$ the $M n_b$ candidates are too few to fill
# the top 200, so every target beyond them gets only that share of a hit:
# HR@200 falls towards HR@40. Set $n_b \ge 200$ when you report metrics at
# 200.
#
# ````{solution-end}
# ````

# %% [markdown]
# ```{exercise}
# :label: ex-10-5
#
# The converged runs chose `sparse` because every film has its own SID.
# What if the SIDs are categories? Training such a model takes *about 10
# minutes* (`python -m cobra train --preset cobra-cpu --set sid_levels=2 --set
# model.sid_levels=2`: two levels, no uniqueness code), then compare the
# modes with `python -m cobra eval --run DIR --decode MODE`. The ablation
# benchmark of {doc}`chapter 11 <11_experiments>` trained exactly this
# variant (`"SID 2 levels, no uniqueness code"`) and scored it with every
# mode on validation (`load_result("ablate_cobra_valid")["variants"]`). Which
# mode wins there? *About a second.* Check: `check("10.5", mode)`.
# ```

# %% [markdown] tags=["solution"]
# ````{solution-start} ex-10-5
# :class: dropdown
# ````

# %% tags=["solution"]
variants = load_result("ablate_cobra_valid")["variants"]
by_decode = pd.DataFrame(
    {name: variants[name]["valid_ndcg@10_by_decode"]
     for name in ("sources", "SID 2 levels, no uniqueness code")})
print(by_decode.round(4))
mode = by_decode["SID 2 levels, no uniqueness code"].idxmax()
check("10.5", mode)

# %% [markdown] tags=["solution"]
# With category IDs the sparse head can only name a category, and `sparse`
# ties every film inside it: it drops far below its score with unique IDs.
# Now the dense step is what picks the film, and `beam`, which searches
# several categories and ranks their films by cosine, wins. The two
# halves of COBRA earn their keep when the IDs are coarse.
#
# ````{solution-end}
# ````
