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
# # 4. How good are the semantic IDs?
#
# **Goal.** Measure semantic IDs before any model uses them. We compare the
# three clustering methods of {doc}`chapter 03 <03_semantic_ids>`, `kmeans`,
# `seed-heuristic` (the source article's) and `balanced`, on how well the codes reconstruct the vectors, how
# evenly they use the codebook, and how often films collide, and we see how the
# codebook size `K` trades collisions against reconstruction.
#
# **Prerequisites.** {doc}`chapter 03 <03_semantic_ids>` (residual k-means and
# its balanced variant).
#
# **Run time.** About 15 s on 2 CPU cores (`cpu` profile; measured by the nbval run, which checks it).
#
# The metrics live in `cobra.sid_metrics` (`sid_report`, `normalized_entropy`,
# `collision_rates`, `level_stats`); the benchmark that runs them at
# MovieLens-20M scale is `cobra.bench.sid`.

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from cobra.bench.sid import synthetic_embeddings
from cobra.book import compute_device, glue, setup, subsample
from cobra.exercises import check
from cobra.sid import METHODS, SIDConfig, fit_semantic_ids, size_bounds
from cobra.sid_metrics import collision_rates, normalized_entropy, sid_report
from cobra.text import embed_items

profile = setup()
L, K = profile.sid_levels, profile.sid_codes
# (N, D) float32
vectors = embed_items(profile.dataset, profile.encoder, progress=False).vectors
N, D = vectors.shape
glue("n_films", N)
print(f"profile {profile.name}: {N} films x {D} dims, L = {L}, K = {K}")

# %% [markdown]
# ## The measures
#
# For semantic IDs $(c_1, \dots, c_L)$ fitted on vectors $x$ (L2-normalised),
# `sid_report` computes, **per level** $l$:
#
# - **reconstruction**: with the partial reconstruction
#   $\hat x_l = C_1[c_1] + \dots + C_l[c_l]$ (equation
#   {eq}`eq-residual-quantisation` of {doc}`chapter 03 <03_semantic_ids>`), the
#   mean squared error $\mathrm{mean}\,(x - \hat x_l)^2$ over films and
#   dimensions, and the cosine loss $\mathrm{mean}\,(1 - \cos(x, \hat x_l))$.
#   Below we show the MSE times
#   $D_\text{text}$ (the width of the text vectors), the mean squared length of
#   the residual $\lVert x - \hat x_l\rVert^2$, which is easier to read (the
#   input vectors have length 1);
# - **utilisation**: the share of the `K` codes used by at least one film;
# - **normalised entropy** $H_l / \log_2 K$, with
#   $H_l = -\sum_{c} p_c \log_2 p_c$ and $p_c$ the share of films whose code at
#   level $l$ is $c$: 1 when all codes are used equally, 0 when one code takes
#   every film (the source article's measure {cite}`sid2vid2026blog`);
# - the largest and the smallest cluster.
#
# And **per prefix depth** $d$: the **collision rate**, the share of films whose
# prefix $(c_1, \dots, c_d)$ some other film also has. At full depth it is the
# share of films that need the uniqueness code; `uniq_max`, the largest group of
# films sharing a full tuple, is how many values that code needs.
#
# The entropy is easy to picture on small examples: four codes used equally,
# one code used by half the items, one code used by everything.

# %%
for name, labels in [("uniform", [0, 1, 2, 3] * 25),
                     ("one code takes half", [0] * 50 + [1, 2, 3] * 17),
                     ("a single code", [0] * 100)]:
    print(f"{name:>20}: H / log2 K = {normalized_entropy(np.array(labels), 4):.4f}")
print("collision rates of the tuples (0,0), (0,1), (0,1), (1,2) by depth:",
      collision_rates(np.array([[0, 0], [0, 1], [0, 1], [1, 2]])))

# %% [markdown]
# ## Three methods on MovieLens-100K
#
# We fit all three methods with the `cpu` profile's `L = 3` levels of
# `K = 32` codes, and also with `K = 128` (the size the source article and the
# `4090d` profile use) and a few sizes in between for the sweep at the end of
# the chapter. Every fit takes a few seconds on the {glue:text}`n_films:,d`
# films. The seed is fixed, and the balanced methods use the default 10% size
# tolerance.

# %%
SIZES = [8, 16, 32, 64, 128]
device = compute_device(profile)  # cpu here; the 4090d profile fits on its GPU
# the registry METHODS, in the order we discuss them
ORDER = ["kmeans", "seed-heuristic", "balanced"]
assert set(ORDER) == set(METHODS)
fits, reports = {}, {}
for k in SIZES:
    for method in ORDER:
        fits[method, k] = fit_semantic_ids(
            vectors, SIDConfig(levels=L, codes=k, method=method, seed=0), device=device)
        reports[method, k] = sid_report(vectors, fits[method, k])
print(f"{len(reports)} fits: {len(ORDER)} methods x K in {SIZES}")

# %%
def summary_row(r: dict) -> dict:
    row = {"method": r["method"], "K": r["codes"]}
    for lv, stats in enumerate(r["per_level"], start=1):
        row[f"entropy L{lv}"] = stats["entropy"]
    row["util L3"] = r["per_level"][-1]["utilization"]
    row["sizes L3"] = (f"{r['per_level'][-1]['min_size']}.."
                       f"{r['per_level'][-1]['max_size']}")
    # MSE over dims x D = mean squared residual norm
    row["|x-x̂|² L3"] = r["per_level"][-1]["mse"] * D
    row["cos loss L3"] = r["per_level"][-1]["cosine"]
    for d, rate in enumerate(r["collision_rate"], start=1):
        row[f"collide d{d}"] = rate
    row["uniq_max"] = r["uniq_max"]
    return row


table = pd.DataFrame([summary_row(reports[m, k]) for k in (K, 128) for m in ORDER])
km_l3, km_l3_128 = (reports["kmeans", K]["per_level"][-1],
                    reports["kmeans", 128]["per_level"][-1])
glue("km_l3_min_size", km_l3["min_size"])
glue("km_l3_max_size", km_l3["max_size"])
glue("km_l3_max_size_k128", km_l3_128["max_size"])
glue("km_l3_entropy_k128", km_l3_128["entropy"])
glue("balanced_entropy_min", min(lv["entropy"]
                                 for m in ("seed-heuristic", "balanced")
                                 for k in (K, 128)
                                 for lv in reports[m, k]["per_level"]))
glue("util_min", min(lv["utilization"] for m in ORDER
                     for lv in reports[m, K]["per_level"]))
glue("collide_d2_min", min(reports[m, K]["collision_rate"][1] for m in ORDER))
glue("collide_d2_max", max(reports[m, K]["collision_rate"][1] for m in ORDER))
table.set_index(["K", "method"]).round(4)

# %% [markdown]
# How to read it, at `K = 32`:
#
# - Plain **k-means** uses its codes unevenly at every level, and worse at the
#   deeper levels: its level-3 entropy is the lowest in the table, and its
#   level-3 clusters range from {glue:text}`km_l3_min_size:,d` to
#   {glue:text}`km_l3_max_size:,d` films.
# - Both balancing methods push every level's entropy to
#   {glue:text}`balanced_entropy_min:.4f` or more and keep all codes in use; all
#   their cluster sizes lie within the tolerance.
# - Balancing moves some films out of their nearest cluster, which should cost
#   reconstruction, yet on these vectors `balanced` reconstructs slightly
#   *better* after three levels than plain k-means (squared error and cosine
#   loss at level 3). Plain k-means spends its deep codes on a few outlying
#   residuals and lumps the crowd together; even codes describe the crowd
#   better.
# - With {glue:text}`n_films:,d` films and 32 codes, every level-1 prefix is
#   shared, and with only $32^2 = 1{,}024$ possible level-2 prefixes,
#   {glue:text}`collide_d2_min:.0%` to {glue:text}`collide_d2_max:.0%` of the
#   films still collide at depth 2. The full tuple is where methods differ.
#
# The source article reports the same direction on MovieLens-20M with
# `K = 128`: level-3 entropy from about 0.8 to about 0.99 and prefix collisions
# from about 10% to about 6% {cite}`sid2vid2026blog`. On our small catalogue the
# effect is larger, because {glue:text}`n_films:,d` films in 128 codes leave
# plain k-means free to make a few giant clusters and many near-empty ones. The
# same measures, level by level, as bars (utilisation is
# {glue:text}`util_min:.2f` everywhere: no method leaves a code unused on these
# vectors, so the differences are in *how evenly* codes are used, which is what
# the entropy sees):

# %%
fig, axes = plt.subplots(1, 3, figsize=(10, 3.6))
width = 0.27
levels = np.arange(1, L + 1)
panels = [("entropy", "normalised entropy H / log2 K", (0.5, 1.02)),
          ("utilization", "utilisation (used codes / K)", (0.0, 1.05)),
          ("collision_rate", "collision rate at prefix depth", (0.0, 1.05))]
for ax, (key, title, ylim) in zip(axes, panels, strict=True):
    for i, method in enumerate(ORDER):
        r = reports[method, K]
        values = (r[key] if key == "collision_rate"
                  else [lv[key] for lv in r["per_level"]])
        ax.bar(levels + (i - 1) * width, values, width=width, color=f"C{i}",
               label=method)
    ax.set(title=title, xticks=levels, ylim=ylim,
           xlabel="level" if key != "collision_rate" else "prefix depth")
fig.legend(*axes[0].get_legend_handles_labels(), loc="upper center", ncol=3,
           bbox_to_anchor=(0.5, 0.93), frameon=False)
fig.suptitle(f"Semantic IDs of MovieLens-100K, L = {L}, K = {K}")
plt.tight_layout(rect=(0, 0, 1, 0.88))
plt.show()

# %% [markdown]
# ## Rich get richer, made visible
#
# The entropy is one number per level. The histogram of cluster sizes shows
# where it comes from. For each level, how many codes hold how many films
# (the dashed line is the equal share `N/K`):

# %%
code_sizes = pd.DataFrame(
    [{"level": lv + 1, "method": m, "films per code": int(s)}
     for lv in range(L) for m in ("kmeans", "balanced")
     for s in np.bincount(fits[m, K].codes[:, lv], minlength=K)])
fig, axes = plt.subplots(1, L, figsize=(10, 3.4), sharey=True)
for lv, ax in enumerate(axes):
    sns.histplot(code_sizes[code_sizes["level"] == lv + 1], x="films per code",
                 hue="method", palette={"kmeans": "C0", "balanced": "C2"},
                 binwidth=10, element="step", ax=ax, legend=lv == 0)
    ax.axvline(N / K, color="C3", ls="--", lw=1)
    ax.set(title=f"level {lv + 1}", ylabel="codes")
plt.tight_layout()
plt.show()

# %% [markdown]
# Balanced codes pile up in one narrow bar next to `N/K`. Plain k-means spreads
# from tiny clusters to giant ones, and the tail grows with depth: at level 3
# one code is shared by {glue:text}`km_l3_max_size:,d` films. Why deeper? After
# one or two levels most residuals are small and alike, with a few large ones;
# k-means spends many centroids on the outliers and lumps the crowd of small
# residuals together. The sorted sizes on a log scale tell the same story (the
# `seed-heuristic` curves lie on top of the balanced ones):

# %%
fig, ax = plt.subplots()
for i, m in [(0, "kmeans"), (2, "balanced")]:
    for lv, ls in zip(range(L), ["-", "--", ":"], strict=True):
        sizes = np.sort(np.bincount(fits[m, K].codes[:, lv], minlength=K))[::-1]
        ax.plot(np.arange(1, K + 1), sizes, color=f"C{i}", ls=ls, lw=1.8,
                label=f"{m}, level {lv + 1}")
lo, hi = size_bounds(N, K, 0.1)
ax.axhspan(lo, hi, color="grey", alpha=0.25, label=f"tolerance band {lo}..{hi}")
ax.set_yscale("log")
ax.set(xlabel="code rank (largest first)", ylabel="films per code (log scale)",
       title=f"Sorted cluster sizes, K = {K}")
ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
plt.show()

# %% [markdown]
# ## Codebook size against collisions and reconstruction
#
# A larger `K` gives more possible tuples ($K^3$) and finer centroids, so fewer
# collisions and a better reconstruction, but a larger vocabulary for the
# generative model to predict, with fewer training examples per code. How fast
# do collisions fall?

# %%
fig, axes = plt.subplots(1, 3, figsize=(10, 3.4))
for i, m in enumerate(ORDER):
    rs = [reports[m, k] for k in SIZES]
    style = {"color": f"C{i}", "marker": "o", "label": m}
    axes[0].plot(SIZES, [r["collision_rate"][-1] for r in rs], **style)
    axes[1].plot(SIZES, [r["uniq_max"] for r in rs], **style)
    axes[2].plot(SIZES, [r["per_level"][-1]["mse"] * D for r in rs], **style)
for ax, title in zip(axes, ["full-tuple collision rate",
                            "largest colliding group (uniq_max)",
                            "mean |x - x̂|² after level 3"], strict=True):
    ax.set(xscale="log", xticks=SIZES, xticklabels=SIZES, xlabel="codes per level K",
           title=title)
    ax.minorticks_off()
axes[0].legend(fontsize=8)
plt.tight_layout()
plt.show()

# %%
full_collisions = pd.DataFrame(
    {m: [reports[m, k]["collision_rate"][-1] for k in SIZES] for m in ORDER},
    index=pd.Index(SIZES, name="K"))
glue("km_collide_k64", full_collisions.loc[64, "kmeans"])
glue("km_collide_k128", full_collisions.loc[128, "kmeans"])
glue("balanced_collide_k32", full_collisions.loc[K, "balanced"])
glue("balanced_collide_k128", full_collisions.loc[128, "balanced"])
glue("films_per_code", N / K)
full_collisions.round(4)

# %% [markdown]
# For the balanced methods the full-tuple collision rate falls steeply with `K`.
# Plain k-means stalls: {glue:text}`km_collide_k64:.0%` of films still collide
# at `K = 64` and {glue:text}`km_collide_k128:.0%` at `K = 128`, because its deep
# levels put most films into a few giant codes (its level-3 entropy at
# `K = 128` is {glue:text}`km_l3_entropy_k128:.2f`), so the extra codes buy
# nothing. This is the rich-get-richer effect in the number that matters to a
# generative recommender. Collisions never quite reach zero even for the
# balanced IDs ({glue:text}`balanced_collide_k128:.1%` of films at `K = 128`,
# with $128^3$ possible tuples for {glue:text}`n_films:,d` films): franchises
# with near-identical texts ({doc}`chapter 03 <03_semantic_ids>`) stay together
# whatever `K` is, and only a richer text would separate them. Reconstruction
# improves steadily with `K`, and the three methods stay close.
#
# The `cpu` profile's `K = 32` is a compromise for a catalogue of
# {glue:text}`n_films:,d` films: about {glue:text}`films_per_code:.0f` films per
# code at level 1, and {glue:text}`balanced_collide_k32:.0%` of the films (with
# `balanced`) needing a uniqueness code. For MovieLens-20M (about 27,000 films)
# the `4090d` profile uses `K = 128`, as the source article does.
#
# ## At MovieLens-20M scale: the benchmark
#
# The same comparison at the size that matters for the `4090d` profile is a
# command, not a chapter cell (it takes minutes, most of them in the
# `seed-heuristic` loop):
#
# ```bash
# python -m cobra bench sid --json
# ```
#
# It fits `kmeans`, `balanced`, `seed-heuristic` and scikit-learn's `KMeans`
# (as a reference) with 3 levels of 128 codes on the ML-100K vectors and on a
# synthetic catalogue of 27,000 × 1,024 vectors, and reports for each the fit
# time and everything in `sid_report`. It also checks the properties that make
# `balanced` worth its place at that scale: every level's normalised entropy at
# least $0.99$, sizes within the tolerance, reconstruction MSE within 10% of
# plain k-means, full-tuple collisions no higher than `seed-heuristic`'s, and
# its speed-up over `seed-heuristic`.
#
# The synthetic set is not uniform noise, which would make every method look
# balanced. `synthetic_embeddings` draws vectors the way text embeddings
# behave, calibrated to the MiniLM vectors of this chapter: a shared mean
# direction (so unrelated items still have a positive cosine), a power-law
# spectrum, a hierarchy of topics and clusters with heavy-tailed sizes, and
# about 1% near-copies (sequels, remakes). A version of it the size of
# MovieLens-100K, next to the MiniLM vectors:

# %%
small = synthetic_embeddings(N, vectors.shape[1], seed=0)  # (N, D) float32, unit rows
# all films here; 5,000 random ones on larger catalogues (N x N memory)
rows = subsample(N)
for name, v in [("MiniLM, MovieLens-100K", vectors), ("synthetic", small)]:
    sim = v[rows] @ v.T  # (S, N), S = N here
    cos = sim[:, rows][np.triu_indices(len(rows), k=1)]
    sim[np.arange(len(rows)), rows] = -1.0  # a film is not its own neighbour
    print(f"{name:>22}: pairwise cosine mean {cos.mean():.4f}, "
          f"5%-95% [{np.quantile(cos, 0.05):.4f}, {np.quantile(cos, 0.95):.4f}];")
    print(f"{'':>22}  nearest-neighbour cosine median {np.median(sim.max(1)):.4f}")
syn = {
    m: sid_report(small, fit_semantic_ids(
        small, SIDConfig(levels=L, codes=K, method=m, seed=0), device=device))
    for m in ("kmeans", "balanced")
}
pd.DataFrame([summary_row(r) for r in syn.values()]).set_index("method").round(4)

# %% [markdown]
# The synthetic vectors have about the same cosine statistics as MiniLM's
# (their items are a little less tightly clustered), and they show the same
# pattern, more strongly: plain k-means collapses its deeper levels into a few
# giant codes and leaves most items colliding, while balanced k-means keeps
# every level even and collisions low, again with no loss in reconstruction.
# The benchmark checks these properties at full size (reconstruction against
# plain k-means, collisions against `seed-heuristic`) rather than assuming
# them, with all four methods side by side.
#
# ## Summary
#
# - `sid_report` measures semantic IDs per level (reconstruction MSE and cosine
#   loss, utilisation, normalised entropy, cluster sizes) and per prefix depth
#   (collision rate), plus the size the uniqueness code needs.
# - Plain k-means uses its codes unevenly, more so at deeper levels: a few
#   codes take hundreds of films (rich get richer; the largest level-3 code
#   holds {glue:text}`km_l3_max_size:,d` films at `K = 32`,
#   {glue:text}`km_l3_max_size_k128:,d` at `K = 128`).
# - Balanced k-means (and the article's heuristic) bring every level's entropy
#   to {glue:text}`balanced_entropy_min:.4f` or more and lower the full-tuple
#   collision rate, at about the same reconstruction (`balanced` is even
#   slightly better than plain k-means on these vectors).
# - Larger codebooks cut collisions steeply; near-identical texts collide at
#   any size.
# - `python -m cobra bench sid --json` repeats the comparison on a
#   MovieLens-20M-sized synthetic catalogue, with timings.
#
# ## Exercises
#
# Each exercise says how long it takes on the `cpu` profile. Those with one
# right answer end with a check: `check("04.1", your_answer)` prints whether
# it is right, with a hint if not. Solutions are folded below each exercise
# (click to open); try first.
#
# ```{exercise}
# :label: ex-04-1
#
# Add a fourth level (`L = 4`) at `K = 32`, with `kmeans` and with `balanced`
# (seed 0). How much does the full-tuple collision rate drop, and does the
# level-4 entropy of plain k-means get worse still? *A few seconds.* Check:
# `check("04.1", (balanced_collisions_l4, kmeans_entropy_l4))`: the balanced
# full-tuple collision rate and the plain k-means level-4 entropy.
# ```

# %% [markdown] tags=["solution"]
# ````{solution-start} ex-04-1
# :class: dropdown
# ````

# %% tags=["solution"]
deep = {m: sid_report(vectors, fit_semantic_ids(
            vectors, SIDConfig(levels=4, codes=K, method=m, seed=0), device=device))
        for m in ("kmeans", "balanced")}
for m, r in deep.items():
    print(f"{m:>8}: full-tuple collisions {reports[m, K]['collision_rate'][-1]:.1%} at "
          f"L = 3, {r['collision_rate'][-1]:.1%} at L = 4")
    print(f"{'':>8}  entropy by level at L = 4: "
          + ", ".join(f"{lv['entropy']:.3f}" for lv in r["per_level"]))
balanced_collisions_l4 = deep["balanced"]["collision_rate"][-1]
kmeans_entropy_l4 = deep["kmeans"]["per_level"][-1]["entropy"]
check("04.1", (balanced_collisions_l4, kmeans_entropy_l4))

# %% [markdown] tags=["solution"]
# The fourth balanced level cuts the collisions to about a third; plain
# k-means' fourth level is nearly one giant code (entropy near 0), so its
# collisions hardly move: the extra level is spent on a few outliers.
#
# ````{solution-end}
# ````

# %% [markdown]
# ```{exercise}
# :label: ex-04-2
#
# Vary the balanced method's `tolerance` (`0, 0.05, 0.1, 0.3, 0.5`, a field of
# `SIDConfig`). Plot the level-3 entropy and the level-3 `|x - x̂|²` (the MSE
# times `D`) against it. Where does balancing stop paying? *About 5 seconds.*
# An open question: the solution prints the table and draws the plot.
# ```

# %% [markdown] tags=["solution"]
# ````{solution-start} ex-04-2
# :class: dropdown
# ````

# %% tags=["solution"]
TOLERANCES = [0, 0.05, 0.1, 0.3, 0.5]
by_tolerance = pd.DataFrame([
    summary_row(sid_report(vectors, fit_semantic_ids(
        vectors, SIDConfig(levels=L, codes=K, method="balanced", seed=0, tolerance=t),
        device=device)))
    for t in TOLERANCES], index=pd.Index(TOLERANCES, name="tolerance"))
fig, axes = plt.subplots(1, 2, figsize=(8, 3.2))
for ax, column in zip(axes, ["entropy L3", "|x-x̂|² L3"], strict=True):
    ax.plot(TOLERANCES, by_tolerance[column], marker="o")
    ax.set(xlabel="tolerance", title=column)
plt.tight_layout()
plt.show()
mse = by_tolerance["|x-x̂|² L3"]
# reconstruction gained from tolerance 0 to 0.5, and the worst entropy up to 0.1
glue("tol_mse_gain", 1 - mse.loc[0.5] / mse.loc[0])
glue("tol_entropy_min", by_tolerance.loc[:0.1, "entropy L3"].min())
columns = ["entropy L3", "|x-x̂|² L3", "sizes L3", "collide d3", "uniq_max"]
by_tolerance[columns].round(4)

# %% [markdown] tags=["solution"]
# The entropy falls slowly as the tolerance widens, and the reconstruction
# improves by only {glue:text}`tol_mse_gain:.1%` from tolerance `0` to `0.5`:
# on these vectors balancing costs almost nothing. The full-tuple collisions
# do not follow the tolerance in order (one fit per setting; a few films
# decide). Balancing stops paying where the entropy gain is no longer worth
# anything to the model, which these numbers alone cannot say; here, any
# tolerance up to `0.1` keeps the level-3 entropy at
# {glue:text}`tol_entropy_min:.4f` or more.
#
# ````{solution-end}
# ````

# %% [markdown]
# ```{exercise}
# :label: ex-04-3
#
# The collision rate counts films; count *tuples* instead: the share of the
# distinct full tuples (before the uniqueness code) that more than one film
# uses, for each method at `K = 32` (`fits[method, K].codes[:, :L]`;
# `np.unique(..., axis=0, return_counts=True)` counts the films of each
# distinct tuple). Which measure does the uniqueness code care about? *About
# a second.* Check: `check("04.3", shared_tuples)` for `balanced`.
# ```

# %% [markdown] tags=["solution"]
# ````{solution-start} ex-04-3
# :class: dropdown
# ````

# %% tags=["solution"]
shared = {}
for m in ORDER:
    _, films_per_tuple = np.unique(fits[m, K].codes[:, :L], axis=0, return_counts=True)
    shared[m] = float((films_per_tuple > 1).mean())
    print(f"{m:>14}: {len(films_per_tuple)} distinct tuples, {shared[m]:.1%} of them "
          f"shared; {reports[m, K]['collision_rate'][-1]:.1%} of films collide")
shared_tuples = shared["balanced"]
check("04.3", shared_tuples)

# %% [markdown] tags=["solution"]
# A shared tuple holds at least two films, so the share of tuples is smaller
# than the share of films. The uniqueness code cares about neither directly:
# its size is set by the largest group (`uniq_max`), and the films that need
# it are the colliding *films*, the collision rate the chapter uses.
#
# ````{solution-end}
# ````

# %% [markdown]
# ```{exercise}
# :label: ex-04-4
#
# Run `python -m cobra sid --dataset ml-100k --method balanced --codes 32
# --json` and check that its numbers equal this chapter's row. With `--json`
# the command's last line of output is one JSON object with the keys of
# `sid_report`. In a cell, run it with `subprocess.run([sys.executable, "-m",
# "cobra", "sid", ...], capture_output=True, text=True)` and read the last
# line with `json.loads`. *A few seconds.* Check: `check("04.4",
# collision_rate)` with the full-tuple collision rate the command reports.
# ```

# %% [markdown] tags=["solution"]
# ````{solution-start} ex-04-4
# :class: dropdown
# ````

# %% tags=["solution"]
import json
import subprocess
import sys

command = [sys.executable, "-m", "cobra", "sid", "--dataset", profile.dataset,
           "--method", "balanced", "--codes", str(K), "--json"]
run = subprocess.run(command, capture_output=True, text=True, check=True)
cli = json.loads(run.stdout.splitlines()[-1])
ours = reports["balanced", K]
same = (cli["collision_rate"] == ours["collision_rate"]
        and cli["uniq_max"] == ours["uniq_max"]
        and all(a[key] == b[key] for a, b in zip(cli["per_level"], ours["per_level"],
                                                 strict=True) for key in a))
print(f"the command's report equals the chapter's: {same}")
collision_rate = cli["collision_rate"][-1]
check("04.4", collision_rate)

# %% [markdown] tags=["solution"]
# The command and the chapter call the same `fit_semantic_ids` and
# `sid_report` with the same seed, and every decision is made in float64,
# so the numbers are equal, not just close (only `seconds` differs).
#
# ````{solution-end}
# ````

# %% [markdown]
# ```{exercise}
# :label: ex-04-5
#
# Compute the metrics on the TF-IDF vectors of
# {doc}`chapter 02 <02_item_embeddings>` (`embed_items(..., "tfidf")`), with
# `balanced` at `K = 32`. Which encoder gives fewer collisions, and why?
# *About a second.* Check: `check("04.5", tfidf_collisions)`, the TF-IDF
# full-tuple collision rate.
# ```

# %% [markdown] tags=["solution"]
# ````{solution-start} ex-04-5
# :class: dropdown
# ````

# %% tags=["solution"]
tfidf = embed_items(profile.dataset, "tfidf", progress=False).vectors  # (N, 256)
tfidf_report = sid_report(tfidf, fit_semantic_ids(
    tfidf, SIDConfig(levels=L, codes=K, method="balanced", seed=0), device=device))
pd.DataFrame([summary_row(reports["balanced", K]) | {"method": "balanced, MiniLM"},
              summary_row(tfidf_report) | {"method": "balanced, TF-IDF"}]
             ).set_index("method")[["entropy L3", "collide d2", "collide d3",
                                    "uniq_max"]]

# %% tags=["solution"]
tfidf_collisions = tfidf_report["collision_rate"][-1]
check("04.5", tfidf_collisions)

# %% [markdown] tags=["solution"]
# MiniLM gives far fewer collisions. TF-IDF keeps only 256 directions of the
# vocabulary, so rare title words fall out and many films are reduced to
# their year and genres: films with the same year and genres get (nearly)
# the same vector, and no quantiser can split equal vectors. MiniLM's vectors
# still tell such films apart by their titles.
#
# ````{solution-end}
# ````
