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
# # 3. Semantic IDs
#
# **Goal.** Turn every film's vector into a short tuple of integers, its
# *semantic ID* (SID), such that similar films get similar tuples. We build it
# step by step: one level of k-means, the residuals it leaves, residual
# quantisation over `L` levels, the balanced variant that keeps every code
# equally busy, and TIGER's uniqueness code {cite}`rajput2023tiger` that makes
# every ID name exactly one film. Then we look at the IDs real films get.
#
# **Prerequisites.** {doc}`chapter 02 <02_item_embeddings>` (the item vectors
# and their map).
#
# **Run time.** About 20 s on 2 CPU cores (`cpu` profile; measured by the nbval run, which checks it).
#
# The code lives in `cobra.sid`: `kmeans`, `balanced_kmeans`,
# `seed_heuristic_kmeans` (the registry `METHODS`), `ResidualQuantizer`,
# `add_uniqueness` and the one-call `fit_semantic_ids(vectors, SIDConfig(...))`.

# %%
import textwrap
import warnings

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from tqdm import TqdmWarning

from cobra.book import compute_device, glue, setup
from cobra.datasets import load_dataset
from cobra.exercises import check
from cobra.sid import (
    METHODS,
    SIDConfig,
    add_uniqueness,
    balanced_kmeans,
    capacitated_assign,
    fit_semantic_ids,
    kmeans_plus_plus,
    size_bounds,
)
from cobra.text import display_title, embed_items
from cobra.titles import film_rows

# umap imports tqdm.auto, which inside a notebook warns that ipywidgets is missing;
# we draw no progress bars.
warnings.filterwarnings("ignore", message="IProgress not found", category=TqdmWarning)
import umap

profile = setup()
L, K = profile.sid_levels, profile.sid_codes
print(f"profile {profile.name}: {profile.dataset}, encoder {profile.encoder}, "
      f"L = {L} levels x K = {K} codes")

# %% [markdown]
# We start from the item vectors of {doc}`chapter 02 <02_item_embeddings>`
# (read from the cache) and the same UMAP map, recomputed with the same
# settings. The quantiser works on L2-normalised vectors (`SIDConfig(normalize=True)`, the default); MiniLM's
# vectors already have unit norm, so this changes nothing here.

# %%
ml = load_dataset(profile.dataset)
titles = [display_title(t, y)
          for t, y in zip(ml.items["title"], ml.items["year"], strict=True)]
# (N,) ratings per film
popularity = np.bincount(ml.interactions["item"], minlength=ml.num_items + 1)[1:]
# (N, D) float32
vectors = embed_items(profile.dataset, profile.encoder, progress=False).vectors
x = torch.nn.functional.normalize(torch.from_numpy(vectors), dim=1)  # (N, D)
N, D = x.shape
reducer = umap.UMAP(n_neighbors=15, min_dist=0.1, metric="cosine",
                    random_state=profile.seed, n_jobs=1)
xy = reducer.fit_transform(vectors)  # (N, 2), the map of the item-vectors chapter
glue("n_films", N)
glue("dim", D)
print(f"N = {N} films, D = {D} dims")

# %% [markdown]
# ## One level of k-means
#
# k-means splits the $N$ points $x_1, \dots, x_N$ into $K$ groups, each
# represented by a *centroid*, so as to minimise the sum of squared distances
# from every point to its centroid, the *inertia*. Collect the centroids as the
# rows of a *codebook* $C$ ($K$ rows of width $D_\text{text}$) and write
# $c_i \in \{0, \dots, K-1\}$ for the *code* of point $i$, the number of its
# cluster. k-means looks for
#
# $$
# \min_{C,\; c_1, \dots, c_N} \; \sum_{i=1}^{N} \big\lVert x_i - C[c_i] \big\rVert^2 .
# $$ (eq-kmeans)
#
# Lloyd's algorithm {cite}`lloyd1982kmeans` alternates two steps until nothing
# changes:
#
# 1. **assign** every point to its nearest centroid,
#    $c_i = \arg\min_c \lVert x_i - C[c] \rVert^2$ (the codebook fixed);
# 2. **update** every centroid to the mean of its points (the codes fixed).
#
# Neither step can raise the inertia {eq}`eq-kmeans`, so it converges, to a
# local optimum that depends on the starting centroids. k-means++
# {cite}`arthur2007kmeanspp` picks them well: the first at random, each next one
# with probability proportional to the squared distance to the nearest centroid
# chosen so far, so the starting centroids are spread out. We take the package's `kmeans_plus_plus` for the
# start and write Lloyd's loop ourselves. The squared distance is expanded as
# $\lVert x_i\rVert^2 - 2\,x_i\cdot C[c] + \lVert C[c]\rVert^2$, one matrix
# product for all pairs.
#
# The distances are computed in float64, though the vectors and centroids are
# stored in float32. Different CPUs (AVX2, AVX-512, ARM) add up a float32 dot
# product in different orders, so two nearly equal distances can compare one way
# on one machine and the other way on the next; one point that changes cluster
# changes every later iteration. In float64 the rounding is far below any gap
# between two distances, so every reader gets the same clusters.

# %%
def lloyd(x: torch.Tensor, k: int, generator: torch.Generator, iters: int = 50,
          rel_tol: float = 1e-4):
    """k-means on x (N, D) float32: k-means++ start, then assign / update
    until the inertia stops improving."""
    x64 = x.double()  # decisions in float64
    centroids = kmeans_plus_plus(x, k, generator).double()  # (K, D)

    def assign(c: torch.Tensor) -> tuple[torch.Tensor, float]:
        # (N, K) squared distances
        dist = (x64 * x64).sum(1, keepdim=True) - 2 * x64 @ c.T + (c * c).sum(1)
        best, labels = dist.min(1)  # (N,), (N,)
        return labels, float(best.sum())

    labels, inertia = assign(centroids)
    for _ in range(iters):
        # (K, D) update
        means = torch.stack([x64[labels == j].mean(0) for j in range(k)])
        centroids = means.float().double()  # as float32 will store them
        new, new_inertia = assign(centroids)  # assign
        done = (torch.equal(new, labels)
                or inertia - new_inertia <= rel_tol * new_inertia)
        labels, inertia = new, new_inertia
        if done:
            break
    return centroids.float(), labels, inertia


gen = torch.Generator().manual_seed(0)
c1_centroids, c1, inertia = lloyd(x, K, gen)
sizes1 = np.bincount(c1.numpy(), minlength=K)
print(f"level 1: inertia {inertia:.4f}, "
      f"mean squared distance to the centroid {inertia / N:.4f}")
print(f"cluster sizes: smallest {sizes1.min()}, largest {sizes1.max()}, "
      f"ideal N/K = {N / K:.1f}")

# %% [markdown]
# Each film now has its first code `c1`, the number of its cluster. On the map
# of {doc}`chapter 02 <02_item_embeddings>`, the nine largest clusters are in
# colour and the others in grey (a colour per cluster could not be told apart),
# with each cluster's number written at the middle of its films:

# %%
def draw_codes(ax, labels: np.ndarray, title: str) -> None:
    """Scatter the map: the nine largest clusters in colour, the rest in grey."""
    # tab10 without its grey, which the other clusters use
    palette = [c for k, c in enumerate(plt.get_cmap("tab10").colors) if k != 7]
    largest = np.argsort(-np.bincount(labels))[:len(palette)]
    colour_of = {int(j): palette[k] for k, j in enumerate(largest)}
    grey = labels[:, None] != largest[None, :]  # (N, 9)
    rest = grey.all(axis=1)
    ax.scatter(xy[rest, 0], xy[rest, 1], s=5, color="0.82", linewidths=0)
    for j, colour in colour_of.items():
        ax.scatter(xy[labels == j, 0], xy[labels == j, 1], s=7, color=colour,
                   linewidths=0)
    for j in np.unique(labels):
        cx, cy = np.median(xy[labels == j], axis=0)
        ax.text(cx, cy, str(j), fontsize=8, ha="center", va="center",
                fontweight="bold", color=colour_of.get(int(j), "0.45"),
                bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none",
                      "alpha": 0.75})
    ax.set_title(title)
    ax.set_axis_off()


fig, ax = plt.subplots(figsize=(7.5, 6.5))
draw_codes(ax, c1.numpy(), f"Level-1 k-means codes (K = {K}) on the UMAP map:\n"
           "the nine largest clusters in colour")
plt.tight_layout()
plt.show()

# %% [markdown]
# Most clusters are one patch of the map. Some are scattered: k-means works in
# {glue:text}`dim:d` dimensions and the map only approximates them, so points that
# are close in the full space can land apart on the map. What does a cluster hold?
# The clusters of a few well-known films, with the genres most of their members
# have:

# %%
genres = ml.items["genres"].to_numpy()
rows = []
# film_rows finds the films by title (on another dataset, popular films stand in
# for them)
for i in film_rows(titles, ["Star Wars", "Toy Story", "Pulp Fiction", "Scream",
                            "Fargo"], popularity):
    film, j = titles[i], int(c1[i])
    members = np.flatnonzero(c1.numpy() == j)
    share = pd.Series(
        [g for i in members for g in genres[i].split("|")]
    ).value_counts() / len(members)
    rows.append({"film": film, "c1": j, "films": len(members),
                 "top genres (share of films)":
                     ", ".join(f"{g} {v:.0%}" for g, v in share.iloc[:3].items()),
                 "first members": ", ".join(titles[i] for i in members[:3])})
pd.DataFrame(rows).set_index("film")

# %% [markdown]
# ## The residual
#
# One code out of 32 says roughly *which kind* of film it is, not which film.
# Residual quantisation {cite}`chen2010rvq` keeps what the first level missed,
# the **residual** $x - C_1[c_1]$, and quantises *that* with a second k-means,
# then the residual of the residual, and so on. Level $l$ has its own codebook
# $C_l$, fitted by k-means {eq}`eq-kmeans` on the residuals that levels $1$ to
# $l - 1$ left of all $N$ films. With $\hat x_l$ the sum of a film's first $l$
# chosen centroids (its partial reconstruction), level by level:
#
# $$
# \hat x_0 = 0, \qquad
# c_l = \arg\min_{c} \big\lVert (x - \hat x_{l-1}) - C_l[c] \big\rVert^2, \qquad
# \hat x_l = \hat x_{l-1} + C_l[c_l], \qquad l = 1, \dots, L.
# $$ (eq-residual-quantisation)
#
# (For plain k-means the fitted code is exactly this nearest centroid; the
# balanced variant below replaces the $\arg\min$ by an assignment with
# capacities.) After $L$ levels a film is the tuple $(c_1, \dots, c_L)$ and its
# vector is approximated by the sum of the chosen centroids,
# $\hat x_L = C_1[c_1] + \dots + C_L[c_L]$.
#
# Each level removes part of what is left, so the residuals shrink. We run our
# `lloyd` on the residuals of each level, continuing the same random generator
# from level to level:

# %%
gen = torch.Generator().manual_seed(0)
residual = x.clone()
codebooks, codes, norms = [], [], [residual.norm(dim=1)]
for _level in range(L):
    centroids, labels, _ = lloyd(residual, K, gen)
    codebooks.append(centroids)  # (K, D)
    codes.append(labels)  # (N,)
    residual = residual - centroids[labels]  # (N, D): what this level did not explain
    norms.append(residual.norm(dim=1))
codebooks = torch.stack(codebooks)  # (L, K, D)
codes = torch.stack(codes, 1).numpy()  # (N, L)
pd.DataFrame({
    "level": range(L + 1),
    "mean |residual|": [float(n.mean()) for n in norms],
    "mean |residual|^2": [float((n * n).mean()) for n in norms],
}).set_index("level").round(4)

# %%
fig, ax = plt.subplots()
bins = np.linspace(0.3, 0.9, 61)
for level, n in enumerate(norms[1:], start=1):
    ax.hist(n.numpy(), bins=bins, histtype="step", lw=1.8, label=f"after level {level}",
            color=f"C{level}")
    ax.axvline(float(n.mean()), color=f"C{level}", ls=":", lw=1.2)
ax.set(xlabel="residual norm |x - x̂| (every input vector has norm 1)", ylabel="films",
       title="Residual norms shrink level by level (dotted: means)")
ax.legend()
plt.show()

# %% [markdown]
# Level 1 takes the largest bite, because the first centroids also capture what
# all films share ({doc}`chapter 02 <02_item_embeddings>`: the vectors lie in a
# narrow cone). The later levels remove less each. With three levels of 32 codes, $32^3 = 32{,}768$
# tuples are possible for {glue:text}`n_films:,d` films, but the reconstruction
# is still coarse: three centroids out of 96 cannot pin down a
# {glue:text}`dim:d`-dimensional vector. That is
# not the point; the point is a short name whose prefixes group similar films.
#
# ## Rich get richer
#
# Look at the cluster sizes of level 1 again, sorted:

# %%
fig, ax = plt.subplots()
ax.bar(range(K), np.sort(sizes1)[::-1], color="C0")
big = np.sort(sizes1[sizes1 > 2 * N / K])  # clusters at least twice the equal share
glue("n_big", len(big))
glue("big_min", big.min())
glue("big_max", big.max())
glue("smallest", sizes1.min())
ax.axhline(N / K, color="C3", ls="--", label=f"equal share N/K = {N / K:.1f}")
ax.set(xlabel="level-1 code (sorted by size)", ylabel="films",
       title="Plain k-means: cluster sizes at level 1")
ax.legend()
plt.show()

# %% [markdown]
# Plain k-means puts centroids where they lower the squared distances most. The
# dense crowd of films listed simply as "Drama" or "Comedy" ends up in
# {glue:text}`n_big:d` clusters of {glue:text}`big_min:d` to
# {glue:text}`big_max:d` films each (more than twice the equal share), while the
# smallest clusters gather a handful of films around a title word (jungle films,
# films with *cat* in the title, {glue:text}`smallest:d` films in one cluster).
# The source article calls it the Matthew effect, "rich get richer"
# {cite}`sid2vid2026blog`. It hurts twice: a code shared by many films says little
# about any of them (the code distribution has low entropy), and all those films
# must then be told apart by the later levels, so full-tuple collisions pile up in
# the big clusters. OneRec {cite}`deng2025onerec` therefore uses **balanced**
# k-means: every cluster gets (about) the same number of items.
#
# ## Balanced k-means
#
# Balanced k-means keeps Lloyd's loop and changes only the assignment step:
# instead of "nearest centroid", it solves "nearest centroid, subject to every
# cluster holding between `lo` and `hi` points". With the codebook $C$ fixed,
# the assignment step looks for
#
# $$
# \min_{c_1, \dots, c_N} \; \sum_{i=1}^{N} \big\lVert x_i - C[c_i] \big\rVert^2
# \quad\text{subject to}\quad
# \mathrm{lo} \le \big|\{\, i : c_i = c \,\}\big| \le \mathrm{hi}
# \quad\text{for every code } c,
# $$ (eq-balanced-kmeans)
#
# the inertia {eq}`eq-kmeans` under a capacity constraint. `size_bounds`
# derives the bounds from a relative tolerance (10% by default) around the
# equal share `N/K`:

# %%
lo, hi = size_bounds(N, K, tolerance=0.1)
glue("lo", lo)
glue("hi", hi)
print(f"N = {N}, K = {K}: every cluster must hold between {lo} and {hi} films "
      f"(N/K = {N / K:.1f})")

# %% [markdown]
# `capacitated_assign(costs, lo, hi)` solves the constrained assignment
# {eq}`eq-balanced-kmeans` with a greedy that is fast and vectorised: its
# result always meets the bounds, though it need not reach the exact minimum.
# Every unassigned point proposes to its nearest cluster that still has room. A cluster that receives more proposals
# than it has room for accepts the points with the largest **regret**: the
# extra cost they would pay in their second-best open cluster. Points that have
# a good alternative are the ones that move. Rejected points propose again
# among the clusters still open. A last repair step fills any cluster below
# `lo` with the points that are cheapest to move.
#
# A tiny example: four points, two clusters, at most two points per cluster.
# All four prefer cluster 0; points 0 and 1 would lose most by going to
# cluster 1 (regrets 8 and 5), so cluster 0 keeps them and points 2 and 3 go to
# cluster 1:

# %%
costs = torch.tensor([[1.0, 9.0],
                      [1.0, 6.0],
                      [2.0, 3.0],
                      [0.0, 2.0]])  # (points, clusters) squared distances
print("nearest:  ", costs.argmin(1).tolist())
print("balanced: ", capacitated_assign(costs, lo=2, hi=2).tolist())

# %% [markdown]
# Here is the difference on a 2-D toy set where it is easy to see: a dense blob
# of 400 points and a diffuse cloud of 100, split into 5 clusters. Plain k-means
# spends centroids where they lower the squared distances most, in the spread-out
# cloud, and leaves {glue:text}`toy_kmeans_blob_clusters:d` big clusters in the
# dense blob. Balanced k-means (here with tolerance 0, so exactly 100 points
# each) gives the dense blob {glue:text}`toy_balanced_blob_clusters:d` clusters.

# %%
rng = np.random.default_rng(0)
toy = np.concatenate([rng.normal([0, 0], 0.3, (400, 2)),
                      rng.normal([4, 0], 1.5, (100, 2))]).astype(np.float32)
toy_t = torch.from_numpy(toy)
fig, axes = plt.subplots(1, 2, figsize=(8, 3.4), sharey=True)
for ax, method in zip(axes, ["kmeans", "balanced"], strict=True):
    res = METHODS[method](toy_t, 5, seed=0, tolerance=0.0)
    sizes = np.bincount(res.labels.numpy(), minlength=5)
    # the first 400 points are the blob
    in_blob = np.bincount(res.labels.numpy()[:400], minlength=5)
    # clusters mostly of blob points
    glue(f"toy_{method}_blob_clusters", int((in_blob > sizes - in_blob).sum()))
    ax.scatter(toy[:, 0], toy[:, 1], s=5,
               c=np.array(plt.get_cmap("tab10").colors)[res.labels.numpy()])
    ax.scatter(*res.centroids.numpy().T, marker="x", s=60, c="black")
    ax.set(title=f"{method}: sizes {sorted(sizes.tolist(), reverse=True)}",
           aspect="equal")
plt.tight_layout()
plt.show()

# %% [markdown]
# On the films, with the 10% tolerance, every level-1 cluster now holds between
# `lo` and `hi` films:

# %%
bal = balanced_kmeans(x, K, generator=torch.Generator().manual_seed(0), tolerance=0.1)
bal_sizes = np.bincount(bal.labels.numpy(), minlength=K)
print(f"balanced level 1: sizes {bal_sizes.min()}..{bal_sizes.max()} "
      f"(bounds {lo}..{hi}), {bal.iterations} iterations")
fig, ax = plt.subplots()
ax.bar(np.arange(K) - 0.2, np.sort(sizes1)[::-1], width=0.4, color="C0", label="kmeans")
ax.bar(np.arange(K) + 0.2, np.sort(bal_sizes)[::-1], width=0.4, color="C1",
       label="balanced")
ax.axhline(N / K, color="C3", ls="--", label="N/K")
ax.set(xlabel="level-1 code (sorted by size)", ylabel="films",
       title="Level-1 cluster sizes")
ax.legend()
plt.show()

# %% [markdown]
# The price: some films now sit in a cluster that is not their nearest, so the
# reconstruction gets a little worse. {doc}`Chapter 04 <04_sid_diagnostics>`
# measures how much, level by level, together with the entropy and collisions
# that balancing buys.
#
# ## The source article's heuristic: `seed-heuristic`
#
# The source article {cite}`sid2vid2026blog` balanced its clusters with a
# heuristic: run ordinary k-means; then, as long as some cluster is too big,
# take each over-full cluster's points **farthest from its centre** and move
# them, one by one, into whichever cluster is **smallest at that moment**; then
# recompute the centres and repeat. On MovieLens-20M it reports that this
# raised the level-3 normalised entropy from about 0.8 to about 0.99 and cut
# prefix collisions from about 10% to about 6%.
#
# The package keeps this heuristic as the method `seed-heuristic`, ported as
# the write-up describes it (a Python loop over points), so that we can compare
# it with `balanced`. Its weak spot is visible in the description: the farthest
# point of a big cluster is sent to the smallest cluster *wherever that is*,
# not to a cluster near the point. All three methods are entries of one
# registry:

# %%
device = compute_device(profile)  # cpu here; the 4090d profile fits on its GPU
sids = {m: fit_semantic_ids(vectors, SIDConfig(levels=L, codes=K, method=m, seed=0),
                            device=device)
        for m in METHODS}
sh_sizes = np.stack([np.bincount(sids["seed-heuristic"].codes[:, lv], minlength=K)
                     for lv in range(L)])  # (L, K)
glue("seed_heuristic_min", sh_sizes.min())
pd.DataFrame([
    {"method": m,
     **{f"level {lv + 1} sizes": f"{np.bincount(s.codes[:, lv], minlength=K).min()}"
                                 f"..{np.bincount(s.codes[:, lv], minlength=K).max()}"
        for lv in range(L)}}
    for m, s in sids.items()
]).set_index("method")

# %% [markdown]
# `balanced` keeps every level within the bounds, {glue:text}`lo:d` to
# {glue:text}`hi:d` films. `seed-heuristic` comes close but not all the way: its
# smallest cluster holds {glue:text}`seed_heuristic_min:d` films. Plain k-means
# is far outside the bounds at every level.
# {doc}`Chapter 04 <04_sid_diagnostics>` compares the three in detail.
#
# ## The uniqueness code
#
# Two films can still end up with the same tuple $(c_1, c_2, c_3)$: a
# *collision*. A generative recommender emits a tuple and must map it back to
# one film, so TIGER {cite}`rajput2023tiger` appends one more code, the
# *uniqueness code* $u$, that numbers the films sharing a tuple: 0, 1, 2, ...
# `add_uniqueness` does that (in item order); `fit_semantic_ids` already
# returns the codes with it, as column `L`.

# %%
balanced = sids["balanced"]
tuples = balanced.codes[:, :L]  # (N, L) before the uniqueness code
_, group_of, group_size = np.unique(tuples, axis=0, return_inverse=True,
                                    return_counts=True)
group_of = group_of.reshape(-1)
colliding = group_size[group_of] > 1
glue("largest_group", group_size.max())
print(textwrap.fill(
    f"{len(group_size)} distinct tuples for {N} films; {colliding.sum()} films "
    f"({colliding.mean():.1%}) share their tuple with another film; "
    f"the largest group has {group_size.max()} films", 88))
assert np.array_equal(add_uniqueness(tuples), balanced.codes)

# %% [markdown]
# Which films collide? The largest group, and two more:

# %%
def show_group(g: int) -> pd.DataFrame:
    members = np.flatnonzero(group_of == g)
    return pd.DataFrame({"film": [titles[i] for i in members],
                         "year": [int(y) for y in ml.items["year"].iloc[members]],
                         "genres": genres[members],
                         "SID": [tuple(balanced.codes[i].tolist()) for i in members]})


largest = np.argsort(-group_size, kind="stable")[:3]
show_group(largest[0])

# %%
pd.concat([show_group(g) for g in largest[1:]], ignore_index=True)

# %% [markdown]
# The colliding films are franchises: the same genres and a title word in
# common, which is nearly all their texts say (the year differs, but weighs
# little in the encoder's vector). Three levels of 32 codes cannot tell
# {glue:text}`largest_group:d` Amityville films apart; the uniqueness code does,
# in item order. It is the
# only code without meaning, and it is needed only where the tuples run out.
#
# ## What real films' semantic IDs look like
#
# The full semantic IDs (balanced method, `L = 3`, `K = 32`, plus the
# uniqueness code) of some well-known films:

# %%
films = ["Star Wars", "The Empire Strikes Back", "Return of the Jedi", "Aliens",
         "The Terminator", "Terminator 2: Judgment Day", "Toy Story", "Aladdin",
         "The Lion King", "Beauty and the Beast", "The Godfather",
         "The Godfather: Part II", "Pulp Fiction", "Scream", "Scream 2"]
rows = film_rows(titles, films, popularity)
columns = [f"c{lv + 1}" for lv in range(L)] + ["u"]
sid_of = dict(zip(films, balanced.codes[rows], strict=True))  # by the name asked for
glue("star_wars_c1", sid_of["Star Wars"][0])
glue("star_wars_c2", sid_of["Star Wars"][1])
glue("terminator_c1", sid_of["The Terminator"][0])
glue("toy_story_c1", sid_of["Toy Story"][0])
glue("aladdin_c2", sid_of["Aladdin"][1])
glue("godfather_c1", sid_of["The Godfather"][0])
pd.DataFrame(balanced.codes[rows], index=[titles[i] for i in rows],
             columns=columns).assign(genres=genres[rows])

# %% [markdown]
# Films that are alike share a prefix. The Star Wars trilogy and Aliens share
# ({glue:text}`star_wars_c1`, {glue:text}`star_wars_c2`); the Terminators share
# {glue:text}`terminator_c1`; the four animated films share
# {glue:text}`toy_story_c1`, and Aladdin and The Lion King share
# ({glue:text}`toy_story_c1`, {glue:text}`aladdin_c2`); the two Godfathers share
# {glue:text}`godfather_c1`. Only a shared *prefix* means something: the same `c2`
# under different `c1`s names two unrelated centroids. And a hard partition always
# cuts some close pairs: Scream and Scream 2, each other's nearest neighbour in
# {doc}`chapter 02 <02_item_embeddings>`, fall on two sides of a level-1
# boundary (plain k-means splits them too).
#
# Seen from one film, a prefix names a *neighbourhood*: all films whose SID
# starts with Star Wars' first code, and those that share its first two codes:

# %%
sw = rows[0]  # Star Wars
for depth in (1, 2):
    same = np.flatnonzero(
        (balanced.codes[:, :depth] == balanced.codes[sw, :depth]).all(1)
    )
    same = same[same != sw]
    prefix = tuple(balanced.codes[sw, :depth].tolist())
    print(textwrap.fill(f"prefix {prefix}: {len(same)} other films, "
                        f"e.g. {', '.join(titles[i] for i in same[:8])}",
                        88, subsequent_indent="    "))

# %% [markdown]
# This is what a generative recommender exploits: it generates an ID code by
# code, and every code narrows the set of films down, from a genre-like
# neighbourhood to a handful of films to exactly one.
#
# ## Checking against the package
#
# Our `lloyd` with the package's k-means++ start, run level by level on the
# residuals with one random generator, is exactly what
# `ResidualQuantizer.fit` does for the `kmeans` method. Same seed, same codes:

# %%
package = fit_semantic_ids(vectors,
                           SIDConfig(levels=L, codes=K, method="kmeans", seed=0))
assert np.array_equal(codes, package.codes[:, :L])  # every film, every level
gap = float((codebooks - package.quantizer.codebooks).abs().max())
assert gap < 1e-6, gap  # centroids: the same means, summed in a different order
print(textwrap.fill(
    f"from-scratch residual k-means: codes equal the package's for all {N} films "
    f"x {L} levels; centroids agree within 1e-6", 88))

# %% [markdown]
# Two more properties of the package's quantiser: decoding a film's codes gives
# the sum of its centroids (our $\hat x_L$), and for plain k-means, encoding the
# fitted vectors again gives back the fitted codes (every code is the nearest
# centroid of its residual). Neither holds for the balanced methods' encoding:
# the capacities moved some films away from their nearest centroid, which is
# why `SemanticIDs` keeps the fitted codes.

# %%
# (N, D): sum of each film's L centroids
x_hat = codebooks[torch.arange(L), torch.from_numpy(codes)].sum(1)
assert np.allclose(package.quantizer.decode(package.codes), x_hat.numpy(), atol=1e-6)
assert np.array_equal(package.quantizer.encode(vectors), package.codes[:, :L])
moved = (balanced.quantizer.encode(vectors) != balanced.codes[:, :L]).any(1).mean()
print("decode(codes) equals the sum of the films' centroids;")
print("encode(vectors) reproduces the kmeans codes")
print("balanced: nearest-centroid encoding differs from the fitted code for "
      f"{moved:.1%} of films")

# %% [markdown]
# ## Summary
#
# - A semantic ID is a tuple of codes from residual quantisation
#   {eq}`eq-residual-quantisation`: k-means {eq}`eq-kmeans` on the vectors,
#   then k-means on what is left, $L$ times; the vector is approximated by the
#   sum of the chosen centroids, and residuals shrink level by level.
# - Plain k-means makes a few big clusters and many small ones (rich get
#   richer). Balanced k-means replaces the assignment step by a
#   capacity-constrained one {eq}`eq-balanced-kmeans` (`capacitated_assign`,
#   sorted-regret greedy) so that every cluster holds between `lo` and `hi`
#   items; the source article's heuristic (`seed-heuristic`) is kept for
#   comparison.
# - A uniqueness code numbers the films that share a tuple, so every full SID
#   names one film.
# - Similar films share prefixes; a prefix names a neighbourhood.
#
# ## Exercises
#
# Each exercise says how long it takes on the `cpu` profile. Those with one
# right answer end with a check: `check("03.1", your_answer)` prints whether
# it is right, with a hint if not. Solutions are folded below each exercise
# (click to open); try first.
#
# ```{exercise}
# :label: ex-03-1
#
# Run level-1 k-means on `x` (`K` codes) from seeds 0 to 4. Our `lloyd` takes
# seconds per run; `METHODS["kmeans"](x, K, seed=seed)` is the package's
# version of it (the same codes for the same seed, as the last section
# checks), faster, and returns `centroids` and `labels`. How much does the
# final inertia vary, and how different are the level-1 partitions? *A few
# seconds.* Check: `check("03.1", (smallest_inertia, largest_inertia))`.
# ```

# %% [markdown] tags=["solution"]
# ````{solution-start} ex-03-1
# :class: dropdown
# ````

# %% tags=["solution"]
runs = [METHODS["kmeans"](x, K, seed=seed) for seed in range(5)]
# inertia: squared distances to the chosen centroids, summed in float64 as in lloyd
inertias = [float(((x.double() - run.centroids.double()[run.labels]) ** 2).sum())
            for run in runs]
smallest_inertia, largest_inertia = min(inertias), max(inertias)
print("final inertias: " + ", ".join(f"{i:.2f}" for i in inertias) + " "
      f"({largest_inertia / smallest_inertia - 1:.1%} apart)")


def pairs_kept(a: np.ndarray, b: np.ndarray) -> float:
    """Of the pairs of films that share a cluster in partition a or b, the share
    that share one in both."""
    table = np.zeros((K, K))
    np.add.at(table, (a, b), 1)  # (K, K) films in cluster i of a and j of b

    def pairs(n):
        return float((n * (n - 1) / 2).sum())

    both = pairs(table)
    return both / (pairs(table.sum(1)) + pairs(table.sum(0)) - both)


for seed, run in enumerate(runs[1:], start=1):
    kept = pairs_kept(runs[0].labels.numpy(), run.labels.numpy())
    print(f"seed 0 vs seed {seed}: {kept:.0%} of the pairs of films that share a "
          "cluster share it in both")
check("03.1", (smallest_inertia, largest_inertia))

# %% [markdown] tags=["solution"]
# The inertia varies by about one percent: every seed finds an equally good
# local optimum. The partitions are another matter: only about a quarter of
# the pairs of films put together by one seed are put together by another. Many
# partitions are (almost) equally good, so a film's codes depend on the seed,
# and a semantic ID is only meaningful together with the quantiser that made
# it.
#
# ````{solution-end}
# ````

# %% [markdown]
# ```{exercise}
# :label: ex-03-2
#
# Fit `kmeans` with `SIDConfig(normalize=False)` on the vectors scaled by
# random factors in $[0.5, 2]$ (one factor per film,
# `np.random.default_rng(0).uniform(0.5, 2.0, N)`). What do the first-level
# clusters capture now? *A few seconds.* An open question: the solution
# prints how much of the variance of the scale factors the level-1 clusters
# explain, with and without normalisation.
# ```

# %% [markdown] tags=["solution"]
# ````{solution-start} ex-03-2
# :class: dropdown
# ````

# %% tags=["solution"]
scale = np.random.default_rng(0).uniform(0.5, 2.0, N).astype(np.float32)  # (N,)
scaled = vectors * scale[:, None]  # (N, D), norms 0.5 to 2
unnormalised = fit_semantic_ids(scaled, SIDConfig(levels=L, codes=K, method="kmeans",
                                                  normalize=False, seed=0))


def explained(values: np.ndarray, labels: np.ndarray) -> float:
    """Share of the variance of `values` explained by the cluster means."""
    means = np.bincount(labels, weights=values) / np.bincount(labels)  # (K,)
    return float(((means[labels] - values.mean()) ** 2).sum()
                 / ((values - values.mean()) ** 2).sum())


for name, sid in [("normalize=False", unnormalised), ("normalize=True", package)]:
    share = explained(scale, sid.codes[:, 0])
    print(f"{name:>15}: level-1 clusters explain {share:.0%} of the variance "
          "of the scale")

# %% [markdown] tags=["solution"]
# Without normalisation the first level spends most of its codes on the
# *length* of the vectors: films are grouped by the scale factor they were
# given, a number that says nothing about the film. With normalisation
# (the chapter's `package`, fitted on the unscaled vectors; normalising the
# scaled ones gives the same vectors back) the clusters ignore it.
#
# ````{solution-end}
# ````

# %% [markdown]
# ```{exercise}
# :label: ex-03-3
#
# With the balanced method and `tolerance=0.0`, every cluster holds
# `floor(N/K)` or `ceil(N/K)` films. How many films does balancing put in a
# cluster other than their nearest centroid's at level 1, compared with
# `tolerance=0.1`? Use `balanced_kmeans(x, K, generator=...,
# tolerance=...)` with seed 0, and the squared distances to its returned
# `centroids` in float64, as in `lloyd`. *About a second.* Check:
# `check("03.3", (moved_at_0, moved_at_01))`.
# ```

# %% [markdown] tags=["solution"]
# ````{solution-start} ex-03-3
# :class: dropdown
# ````

# %% tags=["solution"]
moved = {}
x64 = x.double()
for tolerance in (0.0, 0.1):
    res = balanced_kmeans(x, K, generator=torch.Generator().manual_seed(0),
                          tolerance=tolerance)
    c64 = res.centroids.double()  # (K, D)
    dist = (x64 * x64).sum(1, keepdim=True) - 2 * x64 @ c64.T + (c64 * c64).sum(1)
    moved[tolerance] = int((dist.argmin(1) != res.labels).sum())
    sizes = np.bincount(res.labels.numpy(), minlength=K)
    print(f"tolerance {tolerance}: sizes {sizes.min()}..{sizes.max()}, "
          f"{moved[tolerance]} films not in their nearest centroid's cluster")
moved_at_0, moved_at_01 = moved[0.0], moved[0.1]
check("03.3", (moved_at_0, moved_at_01))

# %% [markdown] tags=["solution"]
# Tighter bounds move more films, but not many more: the 10% tolerance
# already forces most of the moves, because plain k-means' clusters (sizes
# {glue:text}`smallest:d` to {glue:text}`big_max:d`) are far outside either
# bound.
#
# ````{solution-end}
# ````

# %% [markdown]
# ```{exercise}
# :label: ex-03-4
#
# Which `K` gives no collisions at all on MovieLens-100K? Fit the balanced
# method with `K` = 64, 128 and 256, at `L = 3` and at `L = 2`, and count the
# films that share their tuple (before the uniqueness code) with another
# film. Why does it never reach zero? *About 10 seconds.* Check:
# `check("03.4", (colliding_l3, colliding_l2))`, the counts at `K = 256`.
# ```

# %% [markdown] tags=["solution"]
# ````{solution-start} ex-03-4
# :class: dropdown
# ````

# %% tags=["solution"]
def colliding(codes: np.ndarray) -> int:
    """Films whose tuple (N, L) is shared with another film."""
    _, group, size = np.unique(codes, axis=0, return_inverse=True, return_counts=True)
    return int((size[group.reshape(-1)] > 1).sum())


counts = {}
for levels in (3, 2):
    for codes_per_level in (64, 128, 256):
        sid = fit_semantic_ids(vectors, SIDConfig(levels=levels, codes=codes_per_level,
                                                  method="balanced", seed=0))
        counts[levels, codes_per_level] = colliding(sid.codes[:, :levels])
    print(f"L = {levels}: colliding films at K = 64, 128, 256: "
          + ", ".join(str(counts[levels, k]) for k in (64, 128, 256)))
from cobra.text import item_texts

_, text_group, text_count = np.unique(item_texts(ml.items), return_inverse=True,
                                      return_counts=True)
print(f"films whose text equals another film's: {(text_count[text_group] > 1).sum()}")
colliding_l3, colliding_l2 = counts[3, 256], counts[2, 256]
check("03.4", (colliding_l3, colliding_l2))

# %% [markdown] tags=["solution"]
# No `K` does. Collisions fall fast as `K` grows, but MovieLens-100K lists
# some films twice, with the same text and therefore the same vector; no
# quantiser can tell two equal vectors apart, except when the capacity
# constraint happens to send them to different clusters. That is why TIGER's
# uniqueness code is needed however large `K` is.
#
# ````{solution-end}
# ````

# %% [markdown]
# ```{exercise}
# :label: ex-03-5
#
# Encode a new film: write its text with `cobra.text.item_text` (it takes a
# dict with `title`, `year` and `genres`, e.g. `"Toy Story 3"`, 2010,
# `"Animation|Children's|Comedy"`), embed it with
# `get_encoder("minilm").encode([text], progress=False)` (from `cobra.text`;
# a `(1, D)` array), and call `balanced.quantizer.encode` on that. Which
# films share its first code, and its first two? *A few seconds* (loading the
# encoder). Check: `check("03.5", tuple(new_sid))` with the three codes.
# ```

# %% [markdown] tags=["solution"]
# ````{solution-start} ex-03-5
# :class: dropdown
# ````

# %% tags=["solution"]
from cobra.text import get_encoder, item_text

text = item_text({"title": "Toy Story 3", "year": 2010,
                  "genres": "Animation|Children's|Comedy"})
if profile.encoder == "provided":  # vectors shipped with the data, no text encoder
    print("this profile's item vectors come with the dataset: no encoder for new text")
else:
    new_vector = get_encoder(profile.encoder).encode([text], progress=False)  # (1, D)
    new_sid = balanced.quantizer.encode(new_vector)[0]  # (L,)
    print(f"{text}\nSID {tuple(new_sid.tolist())}")
    for depth in (1, 2):
        same = np.flatnonzero((balanced.codes[:, :depth] == new_sid[:depth]).all(1))
        print(textwrap.fill(f"prefix {tuple(new_sid[:depth].tolist())}: {len(same)} "
                            f"films, e.g. {', '.join(titles[i] for i in same[:8])}",
                            88, subsequent_indent="    "))
    check("03.5", tuple(new_sid))

# %% [markdown] tags=["solution"]
# A new film needs no retraining: its text goes through the same encoder and
# the same codebooks. Its first code is the animated films' cluster; the
# first two codes narrow it to a few family films. (Its full tuple may be
# taken by an existing film; a catalogue that adds it gives it the next free
# uniqueness code.)
#
# ````{solution-end}
# ````
