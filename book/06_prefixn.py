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
# # 6. PrefixN embeddings
#
# **Goal.** Feed semantic IDs into a sequential recommender. A model cannot
# read the tuple $(c_1, c_2, c_3, u)$ directly: it needs a vector. PrefixN
# builds that vector from the *path* of the item in the code tree, one
# embedding row per prefix, so films that share a prefix share rows and a
# rarely rated film borrows what its better-known neighbours learned
# {cite}`zheng2025prefixngram,singh2024semanticids`. We draw the code tree, look at
# the hash that maps prefixes to rows and at its collisions, rebuild one item's
# vector by hand, define the six ways to fuse it with a classic ID embedding,
# and compare them on MovieLens-100K.
#
# **Prerequisites.** {doc}`chapter 03 <03_semantic_ids>` (semantic IDs and
# the uniqueness code) and {doc}`chapter 05 <05_hstu>` (the HSTU backbone).
#
# **Run time.** About 1.5 min on 2 CPU cores (`cpu` profile; measured by the nbval run, which checks it).
#
# This follows the source article {cite}`sid2vid2026blog`, where the PrefixN
# vector fused with the item-ID table (`prefixN-indEmb`) worked best. The code
# lives in `cobra.embeddings`: `tuple_hash`, `PrefixNEmbedding`, the registry
# `FUSIONS` and `build_item_embedding`.

# %%
import tempfile
import textwrap
import warnings
from collections import Counter
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from tqdm import TqdmWarning

from cobra.book import claim, glue, load_result, setup, subsample
from cobra.data import load_split
from cobra.datasets import load_dataset
from cobra.embeddings import FUSIONS, PrefixNEmbedding, build_item_embedding, tuple_hash
from cobra.exercises import check
from cobra.inputs import semantic_ids, sid_config_of
from cobra.presets import get_preset
from cobra.runs import load_run
from cobra.stats import compare
from cobra.text import display_title
from cobra.train import fit

# tqdm.auto, imported by the training loop, warns inside a notebook that
# ipywidgets is missing; no progress bars are drawn here (progress=False), so the
# warning says nothing.
warnings.filterwarnings("ignore", message="IProgress not found", category=TqdmWarning)
profile = setup()
preset = get_preset(f"hstu-sid-{profile.name}")
print(f"profile {profile.name}: {preset.dataset}, encoder {preset.encoder}, "
      f"L = {preset.sid_levels} levels x K = {preset.sid_codes} codes")

# %% [markdown]
# ## The codes
#
# We use exactly the semantic IDs the `hstu-sid-cpu` preset trains with:
# balanced residual k-means ({doc}`chapter 03 <03_semantic_ids>`) on the
# MiniLM vectors of {doc}`chapter 02 <02_item_embeddings>`, $L = 3$ levels of
# $K = 32$ codes, plus TIGER's uniqueness code $u$ as a fourth column.
# `cobra.inputs.semantic_ids` fits them once and caches them.

# %%
ml = load_dataset(preset.dataset)
titles = [display_title(t, y)
          for t, y in zip(ml.items["title"], ml.items["year"], strict=True)]
# (N, L + 1) int64, row i - 1 = item i
codes = semantic_ids(preset.dataset, preset.encoder, sid_config_of(preset))
N, depth = codes.shape
print(f"codes {codes.shape}: {N} films, {depth} columns (3 levels + uniqueness)")
glue("n_films", N)
films = [50, 172, 181, 228, 176, 271, 174]
pd.DataFrame(codes[np.array(films) - 1], index=[titles[i - 1] for i in films],
             columns=["c1", "c2", "c3", "u"])

# %% [markdown]
# ## The code tree and its shared rows
#
# Read the codes left to right and they form a tree: level 1 splits the
# catalogue into 32 groups, each level below splits a group further, and the
# uniqueness code separates films whose three codes coincide. PrefixN gives
# every **node** of that tree, that is every prefix $(c_1)$, $(c_1, c_2)$,
# $(c_1, c_2, c_3)$, $(c_1, c_2, c_3, u)$, its own row of a table
# $\mathbf{E}$, and a film's PrefixN vector $\mathbf{s}$ is the sum of the
# rows on its path. The $L$ levels and the uniqueness code make $L + 1$
# prefixes; writing $c_{L+1}$ for the uniqueness code $u$,
#
# $$
# \mathbf{s} = \sum_{l=1}^{L+1} \mathbf{E}\big[\operatorname{hash}(l, c_1, \dots, c_l)\big].
# $$ (eq-prefixn)
#
# How much sharing does that give? The number of distinct prefixes per
# level, and how many films sit under one prefix:

# %%
rows = []
for length in range(1, depth + 1):
    _, sizes = np.unique(codes[:, :length], axis=0, return_counts=True)
    rows.append({"prefix length": length, "distinct prefixes": len(sizes),
                 "films per prefix (mean)": round(float(sizes.mean()), 2),
                 "largest": int(sizes.max()),
                 "films alone in their prefix": int((sizes == 1).sum())})
    # for a film, the mean number of *other* films under its prefix: sum(size^2) / N - 1
    if length <= 2:
        glue(f"others_l{length}", float((sizes**2).sum() / N - 1))
glue("films_per_l1", N / rows[0]["distinct prefixes"])
glue("alone_l3", rows[2]["films alone in their prefix"])
pd.DataFrame(rows).set_index("prefix length")

# %% [markdown]
# On average a film shares its level-1 row with {glue:text}`others_l1:.0f`
# others and its level-2 row with {glue:text}`others_l2:.1f`; the level-3 row is
# almost private (to {glue:text}`alone_l3:,d` of the {glue:text}`n_films:,d`
# films), and the last one (with the uniqueness code) is fully private. So the
# four rows run from "what kind of film" to "which film".
#
# Here is one corner of the tree: the level-1 group of *Star Wars*. Each box is
# a prefix, with the number of catalogue films under it and the row it hashes
# to (the next section explains the hash). The {glue:text}`n_films_sw2:d` films
# under {glue:text}`sw_prefix2` all add the same two rows; *Return of the Jedi*
# and *Star Trek II* even share {glue:text}`jedi_khan_shared:d` and differ only
# in the uniqueness code.

# %%
emb = PrefixNEmbedding(codes, dim=64, table_size=preset.model.sid_table_size)
# (N + 1, 4): hash row of each prefix of each item (row 0 = padding)
film_rows = emb.rows
keys = {tuple(codes[i - 1, :length]) for i in films for length in range(1, depth + 1)}
count = {k: int(np.all(codes[:, :len(k)] == np.array(k), axis=1).sum()) for k in keys}
row_of = {tuple(codes[i - 1, :length]): int(film_rows[i, length - 1]) for i in films
          for length in range(1, depth + 1)}
sw_prefix2 = tuple(int(c) for c in codes[films[0] - 1, :2])  # Star Wars' level-2 prefix
glue("sw_prefix2", str(sw_prefix2))
glue("n_films_sw2", count[sw_prefix2])
# leading codes in common
glue("jedi_khan_shared", int(np.cumprod(codes[181 - 1] == codes[228 - 1]).sum()))

# leaves (one per film) get y = 0, 1, 2, ...; a prefix sits at the mean y of its films
y_of = {k: float(np.mean([j for j, i in enumerate(films)
                           if tuple(codes[i - 1, :len(k)]) == k]))
        for k in keys}

fig, ax = plt.subplots(figsize=(10, 4.6))
for k, y in y_of.items():
    x = len(k) - 1
    if len(k) > 1:
        ax.plot([x - 1 + 0.36, x - 0.36], [y_of[k[:-1]], y],
                color="0.6", lw=1, zorder=1)
    shared = count[k] > 1
    ax.text(x, y,
            f"({', '.join(map(str, k))})\n"
            f"{count[k]} film{'s' if count[k] > 1 else ''} · row {row_of[k]}",
            ha="center", va="center", fontsize=7.5, zorder=2,
            bbox={"boxstyle": "round,pad=0.3", "fc": "C1" if shared else "white",
                  "alpha": 0.35 if shared else 1, "ec": "C1" if shared else "0.5"})
for j, i in enumerate(films):
    ax.text(depth - 1 + 0.42, j, titles[i - 1], va="center", fontsize=9)
ax.set_xlim(-0.5, depth + 0.9)
ax.set_ylim(len(films) - 0.4, -0.6)
ax.set_xticks(range(depth),
              [f"prefix length {length}" for length in range(1, depth + 1)])
ax.set_yticks([])
ax.grid(False)
for side in ("left", "bottom"):
    ax.spines[side].set_visible(False)
ax.set_title("A corner of the code tree: "
             "shaded prefixes are rows shared by several films")
plt.show()

# %% [markdown]
# ## Hashing prefixes into a table
#
# There are many more possible prefixes than we want rows ($32^3$ at level 3
# alone, and a real catalogue has millions of items), so PrefixN does not give
# each prefix a reserved slot: it hashes the prefix, together with its length,
# into a table of `table_size` $= S$ rows. `tuple_hash` is a polynomial rolling
# hash modulo the Mersenne prime $\pi = 2^{31} - 1$ (in this chapter $\pi$ names
# that prime, not the circle constant). It reads the key
# $(\kappa_1, \kappa_2, \dots) = (l, c_1, \dots, c_l)$ one element at a time,
# updating a running value $\eta$:
#
# $$
# \eta_0 = 0,\qquad \eta_{j} = (\eta_{j-1} \cdot 1\,000\,003 + \kappa_j + 1) \bmod \pi,\qquad
# \text{row} = (\eta \bmod S) + 1,
# $$
#
# with $\eta$ the value after the key's last element. Row 0 stays the padding
# row. The tag $l$ keeps the prefix $(5)$ apart from a level-2 prefix that
# happens to start with 5. By hand, for *Star Wars*, in plain Python integers:

# %%
def row_by_hand(key, table_size):
    h = 0
    for x in key:
        h = (h * 1_000_003 + x + 1) % (2**31 - 1)
    return h % table_size + 1


S = preset.model.sid_table_size
star_wars = 50
by_hand = [row_by_hand((length, *codes[star_wars - 1, :length].tolist()), S)
           for length in range(1, depth + 1)]
package = [int(tuple_hash([length, *torch.as_tensor(codes[star_wars - 1, :length])], S))
           for length in range(1, depth + 1)]
assert by_hand == package == film_rows[star_wars].tolist()
print(f"table_size S = {S}; Star Wars' rows {by_hand}:\n"
      "tuple_hash and PrefixNEmbedding.rows agree")

# %% [markdown]
# A hash can send two different prefixes to the same row: a **collision**.
# Then two unrelated nodes of the tree share an embedding, which is noise,
# not the semantic sharing we want. `PrefixNEmbedding.collisions()` counts,
# per prefix length, the keys that share their row with a different key (of
# any length). With $n_\text{keys}$ keys thrown at random into $S$ rows, a
# given key shares its row with probability
# $1 - (1 - 1/S)^{n_\text{keys}-1}$; let us compare that with the real counts
# for a few table sizes.

# %%
num_keys = sum(len(np.unique(codes[:, :length], axis=0))
               for length in range(1, depth + 1))
sizes = [2**b for b in range(10, 19)]
measured, expected = [], []
for size in sizes:
    stats = PrefixNEmbedding(codes, dim=1, table_size=size).collisions()
    measured.append(sum(s["collided_keys"] for s in stats) / num_keys)
    expected.append(1 - (1 - 1 / size) ** (num_keys - 1))
per_length = pd.DataFrame(emb.collisions(),
                          index=pd.Index(range(1, depth + 1), name="prefix length"))
per_length["collided %"] = (100 * per_length["collided_keys"]
                            / per_length["keys"]).round(1)
print(f"{num_keys} distinct prefixes in all; the preset's table has S = {S} rows:")
glue("collided_preset", measured[sizes.index(S)])
glue("keys_ratio_preset", S / num_keys)
for b in (10, 17, 18):
    glue(f"collided_2e{b}", measured[sizes.index(2**b)])
glue("keys_ratio_2e18", 2**18 / num_keys)
glue("collided_level1", per_length.loc[1, "collided_keys"] / per_length.loc[1, "keys"])
per_length

# %%
fig, ax = plt.subplots()
ax.plot(sizes, 100 * np.array(measured), "o-", label="measured (.collisions())")
ax.plot(sizes, 100 * np.array(expected), "--", color="C3",
        label=r"random hashing, $1-(1-1/S)^{n_\mathrm{keys}-1}$")
ax.axvline(S, color="0.5", lw=0.8)
ax.text(S * 1.08, 80, preset.preset, fontsize=8, color="0.4")
ax.set_xscale("log", base=2)
ax.set(xlabel="table size S (rows, log scale)", ylabel="prefixes sharing their row (%)",
       title=f"Hash collisions of the {num_keys} prefixes")
ax.legend()
plt.show()

# %% [markdown]
# In total the hash behaves like a random one: {glue:text}`collided_preset:.0%`
# of the prefixes collide at the preset's $S = 2^{14}$
# ({glue:text}`keys_ratio_preset:.0f` times the number of keys), and it takes
# $S = 2^{18}$ ({glue:text}`keys_ratio_2e18:.0f` times the number of keys) to
# push collisions under 2%: {glue:text}`collided_2e17:.1%` of the prefixes still
# collide at $2^{17}$, {glue:text}`collided_2e18:.1%` at $2^{18}$. On
# MovieLens-100K a big table is cheap, but in a catalogue of millions of items
# it is not, which is why PrefixN is almost always *fused* with another signal
# that can tell colliding items apart.
#
# The table above has one surprise: {glue:text}`collided_level1:.0%` of the
# *level-1* prefixes collide, far more than chance. Level-1 prefixes never
# collide with each other (their keys $(1, c_1)$ differ only in the last
# element, so they hash to 32 consecutive rows), so something else must sit in
# those rows:

# %%
level1_rows = set(film_rows[1:, 0].tolist())
intruders = sorted({tuple(codes[i, :length].tolist())
                    for length in range(2, depth + 1) for i in range(N)
                    if int(film_rows[i + 1, length - 1]) in level1_rows})
# level-2 intruders by first code
runs = Counter(key[0] for key in intruders if len(key) == 2)
# (-1, 0): none, on other data
intruder_c1, n_run = runs.most_common(1)[0] if runs else (-1, 0)
glue("n_intruders", len(intruders))
glue("n_intruders_run", n_run)
glue("intruder_c1", intruder_c1)
print(f"{len(intruders)} longer prefixes share a row with a level-1 prefix:")
print(textwrap.fill(", ".join(map(str, intruders)), 88))

# %% [markdown]
# {glue:text}`n_intruders_run:d` of the {glue:text}`n_intruders:d` are level-2
# prefixes with the same first code, $c_1 =$ {glue:text}`intruder_c1:d`. The hash
# is linear in its last element, so the prefixes $(c_1, 0), (c_1, 1), \dots$
# also occupy consecutive rows, and for this $c_1$ that run happens to overlap
# the run of level-1 rows. Collisions come in runs: the *number* matches random
# hashing, but here one run hit the 32 most shared rows of the table, so films
# under these prefixes add a row that about {glue:text}`films_per_l1:.0f` films
# of another group also use. A non-linear mixing step at the
# end of the hash (exercise 1) would scatter the runs.
#
# ## An item's vector is the sum of its rows
#
# Now the embedding itself. `PrefixNEmbedding` holds the table $\mathbf{E}$,
# `(S + 1, D)`, and, for every item, the rows of its prefixes. We rebuild
# *Star Wars'* vector {eq}`eq-prefixn` from the table with our own hash and
# compare:

# %%
table = emb.table.weight.detach()  # (S + 1, D); row 0 is the zero padding row
by_hand_vector = sum(table[r] for r in by_hand)  # (D,)
from_package = emb(torch.tensor([star_wars]))[0].detach()  # (D,)
assert torch.allclose(by_hand_vector, from_package, atol=1e-7)
assert emb(torch.tensor([0])).abs().sum() == 0  # padding maps to the zero vector
print(f"sum of the {depth} prefix rows == PrefixNEmbedding(item {star_wars}) (to 1e-7)")

# %% [markdown]
# Sharing rows has a consequence before any training: the rows are drawn
# independently, so two items whose first $d$ codes agree share $d$ of their
# $L + 1 = 4$ rows and start with vectors whose cosine similarity is about
# $d/4$. The code tree is built into
# the embedding from the first step, whereas an ID table starts every pair at
# cosine $\approx 0$:

# %%
# all films here; 5,000 random ones on larger catalogues (N x N memory)
rows = subsample(N)
vectors = F.normalize(emb.all_items()[1:].detach(), dim=1)[rows]  # (S, D), S = N here
cos = vectors @ vectors.T  # (S, S)
shared = np.zeros((len(rows), len(rows)), dtype=np.int64)
prefix_equal = np.ones((len(rows), len(rows)), dtype=bool)
for length in range(depth):
    prefix_equal &= codes[rows, length][:, None] == codes[rows, length][None, :]
    shared += prefix_equal
off_diagonal = ~np.eye(len(rows), dtype=bool)
init_table = pd.DataFrame([
    {"shared prefix rows": s,
     "pairs": int(((shared == s) & off_diagonal).sum() // 2),
     "mean cosine at init": round(
         float(cos[torch.from_numpy((shared == s) & off_diagonal)].mean()), 2)}
    for s in range(depth)]).set_index("shared prefix rows")
init_table

# %% [markdown]
# ## Fusing PrefixN with the ID table
#
# PrefixN alone cannot be better than its codes: two films with the same
# first three codes differ only by their last, private row, and a hash
# collision makes even that shared. The source article found it best to keep
# the classic item-ID table and *fuse* the two vectors {cite}`sid2vid2026blog`.
# With $\mathbf{a}$ the ID vector and $\mathbf{s}$ the PrefixN vector
# {eq}`eq-prefixn` of an item (both in $\mathbb{R}^D$), the package offers
# (registry `FUSIONS`):
#
# | fusion | output | extra parameters |
# |---|---|---|
# | `sum` | $\mathbf{a} + \mathbf{s}$ | none |
# | `fc` | $W[\mathbf{a}; \mathbf{s}] + b$ | $2D^2 + D$ |
# | `mlp` | $W_2\,\mathrm{GELU}(W_1[\mathbf{a}; \mathbf{s}] + b_1) + b_2$ | $6D^2 + 3D$ |
# | `scalar_gate` | $g\mathbf{a} + (1-g)\mathbf{s}$, $g = \sigma(w^\top[\mathbf{a}; \mathbf{s}] + b) \in \mathbb{R}$ | $2D + 1$ |
# | `vector_gate` | $\mathbf{g}\odot\mathbf{a} + (1-\mathbf{g})\odot\mathbf{s}$, $\mathbf{g} = \sigma(W[\mathbf{a}; \mathbf{s}] + b) \in \mathbb{R}^D$ | $2D^2 + D$ |
# | `scalar_weight` | $\mathbf{a} + w\,\mathbf{s}$, one learned $w$ starting at 1 | 1 |
#
# $[\mathbf{a}; \mathbf{s}]$ is the concatenation. The gates decide per item
# (and per dimension for `vector_gate`) how much to trust each source;
# `scalar_weight` is `sum` with one knob, so after training it tells us how
# much weight the model gave the semantic part. `build_item_embedding`
# assembles any of them; we check the parameter counts and, for `sum`, that
# the fused vector is exactly the ID row plus the PrefixN vector:

# %%
D = preset.model.dim
fused = {name: build_item_embedding("prefixN", N, D, codes, name, table_size=S)
         for name in FUSIONS}
params = pd.DataFrame({"fusion parameters": {
    name: sum(p.numel() for p in m.fusion.parameters()) for name, m in fused.items()}})
params["total parameters"] = [sum(p.numel() for p in m.parameters())
                              for m in fused.values()]
m = fused["sum"]
ids = torch.tensor([[star_wars, 172, 0]])  # (1, 3), one padding position
by_hand_fused = m.id_table.table.weight[ids] + m.sid_table(ids)  # (1, 3, D)
by_hand_fused[ids == 0] = 0.0
assert torch.equal(m(ids), by_hand_fused)
print("sum fusion == ID row + PrefixN vector (and zero at padding)")
params

# %% [markdown]
# ## The fusions compared on MovieLens-100K
#
# We train the same HSTU backbone ({doc}`chapter 05 <05_hstu>`) with eight
# item embeddings: the plain ID table (`hstu-cpu`), PrefixN alone, and
# PrefixN fused with IDs by each of the six methods (`hstu-sid-cpu` with
# `model.fusion` overridden). Everything else, seed included, is the same.
#
# **This is a short-budget comparison.** To keep the chapter to a few
# minutes, each model trains for only 3 epochs, one seed, while the presets
# allow 100 with early stopping. After 3 epochs the models are still far from
# converged, so the chart below measures *how fast* each embedding learns as
# much as how good it ends up; differences of a few thousandths are within the
# seed noise. The full comparison of IDs against the preset's `sum` fusion is
# part of the benchmark of {doc}`chapter 11 <11_experiments>` (five seeds,
# every model under one recipe):
#
# ```
# python -m cobra bench quality --models hstu-cpu,hstu-sid-cpu --seeds 5 --jobs 2
# ```
#
# and another fusion is one more option away (`--set model.fusion=vector_gate`).
# Runs go to a temporary directory and only the
# numbers are kept; validation NDCG@10 picks the best epoch, test is reported
# for that epoch.

# %%
# nbval-rtol: 0.01 -- float32 training: other CPUs round differently (~0.1%)
EPOCHS = 3
glue("epochs_short", EPOCHS)
# hstu-cpu, hstu-sid-cpu on the cpu profile
ids, sids = f"hstu-{profile.name}", f"hstu-sid-{profile.name}"
variants = {"ID only": (ids, {}), "PrefixN only": (sids, {"model.fusion": None})}
variants |= {f"ID + PrefixN, {name}": (sids, {"model.fusion": name})
             for name in FUSIONS}
split = load_split(preset.dataset)
results, semantic_weight = [], {}
with tempfile.TemporaryDirectory() as tmp:
    for label, (name, overrides) in variants.items():
        # one thread: as fast as two for this small model,
        # and much faster on a busy machine
        config = get_preset(name, {"train.epochs": EPOCHS, "train.num_threads": 1,
                                   **overrides})
        run_dir = Path(tmp) / f"run{len(results)}"
        r = fit(config, run_dir, progress=False, split=split,
                codes=codes if config.uses_sids else None)
        results.append({"embedding": label, "valid ndcg@10": r["valid_ndcg@10"],
                        "test hr@10": r["hr@10"], "test ndcg@10": r["ndcg@10"],
                        "best epoch": r["best_epoch"]})
        fusion = config.model.fusion
        if fusion in ("scalar_weight", "scalar_gate", "vector_gate"):
            model, _, _ = load_run(run_dir)
            item_emb = model.item_embedding
            with torch.no_grad():
                if fusion == "scalar_weight":
                    semantic_weight[fusion] = float(item_emb.fusion.weight)
                else:
                    # mean of (1 - g), the share of the PrefixN vector, over all
                    # items (and dims)
                    a = item_emb.id_table.all_items()[1:]
                    s = item_emb.sid_table.all_items()[1:]
                    g = torch.sigmoid(item_emb.fusion.gate(torch.cat([a, s], dim=-1)))
                    semantic_weight[fusion] = float((1 - g).mean())
table_05 = pd.DataFrame(results).set_index("embedding")
valid = table_05["valid ndcg@10"]
# relative lead over the ID table, per variant with PrefixN
gain = valid.drop("ID only") / valid["ID only"] - 1
glue("gain_min", gain.min())
glue("gain_max", gain.max())
glue("n_gain_third", int((gain >= 1 / 3).sum()))
glue("n_with_prefixn", len(gain))
glue("test_ndcg_id", table_05.loc["ID only", "test ndcg@10"])
glue("test_ndcg_mlp", table_05.loc["ID + PrefixN, mlp", "test ndcg@10"])
# what the text below reads off the table
claim((gain > 0).all(), "every variant with PrefixN leads IDs on validation")
claim(gain.idxmin() == "ID + PrefixN, mlp", "mlp is the weakest fusion")
test_ndcg = table_05["test ndcg@10"]
claim((test_ndcg.drop("ID only") > test_ndcg["ID only"]).all(), "the test split agrees")
table_05.round(4)

# %%
fig, ax = plt.subplots(figsize=(8, 3.8))
yy = np.arange(len(table_05))
ax.barh(yy - 0.2, table_05["valid ndcg@10"], height=0.4, label="validation", color="C0")
ax.barh(yy + 0.2, table_05["test ndcg@10"], height=0.4, label="test", color="C1")
ax.set_yticks(yy, table_05.index)
ax.invert_yaxis()
ax.set(xlabel="NDCG@10", title=f"HSTU with eight item embeddings, {EPOCHS} epochs "
                               "(short budget, one seed)")
ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
plt.show()

# %% [markdown]
# What the gates and the weight learned (for the gates: the average share of
# the PrefixN vector, $1 - g$, over all items; for `scalar_weight`: $w$, which
# started at 1):

# %%
# nbval-rtol: 0.01 -- float32 training: other CPUs round differently (~0.1%)
for name, value in semantic_weight.items():
    print(f"{name:>13}: {value:.4f}")
for name, value in semantic_weight.items():
    glue(f"weight_{name}", value)

# the full-budget benchmark discussed below, run once and committed (not re-run here)
full = load_result("bench_quality")["models"]
for key, name in [("ids", "hstu-cpu"), ("prefixn", "hstu-sid-cpu")]:
    for metric in ("ndcg@10", "hr@10"):
        glue(f"full_{key}_{metric[:-3]}", full[name][f"{metric}_mean"])
        glue(f"full_{key}_{metric[:-3]}_std", full[name][f"{metric}_std"])
glue("full_minutes",
     (full["hstu-cpu"]["seconds"] + full["hstu-sid-cpu"]["seconds"]) / 60)
full_lead = glue("full_lead", full["hstu-sid-cpu"]["ndcg@10_mean"]
                 / full["hstu-cpu"]["ndcg@10_mean"] - 1)
pairs_of_runs = zip(full["hstu-sid-cpu"]["runs"], full["hstu-cpu"]["runs"], strict=True)
seeds_ahead = glue("full_seeds_ahead",
                   sum(a["ndcg@10"] > b["ndcg@10"] for a, b in pairs_of_runs))
# user by user (each user's NDCG@10 averaged over the seeds), as the experiments do
pair = compare(full["hstu-sid-cpu"]["per_user_ndcg@10"],
               full["hstu-cpu"]["per_user_ndcg@10"])
for key in ("diff", "ci_low", "ci_high", "p_wilcoxon"):
    glue(f"full_pair_{key}", pair[key])
assert pair["p_wilcoxon"] > 0.05, "the prose below calls the difference within chance"
print(f"PrefixN - IDs, test NDCG@10 per user: {pair['diff']:+.4f} "
      f"[{pair['ci_low']:+.4f}, {pair['ci_high']:+.4f}],\n"
      f"Wilcoxon p = {pair['p_wilcoxon']:.2f}; "
      f"PrefixN ahead on {seeds_ahead} of {len(full['hstu-cpu']['runs'])} seeds")

# %% [markdown]
# How to read this ({glue:text}`epochs_short:d` epochs, one seed):
#
# - After {glue:text}`epochs_short:d` epochs every embedding that contains PrefixN is ahead of the ID
#   table on validation NDCG@10, by {glue:text}`gain_min:.0%` to
#   {glue:text}`gain_max:.0%` ({glue:text}`n_gain_third:d` of the
#   {glue:text}`n_with_prefixn:d` by a third or more). A shared row gets gradient
#   from every film under it, so it becomes useful after fewer passes over the
#   data; an ID row learns only from its own film. The test split agrees
#   (test NDCG@10 {glue:text}`test_ndcg_mlp:.4f` for `mlp`, the weakest fusion,
#   against {glue:text}`test_ndcg_id:.4f` for IDs).
# - PrefixN *alone* is nearly as good as the best fusions here. That is less
#   surprising than it looks: thanks to the uniqueness code its fourth row is
#   private to each film (up to hash collisions), so PrefixN already is an
#   ID-like row plus three shared ones.
# - The fusion parameters barely moved in so few epochs: both gates still give
#   the PrefixN vector about half the weight ({glue:text}`weight_scalar_gate:.2f`
#   and {glue:text}`weight_vector_gate:.2f`), where they started, and $w$ went
#   from 1 to {glue:text}`weight_scalar_weight:.2f`. The fusions that add
#   layers have more to learn from the same data, and `mlp`, the largest, is
#   the slowest to get going.
# - Does the head start survive a full training run? The benchmark of
#   {doc}`chapter 11 <11_experiments>` trained both models to convergence
#   (up to 100 epochs with early stopping, five seeds, the learning rate and
#   dropout each chose on validation; about {glue:text}`full_minutes:.0f`
#   minutes of training on two cores, so not re-run here: the results are
#   committed in `book/results/bench_quality.json`). PrefixN keeps a lead on
#   average, test NDCG@10 {glue:text}`full_prefixn_ndcg:.4f` ±
#   {glue:text}`full_prefixn_ndcg_std:.4f` against
#   {glue:text}`full_ids_ndcg:.4f` ± {glue:text}`full_ids_ndcg_std:.4f` with
#   IDs alone (HR@10 {glue:text}`full_prefixn_hr:.4f` ±
#   {glue:text}`full_prefixn_hr_std:.4f` against {glue:text}`full_ids_hr:.4f`
#   ± {glue:text}`full_ids_hr_std:.4f`), ahead on
#   {glue:text}`full_seeds_ahead:d` of the five seeds. But user by user the
#   difference, {glue:text}`full_pair_diff:.4f` with a 95% interval from
#   {glue:text}`full_pair_ci_low:.4f` to {glue:text}`full_pair_ci_high:.4f`
#   (Wilcoxon p = {glue:text}`full_pair_p_wilcoxon:.2f`), is within chance:
#   at convergence the shared rows no longer buy a lead we can measure on
#   MovieLens-100K. On MovieLens-20M the source article found that
#   collaborative signal dominates and coarse SID sharing can add noise
#   {cite}`sid2vid2026blog`. The other fusions were not run at the full budget;
#   exercise 5 does that.
#
# ## Summary
#
# - Semantic IDs form a tree; PrefixN gives every node (prefix) an embedding
#   row and sums the rows on an item's path, so similar films share rows and
#   start with similar vectors.
# - Prefixes are hashed with their length into `table_size` rows by
#   `tuple_hash`; collisions follow the random-hashing law,
#   {glue:text}`collided_preset:.0%` of prefixes at the preset's $2^{14}$ rows,
#   and `.collisions()` measures them.
# - The PrefixN vector is usually fused with an item-ID vector: `sum`, `fc`,
#   `mlp`, `scalar_gate`, `vector_gate` or `scalar_weight`, all in `FUSIONS`.
# - With a short training budget ({glue:text}`epochs_short:d` epochs) the
#   variants with PrefixN lead IDs alone on validation NDCG@10 by
#   {glue:text}`gain_min:.0%` to {glue:text}`gain_max:.0%`; at the full
#   budget (five seeds) the preset's `sum` fusion is
#   {glue:text}`full_lead:.0%` ahead on mean test NDCG@10, a difference the
#   paired test does not separate from chance
#   (p = {glue:text}`full_pair_p_wilcoxon:.2f`).
#
# ## Exercises
#
# Each exercise says how long it takes on the `cpu` profile. Those with one
# right answer end with a check: `check("06.1", your_answer)` prints whether
# it is right, with a hint if not. Solutions are folded below each exercise
# (click to open); try first. Exercises that train models say how long the
# training takes; their solutions read the committed results, or do a cheap
# part of the work, so that the chapter stays fast.
#
# ```{exercise}
# :label: ex-06-1
#
# Write a variant of `row_by_hand` that scrambles $\eta$ before the modulo
# with a non-linear step, MurmurHash3's 32-bit finaliser (`h ^= h >> 16; h =
# h * 0x85EBCA6B % 2**32; h ^= h >> 13; h = h * 0xC2B2AE35 % 2**32; h ^= h >>
# 16`). A multiplication modulo $\pi$ alone would not do: it is linear too.
# Hash every key $(l, c_1, \dots, c_l)$ of the catalogue both ways, at the
# preset's $S$, and count the keys that share their row with a different key
# (as `.collisions()` counts them). *About a second.* Check: `check("06.1",
# (level1, total))`, the colliding level-1 keys and all colliding keys with
# the finaliser. Then train `hstu-sid-cpu` with `model.sid_table_size`
# $= 2^{18}$ and $2^{10}$ (*about 4 minutes per run*): how much does
# validation NDCG@10 move?
# ```

# %% [markdown] tags=["solution"]
# ````{solution-start} ex-06-1
# :class: dropdown
# ````

# %% tags=["solution"]
def murmur_row(key, table_size):
    """row_by_hand with MurmurHash3's 32-bit finaliser before the modulo."""
    h = 0
    for x in key:
        h = (h * 1_000_003 + x + 1) % (2**31 - 1)
    h ^= h >> 16
    h = h * 0x85EBCA6B % 2**32
    h ^= h >> 13
    h = h * 0xC2B2AE35 % 2**32
    h ^= h >> 16
    return h % table_size + 1


def colliding(hash_row, table_size):
    """The keys (l, c_1, ..., c_l) that share their row with a different key."""
    row = {key: hash_row(key, table_size) for key in all_keys}
    keys_in_row = Counter(row.values())
    return [key for key, r in row.items() if keys_in_row[r] > 1]


all_keys = {(length, *codes[i, :length].tolist())
            for i in range(N) for length in range(1, depth + 1)}
linear, scrambled = colliding(row_by_hand, S), colliding(murmur_row, S)
assert len(linear) == sum(s["collided_keys"] for s in emb.collisions())
for name, keys in [("tuple_hash", linear), ("with the finaliser", scrambled)]:
    per_length = Counter(key[0] for key in keys)
    print(f"{name:>18}: {len(keys)} colliding keys, by prefix length "
          f"{[per_length[length] for length in range(1, depth + 1)]}")
level1, total = Counter(key[0] for key in scrambled)[1], len(scrambled)
check("06.1", (level1, total))
claim(level1 < Counter(key[0] for key in linear)[1], "fewer level-1 keys collide")
claim(abs(total - len(linear)) < 0.1 * len(linear), "the total stays about the same")
print(f"at S = 2^18 {measured[sizes.index(2**18)]:.1%} of the keys collide, "
      f"at 2^10 {measured[sizes.index(2**10)]:.0%}")
# python -m cobra train --preset hstu-sid-cpu --set model.sid_table_size=262144
# python -m cobra train --preset hstu-sid-cpu --set model.sid_table_size=1024

# %% [markdown] tags=["solution"]
# The finaliser does not make collisions rarer: the total stays about the
# same, as random hashing predicts for the same number of keys and rows. It
# changes *which* keys collide: the level-1 rows no longer sit in a run that
# a run of level-2 rows can overlap, so their collisions fall to the random
# share, scattered over unrelated keys. For the training runs, expect
# $2^{18}$ rows to change little (the preset's collisions are already noise
# that the fused ID table can tell apart), and $2^{10}$, where most prefixes
# collide, to lose part of PrefixN's lead.
#
# ````{solution-end}
# ````

# %% [markdown]
# ```{exercise}
# :label: ex-06-2
#
# Drop the uniqueness column, so that PrefixN has no private row per film:
# `PrefixNEmbedding(codes, dim=1, table_size=S, levels=3)` builds it, and
# `model.sid_levels=3` trains it. Which films become indistinguishable under
# "PrefixN only", that is, have exactly the same rows as another film? Group
# the rows of `.rows[1:]` with `np.unique(..., axis=0, return_inverse=True,
# return_counts=True)`. *About a second.* Check: `check("06.2",
# n_indistinguishable)`, the films that share all their rows with another
# film. What happens to the NDCG@10 of "PrefixN only"? That is one more run
# as in the chapter, `get_preset(sids, {"train.epochs": EPOCHS,
# "model.fusion": None, "model.sid_levels": 3})` (*about 10 seconds*).
# ```

# %% [markdown] tags=["solution"]
# ````{solution-start} ex-06-2
# :class: dropdown
# ````

# %% tags=["solution"]
emb_no_u = PrefixNEmbedding(codes, dim=1, table_size=S, levels=depth - 1)
_, group, films_in_group = np.unique(emb_no_u.rows[1:].numpy(), axis=0,
                                     return_inverse=True, return_counts=True)
group = group.reshape(-1)  # (N,) the group of each film
shared_all = films_in_group[group] > 1  # (N,) another film has the same rows
n_indistinguishable = int(shared_all.sum())
_, test_targets = split.targets("test")
print(f"{n_indistinguishable} films in {int((films_in_group > 1).sum())} groups share "
      f"all their rows; {shared_all[test_targets - 1].mean():.0%} of the test targets")
largest = np.flatnonzero(group == films_in_group.argmax())  # rows i - 1 of one group
print(textwrap.fill("largest group: " + "; ".join(titles[i] for i in largest), 88))
check("06.2", n_indistinguishable)
_, same_codes, n_same = np.unique(codes[:, :depth - 1], axis=0, return_inverse=True,
                                  return_counts=True)
claim(int((n_same[same_codes.reshape(-1)] > 1).sum()) == n_indistinguishable,
      "the indistinguishable films are those whose level codes coincide")

# %% [markdown] tags=["solution"]
# Without the uniqueness code, the films of a group have the same vector, so
# they get the same score for every user: a model can rank the group, never
# one film of it above another, and a test target in a group shares its
# rank with its twins. These are the films whose three codes coincide, the
# "collisions" of {doc}`chapter 04 <04_sid_diagnostics>`. Expect "PrefixN
# only" to lose a part of its NDCG@10 that grows with the share of test
# targets printed above; a fusion with the ID table would not lose it.
#
# ````{solution-end}
# ````

# %% [markdown]
# ```{exercise}
# :label: ex-06-3
#
# Replace `prefixN` by `ngram` (every contiguous 1-gram and 2-gram of the
# codes, each hashed with its length and start) and by `rqsum` (one exact
# row per level and code, no hash): `build_item_embedding(kind, N, D, codes,
# table_size=S)` builds either, and its `.rows` holds each item's rows as
# for PrefixN. How many rows does each item use, and how many films have a
# row of their own, one that no other film uses? *About a second.* Check:
# `check("06.3", (own_prefixn, own_ngram, own_rqsum))`, the films with a
# row of their own under each.
# ```

# %% [markdown] tags=["solution"]
# ````{solution-start} ex-06-3
# :class: dropdown
# ````

# %% tags=["solution"]
def films_with_own_row(item_rows: torch.Tensor) -> int:
    """Films (rows of item_rows, (N, R)) using a table row no other film uses."""
    films_of_row = Counter(r for film in item_rows.tolist() for r in set(film))
    return sum(any(films_of_row[r] == 1 for r in film) for film in item_rows.tolist())


own_row = {}
for kind in ("prefixN", "ngram", "rqsum"):
    sid_table = build_item_embedding(kind, N, D, codes, table_size=S)
    item_rows = sid_table.rows[1:]  # (N, R)
    own_row[kind] = films_with_own_row(item_rows)
    print(f"{kind:>7}: {item_rows.shape[1]} rows per film, "
          f"{len(torch.unique(item_rows)):>5} distinct rows used, "
          f"{own_row[kind]:>5} films with a row of their own")
check("06.3", (own_row["prefixN"], own_row["ngram"], own_row["rqsum"]))

# %% [markdown] tags=["solution"]
# PrefixN's last prefix contains every code, the uniqueness code included,
# so it is private to its film unless the hash makes it collide. The
# n-grams are short: the last 2-gram $(c_3, u)$ is shared by every film with
# the same last code and uniqueness code, whatever its first codes, so only
# some films keep a private row, by chance. RQ-sum has a few rows per
# *level*, a hundred or so in all, and no film owns one: it can tell films
# apart only by the combination of shared rows, so it is the most
# "semantic" and the least ID-like of the three.
#
# ````{solution-end}
# ````

# %% [markdown]
# ```{exercise}
# :label: ex-06-4
#
# Split the test users by the popularity of their target film: call the
# tail the films with fewer than 20 ratings in the training split
# (`np.bincount(split.train.items)`; the cut at 5 ratings of
# {doc}`chapter 01 <01_data>` leaves too few test users). Does PrefixN help
# the tail more than the head? The committed benchmark keeps each user's
# test NDCG@10 (`full[name]["per_user_ndcg@10"]`, in the order of
# `split.targets("test")`), so no training is needed. *About a second.*
# Check: `check("06.4", (n_tail, tail_gain, head_gain))`, the tail's users,
# and the mean per-user NDCG@10 of `hstu-sid-cpu` minus `hstu-cpu` in the
# tail and in the head.
# ```

# %% [markdown] tags=["solution"]
# ````{solution-start} ex-06-4
# :class: dropdown
# ````

# %% tags=["solution"]
committed = load_result("bench_quality")  # the per-user results are on its dataset
if committed["dataset"] == preset.dataset:
    _, test_targets = split.targets("test")
    train_ratings = np.bincount(split.train.items, minlength=split.num_items + 1)
    tail = train_ratings[test_targets] < 20  # (M,) target rated fewer than 20 times
    ndcg_sid = np.asarray(full["hstu-sid-cpu"]["per_user_ndcg@10"])  # (M,)
    ndcg_ids = np.asarray(full["hstu-cpu"]["per_user_ndcg@10"])
    n_tail = int(tail.sum())
    tail_gain = float((ndcg_sid - ndcg_ids)[tail].mean())
    head_gain = float((ndcg_sid - ndcg_ids)[~tail].mean())
    for name, part in [("tail", tail), ("head", ~tail)]:
        test = compare(ndcg_sid[part], ndcg_ids[part])
        print(f"{name}: {int(part.sum())} users, PrefixN - IDs {test['diff']:+.4f} "
              f"[{test['ci_low']:+.4f}, {test['ci_high']:+.4f}], "
              f"Wilcoxon p = {test['p_wilcoxon']:.2f}")
    check("06.4", (n_tail, tail_gain, head_gain))
    claim(tail_gain > 2 * head_gain, "PrefixN gains several times more in the tail")
else:
    print(f"the committed per-user results are for {committed['dataset']}, "
          f"not {preset.dataset}")

# %% [markdown] tags=["solution"]
# On average PrefixN helps the tail several times more than the head, where
# it does about as well as IDs: a film rated a few times has an ID row that
# learned little, and the rows it shares with its code-tree neighbours carry
# what they learned. But the tail holds only a few test users, and its
# interval is wide: the direction agrees with the idea of PrefixN, the size
# is not settled on MovieLens-100K.
#
# ````{solution-end}
# ````

# %% [markdown]
# ```{exercise}
# :label: ex-06-5
#
# Run the full comparison of two fusions: `python -m cobra bench quality
# --models hstu-sid-cpu --seeds 5 --jobs 2 --set model.fusion=vector_gate
# --out vector_gate.json` (*about 20 minutes of training on two cores*)
# against the committed `sum` runs. Is the gap between them larger than the
# standard deviation over seeds? Compare them user by user too, with
# `compare` on the two `per_user_ndcg@10` lists. *About a second* once it
# has run. An open question: the solution prints the range a `vector_gate`
# mean must leave to differ from `sum` by more than one standard deviation.
# ```

# %% [markdown] tags=["solution"]
# ````{solution-start} ex-06-5
# :class: dropdown
# ````

# %% tags=["solution"]
# python -m cobra bench quality --models hstu-sid-cpu --seeds 5 --jobs 2 \
#     --set model.fusion=vector_gate --out vector_gate.json
sum_runs = full["hstu-sid-cpu"]
low = sum_runs["ndcg@10_mean"] - sum_runs["ndcg@10_std"]
high = sum_runs["ndcg@10_mean"] + sum_runs["ndcg@10_std"]
print(f"committed sum fusion: test NDCG@10 {sum_runs['ndcg@10_mean']:.4f} ± "
      f"{sum_runs['ndcg@10_std']:.4f} over {len(sum_runs['runs'])} seeds, "
      f"{sum_runs['seconds'] / 60:.0f} min of training")
print(f"a vector_gate mean outside [{low:.4f}, {high:.4f}] differs by more than a std")
short = table_05["valid ndcg@10"]
print("short runs above, validation NDCG@10: vector_gate "
      f"{short['ID + PrefixN, vector_gate']:.4f}, sum {short['ID + PrefixN, sum']:.4f}")
claim(abs(short["ID + PrefixN, vector_gate"] - short["ID + PrefixN, sum"])
      < sum_runs["ndcg@10_std"], "the short runs put the two fusions close together")

# %% [markdown] tags=["solution"]
# The short runs put the fusions close together, and at the full budget the
# gap between IDs and PrefixN itself is within chance, so expect the two
# fusions to land within one standard deviation of each other; a paired
# test (`compare(new["models"]["hstu-sid-cpu"]["per_user_ndcg@10"],
# sum_runs["per_user_ndcg@10"])` on the loaded new result) should then give
# a large p. Five seeds of each are too few to rank fusions whose means
# differ by less than their spread over seeds.
#
# ````{solution-end}
# ````
