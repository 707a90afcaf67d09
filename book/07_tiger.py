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
# # 7. TIGER: generating a film's semantic ID code by code
#
# **Goal.** Recommend the way TIGER {cite}`rajput2023tiger` does: instead of
# scoring every film, *generate* the next film's semantic ID one code at a
# time, each code conditioned on the history and on the codes before it. We
# write the probability of a film as a product over its codes, lay out the
# item tokens and code tokens the model reads (and the mask that keeps each
# prediction honest), compute the training loss by hand on a real batch, then
# build the two pieces decoding needs from scratch: a trie of the catalogue's
# IDs and a beam search constrained by it. Each is checked against the package.
# We end with what a beam hands to the evaluator, and where the converged
# numbers are.
#
# **Prerequisites.** Semantic IDs and the uniqueness code
# ({doc}`chapter 03 <03_semantic_ids>`) and the HSTU backbone
# ({doc}`chapter 05 <05_hstu>`).
#
# **Run time.** About 15 s on 2 CPU cores (`cpu` profile; measured by the nbval run, which checks it).
#
# The code lives in `cobra.tiger` (`TigerRecommender` with `level_logits`,
# `training_loss`, `beam_search` and `score`; `structural_mask`) and
# `cobra.trie` (`SIDTrie`, `constrained_beam_search`).

# %%
import math
from collections import defaultdict

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from matplotlib.colors import ListedColormap

from cobra.book import claim, glue, load_result, setup
from cobra.data import TrainWindows, eval_batches, load_split
from cobra.datasets import load_dataset
from cobra.exercises import check
from cobra.hstu import request_times
from cobra.inputs import semantic_ids, sid_config_of
from cobra.metrics import rank_metrics
from cobra.presets import get_preset
from cobra.runs import build_model
from cobra.text import display_title
from cobra.tiger import structural_mask
from cobra.train import epoch_batches, epoch_order
from cobra.trie import SIDTrie

profile = setup()
# one thread: as fast as two for this small model, and much faster on a busy machine
torch.set_num_threads(1)
preset = get_preset(f"tiger-{profile.name}")  # tiger-cpu on the cpu profile
split = load_split(preset.dataset)
# (N, L + 1) int64, cached: row i - 1 is film i, the last column the uniqueness code
codes = semantic_ids(preset.dataset, preset.encoder, sid_config_of(preset))
# untrained for now; eval(): no dropout
model = build_model(preset, codes, num_items=split.num_items).eval()
ml = load_dataset(preset.dataset)
titles = [display_title(t, y)
          for t, y in zip(ml.items["title"], ml.items["year"], strict=True)]
config = model.config
print(f"{preset.preset}: {split.num_items} films, IDs of {codes.shape[1]} codes; "
      f"D = {config.dim}, beam width M = {config.beam_width}")

# %% [markdown]
# ## A film is a word of $L + 1$ codes
#
# {doc}`Chapter 03 <03_semantic_ids>` named every film by a tuple
# $(c_1, \dots, c_L, u)$: $L$ codes of residual k-means, each one of $K$
# values, and a uniqueness code $u$ that numbers the films sharing a tuple.
# Write $c_{L+1} = u$, so a film is a word of $L + 1$ codes. Here $L =$
# {glue:text}`L:d` and $K =$ {glue:text}`K:d`, and $u$ takes
# {glue:text}`n_u:d` values (the largest group of films sharing a tuple).
# Similar films share prefixes:

# %%
L = codes.shape[1] - 1
vocab = model.trie.vocab_sizes  # (V_1, ..., V_{L+1}): values per level
glue("L", L)
glue("K", vocab[0])
glue("n_u", vocab[-1])
# on ML-100K: Toy Story, the Star Wars trilogy, The Silence of the Lambs
examples = [1, 50, 172, 181, 98]
pd.DataFrame({"film": [titles[i - 1] for i in examples],
              "SID": [tuple(int(c) for c in codes[i - 1]) for i in examples]},
             index=pd.Index(examples, name="item"))

# %% [markdown]
# A recommender that scores items gives every film a number. TIGER instead
# *generates* the next film's ID, code by code, like a language model writing
# a word letter by letter. For a user with history $\mathcal{H}$, the
# probability of film $i$ with codes $(c_1, \dots, c_{L+1})$ is the product of
# one conditional per code:
#
# $$
# P(i \mid \mathcal{H}) = \prod_{l=1}^{L+1}
# P\big(c_l \mid \mathcal{H}, c_1, \dots, c_{l-1}\big).
# $$ (eq-tiger-factor)
#
# Each factor is a softmax over one level's codes, never over the catalogue:
# the output layer has $K$ rows per level (fewer for $u$) instead of $N$. The first factor
# picks a region of the catalogue, each next one narrows it, and the last
# picks one film of a tuple. In {eq}`eq-tiger-factor` the model sees the
# codes it has already generated, which is what makes generation and search
# possible, and what the rest of the chapter is about.
#
# ## Item tokens and code tokens
#
# The model is the same HSTU stack as the other models of the book
# ({doc}`chapter 05 <05_hstu>`), over two kinds of token:
#
# - one **item token** per film of the history, `film1` to `filmT`: the sum
#   of the embeddings of the film's $L + 1$ codes (the same per-level tables
#   the code tokens use), plus a position embedding;
# - one **code token** per code the model is given of the film it is
#   generating: the code's embedding plus a level and a position embedding.
#
# The hidden state of the item token of film $t$ predicts $c_1$ of film
# $t + 1$; the code token holding $c_l$ of film $t + 1$ predicts $c_{l+1}$.
# The last code is never an input, so a target needs $L$ code tokens. In
# training, every position is a target at once: the sequence is the $T$ item
# tokens followed by $T$ groups, group $t$ holding the first $L$ codes of
# film $t + 1$. `structural_mask` says who may attend to whom: an item token
# sees the item tokens up to its own position, and a code token of group $t$
# sees the item tokens up to $t$ and the earlier code tokens of its own group,
# nothing of the other groups. Here is the layout for a history of $T = 3$
# films, built as `level_logits` builds it:

# %%
T = 3
t = torch.arange(T)
slots = torch.cat([t, t.repeat_interleave(L)])  # (T (L+1),) the item each token follows
groups = torch.cat([torch.full((T,), -1), t.repeat_interleave(L)])  # -1: item token
levels = torch.cat([torch.zeros(T, dtype=torch.int64), torch.arange(L).repeat(T)])
mask = structural_mask(slots, groups, levels)  # (T (L+1), T (L+1)) True = may attend
labels = [f"film{s + 1}" if g < 0 else f"c{lv + 1}(film{s + 2})"
          for s, g, lv in zip(slots.tolist(), groups.tolist(), levels.tolist(),
                              strict=True)]
predicts = [f"c1(film{s + 2})" if g < 0 else f"c{lv + 2}(film{s + 2})"
            for s, g, lv in zip(slots.tolist(), groups.tolist(), levels.tolist(),
                                strict=True)]
pd.DataFrame({"token": labels, "predicts": predicts}).set_index("token").T

# %%
kind = mask.int().numpy().copy()  # 0 blocked
is_code = (groups >= 0).numpy()
kind[np.ix_(is_code, ~is_code)] *= 2  # code token -> item token
kind[np.ix_(is_code, is_code)] *= 3  # code token -> code token of its own group
cmap = ListedColormap(["#f2f2f2", "#6b8fc7", "#3a9a5b", "#e0a030"])
n = len(labels)
fig, ax = plt.subplots(figsize=(6.4, 5.4))
ax.imshow(kind, cmap=cmap, vmin=-0.5, vmax=3.5)
ax.set_xticks(range(n), labels, rotation=90)
ax.set_yticks(range(n), labels)
ax.set_xticks(np.arange(-0.5, n), minor=True)
ax.set_yticks(np.arange(-0.5, n), minor=True)
ax.grid(which="minor", color="white", lw=1.5)
ax.grid(which="major", visible=False)
ax.tick_params(which="minor", length=0)
ax.set(xlabel="key token (attended to)", ylabel="query token (attending)",
       title=f"TIGER's training layout, T = {T}, L = {L}")
handles = [plt.Rectangle((0, 0), 1, 1, color=cmap(i)) for i in range(4)]
ax.legend(handles, ["blocked", "item sees earlier items", "code sees the history",
                    "code sees its own group"],
          loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
plt.show()

# %% [markdown]
# Read a row of a group, say `c2(film3)`: it sees `film1` and `film2` (the
# history up to the film it follows) and `c1(film3)`, `c2(film3)`; it does
# not see `film3`, the film whose codes it generates, nor any code of another
# group. So the prediction of $c_3$ of film 3 at this token sees exactly what
# decoding will see: the history and the codes generated so far. The rule fits in two lines:

# %%
def my_structural_mask(slots, groups, levels):
    item_key = (groups < 0)[None, :] & (slots[None, :] <= slots[:, None])
    own_group = (groups[None, :] == groups[:, None]) & (groups >= 0)[None, :] \
        & (levels[None, :] <= levels[:, None])
    return item_key | own_group  # (n, n), row = query, column = key


assert torch.equal(my_structural_mask(slots, groups, levels), mask)
print("the mask equals cobra.tiger.structural_mask")

# %% [markdown]
# ## The training loss
#
# Training maximises the probability {eq}`eq-tiger-factor` of every next film
# of every training window, with the true codes fed in (teacher forcing).
# Its negative logarithm is a sum over levels, so the loss is the sum of one
# cross entropy per level, $\mathrm{CE}_l$, each averaged over the positions
# $t$ that have a next film:
#
# $$
# \ell_\text{tiger} = \sum_{l=1}^{L+1} \mathrm{CE}_l, \qquad
# \mathrm{CE}_l = \operatorname{mean}_t
# \big[-\log P(c_l \mid \mathcal{H}_{\le t}, c_1, \dots, c_{l-1})\big],
# $$ (eq-tiger-loss)
#
# where $\mathcal{H}_{\le t}$ is the history up to position $t$ and the $c_l$
# are the codes of the film at $t + 1$. Equivalently, $\ell_\text{tiger}$ is
# the mean of $-\log P(i \mid \mathcal{H})$ over the positions.
# `level_logits` gives the logits of every level at every position of a batch;
# here is the loss by hand on four real training windows, against
# `training_loss`:

# %%
windows = TrainWindows(split, config.max_seq_len)
batch = windows.__getitems__([0, 1, 2, 3])  # ids / timestamps / next_ids (B, T)
with torch.no_grad():
    loss, stats = model.training_loss(batch)
    logits = model.level_logits(batch.ids, batch.timestamps, batch.lengths,
                                batch.next_ids, batch.query_time)  # L + 1 x (B, T, V_l)
real = batch.next_ids > 0  # (B, T) positions with a next film
target_codes = model.trie.codes[batch.next_ids[real]]  # (P, L + 1) the next films'
# (P, L + 1): log P(c_l | history, c_<l) of the true code at each level
log_p = torch.stack([F.log_softmax(lg[real], dim=-1)[torch.arange(len(target_codes)),
                                                    target_codes[:, lv]]
                     for lv, lg in enumerate(logits)], dim=1)
my_loss = float(-log_p.sum(1).mean())  # mean over positions of -log P(next film)
print(f"{int(real.sum())} positions; loss by hand {my_loss:.4f}, "
      f"training_loss {float(loss):.4f}")
assert math.isclose(my_loss, float(loss), rel_tol=1e-5)
per_level = pd.DataFrame({"CE_l by hand": (-log_p).mean(0).numpy(),
                          "training_loss's ce@l": [stats[f"ce@{lv + 1}"]
                                                   for lv in range(L + 1)],
                          "log V_l (uniform guess)": np.log(vocab)},
                         index=pd.Index(range(1, L + 2), name="level l"))
close_to_uniform = bool(np.allclose(per_level.iloc[:, 0], np.log(vocab), rtol=0.1))
claim(close_to_uniform, "an untrained model's CE_l is within 10% of log V_l")
per_level.round(4)

# %% [markdown]
# An untrained model knows nothing, so each level's cross entropy is close to
# $\log V_l$, the loss of a uniform guess among the level's $V_l$ values.
#
# **Training sees what decoding sees.** At decoding time the model is run
# on the history plus the codes generated so far (the *step function* that
# `beam_search` builds). Teacher forcing must give the same logits when the
# generated codes happen to be the true ones. For the test users of one
# batch we put the target after the history as its "next film" and compare
# `level_logits` at the last position with the step function fed the target's
# first $l$ codes:

# %%
test = next(eval_batches(split, "test", config.max_seq_len, batch_size=32))
rows = torch.arange(len(test))
last = test.lengths - 1  # (B,) the last real position
next_ids = torch.zeros_like(test.ids)
next_ids[rows, last] = test.targets  # the target is the film after the history
step = model.step_function(test.ids, test.timestamps, test.lengths,
                           request_times(config, test))  # beam_search's step function
true_codes = model.trie.codes[test.targets]  # (B, L + 1)
with torch.no_grad():
    forced = model.level_logits(test.ids, test.timestamps, test.lengths, next_ids,
                                test.query_time)
    gaps = [float((forced[lv][rows, last] - step(lv, true_codes[:, None, :lv])[:, 0])
                  .abs().max()) for lv in range(L + 1)]
assert max(gaps) < 1e-5  # float rounding (different layouts add in different orders)
print(f"at each of the {L + 1} levels, teacher-forced and decoding logits agree "
      "within 1e-5")

# %% [markdown]
# The two computations lay out their tokens differently (all positions at
# once, or one group after the history) and still agree to float rounding:
# the model is trained on exactly the distribution it is asked for at
# decoding time.
#
# **A few steps of training.** The converged model takes tens of epochs
# (its numbers are at the end of the chapter). For the search we only need a
# model that prefers some codes to others, so we take a few optimiser steps
# with the preset's settings, a few seconds on two cores:

# %%
# nbval-rtol: 0.01 -- a few steps of float32 training; other CPUs round differently
STEPS = 10
torch.manual_seed(preset.train.seed)  # dropout draws from it
optimiser = torch.optim.AdamW(model.parameters(), lr=preset.train.lr,
                              betas=preset.train.betas, weight_decay=0.0)
order = epoch_order(len(windows), seed=preset.train.seed, epoch=0)
ce_per_step = []
model.train()
for step_i, b in enumerate(epoch_batches(windows, preset.train.batch_size, order)):
    if step_i == STEPS:
        break
    loss, stats = model.training_loss(b)
    optimiser.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), preset.train.grad_clip)
    optimiser.step()
    ce_per_step.append({f"CE_{lv}": stats[f"ce@{lv}"] for lv in range(1, L + 2)})
model.eval()
curve = pd.DataFrame(ce_per_step,  # fewer rows when the data has fewer batches
                     index=pd.Index(range(1, len(ce_per_step) + 1), name="step"))
fall = 1 - curve.iloc[-1] / curve.iloc[0]  # share of each level's loss gone
glue("u_fall", fall.iloc[-1])
glue("c1_fall", fall.iloc[0])
claim(fall.iloc[-1] > fall.iloc[:-1].max(), "the uniqueness code's loss falls fastest")
curve.iloc[[0, len(curve) // 2, -1]].round(3)

# %% [markdown]
# The uniqueness code's cross entropy falls fastest
# ({glue:text}`u_fall:.0%` of it is gone, against {glue:text}`c1_fall:.0%` for
# $c_1$): most films are alone in their tuple, so $u = 0$ is nearly always
# right, and that is the first thing a model learns. The other levels have
# barely started.
#
# ## The trie
#
# Most code tuples are no film. Decoding must only produce tuples that are,
# so it keeps a **trie** of the catalogue's IDs: for every prefix
# $(c_1, \dots, c_l)$ of some film, the codes that may follow it. In plain
# Python it is a dictionary from prefixes to sets of next codes (and, for the
# search below, to the films under each prefix):

# %%
children = defaultdict(set)  # prefix -> allowed next codes
films_under = defaultdict(list)  # prefix -> the films whose ID starts with it
for item, row in enumerate(codes.tolist(), start=1):
    for depth in range(L + 2):
        films_under[tuple(row[:depth])].append(item)
        if depth <= L:
            children[tuple(row[:depth])].add(row[depth])
per_depth = [sum(len(p) == d for p in films_under) for d in range(L + 2)]
print("distinct prefixes per depth 0..L+1:", per_depth)

# %% [markdown]
# The package's `SIDTrie` stores the same thing as one dense table per level
# (node by code, the child node or -1), so a whole batch of beams is masked
# with one gather. Both must agree on every prefix, valid or not:

# %%
trie = SIDTrie(codes)
assert list(trie.num_nodes) == per_depth
gen = np.random.default_rng(0)
for depth in range(L + 1):
    valid = [p for p in films_under if len(p) == depth]
    picked = [valid[j] for j in gen.choice(len(valid), size=min(50, len(valid)),
                                           replace=False)]
    # and 50 random tuples, mostly no prefix of any film
    picked += [tuple(int(gen.integers(vocab[lv])) for lv in range(depth))
               for _ in range(50)]
    prefixes = torch.tensor(picked, dtype=torch.int64).view(len(picked), depth)
    mask_rows = trie.allowed_next(prefixes)  # (R, V_depth) bool
    nodes = trie.walk(prefixes)  # (R,) node, -1 if not a prefix
    for p, row, node in zip(picked, mask_rows, nodes, strict=True):
        assert set(torch.nonzero(row).flatten().tolist()) == children.get(p, set())
        assert (int(node) >= 0) == (p in films_under)
films = torch.as_tensor(codes)  # (N, L + 1) every full ID
assert torch.equal(trie.lookup(films), torch.arange(1, len(films) + 1))
print("allowed next codes, valid prefixes and full IDs equal cobra.trie.SIDTrie's")

# %% [markdown]
# How bushy is it? The number of children of a node is the number of codes
# the search may choose at that point:

# %%
branching = [[len(children[p]) for p in films_under if len(p) == d]
             for d in range(1, L + 1)]  # below the root, which allows every first code
fig, axes = plt.subplots(1, L, figsize=(10, 2.8))
for d, (ax, counts) in enumerate(zip(axes, branching, strict=True), start=2):
    values, freq = np.unique(counts, return_counts=True)
    ax.bar(values, freq, color=f"C{d - 2}")
    ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
    ax.set(title=f"choosing c{d} (mean {np.mean(counts):.1f})",
           xlabel="allowed codes", ylabel="prefixes" if d == 2 else None)
fig.suptitle(f"Children per trie node (the root allows all {len(children[()])} "
             "first codes)", y=1.04)
plt.show()
possible = math.prod(vocab)
glue("n_possible", possible)
glue("share_films", len(films) / possible)
share_l_tuples = glue("share_l_tuples", per_depth[L] / math.prod(vocab[:L]))

# %% [markdown]
# Every first code is used, but each level below allows fewer codes per
# prefix: of the $K^L$ tuples $(c_1, \dots, c_L)$ only
# {glue:text}`share_l_tuples:.1%` name a film, and of the
# {glue:text}`n_possible:,d` words of $L + 1$ codes only
# {glue:text}`share_films:.2%` are films. Most choosing of the last code is
# trivial (one child: $u = 0$).
#
# ## Constrained beam search, from scratch
#
# To recommend, we want the films of highest $P(i \mid \mathcal{H})$. Scoring
# all $N$ words would take the model's conditional at every node of the trie;
# **beam search** keeps only the $M$ best prefixes at each level instead:
#
# 1. start from the empty prefix, score $0$;
# 2. at level $l$, run the model once per kept prefix, take
#    $\log \mathrm{softmax}$ of its logits and add the log-probability of each
#    next code to the prefix's score (the logarithm of {eq}`eq-tiger-factor`,
#    accumulated);
# 3. allow only codes the trie allows, and only those under which some film
#    is left that the user has not already seen;
# 4. keep the $M$ best of all extensions and repeat; after the last level
#    each kept word is a film, its score its log-probability.
#
# The trie removes candidates, it does not renormalise: the score is the
# log-probability under the model's softmax over the *whole* level
# vocabulary. Written for one user with Python loops, as a reading aid:

# %%
def my_beam_search(step, beam_width, seen=frozenset(), constrained=True):
    """step(level, prefixes (1, m, level)) -> (1, m, V_level) logits, for one user."""
    beams = [((), 0.0)]  # (prefix, summed log-probability)
    for level in range(L + 1):
        prefixes = torch.tensor([p for p, _ in beams], dtype=torch.int64)
        logits = step(level, prefixes.view(1, len(beams), level))[0]  # (m, V)
        log_p = torch.log_softmax(logits.float(), dim=-1)  # (m, V)
        candidates = []
        for (prefix, score), row in zip(beams, log_p, strict=True):
            allowed = range(len(row))
            if constrained:  # a real prefix, with an unseen film under it
                allowed = [c for c in sorted(children[prefix])
                           if any(i not in seen for i in films_under[prefix + (c,)])]
            candidates += [(prefix + (c,), score + row[c]) for c in allowed]
        candidates.sort(key=lambda beam: -float(beam[1]))
        beams = candidates[:beam_width]
    return beams


# %% [markdown]
# The step function is the one the package's search calls
# (`TigerRecommender.step_function`, which `beam_search` builds for a batch),
# here for one user's history at a time. Our search and
# `TigerRecommender.beam_search` (batched,
# one tensor gather per level, `cobra.trie.constrained_beam_search`) must
# return the same films with the same scores:

# %%
M = config.beam_width
seen_sets = [frozenset(torch.nonzero(row).flatten().tolist())
             for row in test.excluded(config.num_items)]  # the whole history


def user_step(u):
    """The step function of row u of the test batch, alone."""
    one = slice(u, u + 1)
    return model.step_function(test.ids[one], test.timestamps[one], test.lengths[one],
                               test.query_time[one])


with torch.no_grad():
    package = model.beam_search(test)  # items, scores (B, M), codes (B, M, L + 1)
    mine = [my_beam_search(user_step(u), M, seen_sets[u]) for u in range(8)]
for u, beams in enumerate(mine):
    assert [films_under[p][0] for p, _ in beams] == package.items[u].tolist()
    assert torch.allclose(torch.tensor([float(s) for _, s in beams]),
                          package.scores[u], atol=1e-5)
print(f"8 users x {M} beams: same films, same scores as TigerRecommender.beam_search")

# %% [markdown]
# The beams of the first test user, best first (a model of a few training
# steps: not yet good recommendations, but real films the user has not seen):

# %%
# nbval-rtol: 0.01 -- a few steps of float32 training; other CPUs round differently
user = 0
pd.DataFrame({"SID": [tuple(int(c) for c in row) for row in package.codes[user, :5]],
              "film": [titles[int(i) - 1] for i in package.items[user, :5]],
              "log P": package.scores[user, :5].numpy().round(4)},
             index=pd.Index(range(1, 6), name="beam"))

# %% [markdown]
# **Without the trie.** Drop the constraint and let every code of every level
# compete. The model has seen only real IDs in training, yet nothing in its
# softmax forbids a tuple that is no film:

# %%
# nbval-rtol: 0.01 -- a few steps of float32 training; other CPUs round differently
n_users = 16
with torch.no_grad():
    free = [my_beam_search(user_step(u), M, constrained=False) for u in range(n_users)]
invalid = sum(p not in films_under for beams in free for p, _ in beams)
top_invalid = sum(beams[0][0] not in films_under for beams in free)  # best beam
share_invalid = glue("share_invalid", invalid / (n_users * M))
glue("top_invalid", top_invalid / n_users)
print(f"unconstrained: {share_invalid:.3f} of {n_users} x {M} beams name no film")
claim(share_invalid > 0.25, "a large share of unconstrained beams name no film")

# %% [markdown]
# Unconstrained, {glue:text}`share_invalid:.0%` of the beams are words that
# name no film (and the best beam is no film for
# {glue:text}`top_invalid:.0%` of the users): each code is plausible given the
# ones before it, but the combination does not exist. A converged model puts
# less weight there, but nothing makes it zero, and a slot spent on a
# non-film is a slot lost. The trie makes every beam a real film.
#
# **Seen films are removed inside the search.** The evaluator ranks only
# films the user has not rated before ({doc}`chapter 01 <01_data>`). If the
# search ignored that and dropped seen films at the end, every seen film in
# the beam would leave a hole. So a prefix all of whose films the user has
# seen is forbidden at every level, before the cut to $M$ (`SIDTrie.live_nodes`
# in the package, the `any(...)` test in `my_beam_search`). With
# `exclude_history=False` the package's search shows what would be lost:

# %%
# nbval-rtol: 0.01 -- a few steps of float32 training; other CPUs round differently
excluded = test.excluded(config.num_items)  # (B, N + 1) the whole history
with torch.no_grad():
    loose = model.beam_search(test, exclude_history=False)
seen_share = glue("seen_share", float(excluded.gather(1, loose.items).float().mean()))
assert not bool(excluded.gather(1, package.items).any())
print(f"without exclusion {seen_share:.3f} of the beams are films the user has seen; "
      "with it, none")
claim(seen_share > 0.05, "many beams are seen films without exclusion")

# %% [markdown]
# Without the exclusion {glue:text}`seen_share:.0%` of the beams would be
# films the user has already rated: popular films, which every user has seen
# many of.
#
# ## What a beam gives the evaluator
#
# TIGER scores $M$ films per user, not $N$. `TigerRecommender.score` gives the
# beam's films their log-probabilities and every other film $-\infty$; the
# evaluator breaks ties uniformly at random, in expectation
# ({doc}`chapter 01 <01_data>`). A target outside the beam is therefore
# ranked uniformly among all the films outside it: with $n$ candidates
# (films not seen before, the target included), its HR@$k$ for $k > M$ is
# $(k - M) / (n - M)$, a random guess over the rest of the catalogue:

# %%
# nbval-rtol: 0.01 -- a few steps of float32 training; other CPUs round differently
with torch.no_grad():
    scores = model.score(test)  # (B, N + 1)
finite = torch.isfinite(scores).sum(1)  # (B,)
assert bool((finite == M).all())
metrics = rank_metrics(scores, test.targets, test.exclude)  # (B,) per user
candidates = (~excluded[:, 1:]).sum(1) + excluded[rows, test.targets].long()  # (B,)
outside = ~(package.items == test.targets[:, None]).any(1)  # target not in the beam
for k in (50, 200):
    guess = (k - M) / (candidates - M)
    assert torch.allclose(metrics[f"hr@{k}"][outside], guess[outside].double())
glue("n_tied", config.num_items - M)
print(f"{int(finite[0])} finite scores per user, {config.num_items - M} tied at -inf;")
hr = {k: float(metrics[f"hr@{k}"].mean()) for k in (10, 50, 200)}
print(f"share of targets in the beam {float((~outside).float().mean()):.3f}; HR@k: "
      + ", ".join(f"@{k} {v:.3f}" for k, v in hr.items()))

# %% [markdown]
# Beyond $M$, HR@$k$ grows only by that random guess: the other
# {glue:text}`n_tied:,d` films tie at $-\infty$, and the model has no say in
# their order. Comparisons at cut-offs above $M$ measure the beam width and
# the size of the catalogue more than the model; HR@10 and NDCG@10, with $M$
# above 10, are fair. Trained to convergence under the
# book's common recipe (five seeds, early stopping on validation), TIGER
# reaches:

# %%
quality = load_result("bench_quality")
tiger_runs = quality["models"]["tiger-cpu"]
METRICS = ("hr@10", "ndcg@10")
tiger_cells = {m: f"{tiger_runs[m + '_mean']:.4f} ± {tiger_runs[m + '_std']:.4f}"
               for m in METRICS}  # mean ± std over the five seeds
table = pd.DataFrame({"TIGER (tiger-cpu)": tiger_cells,
                      "popular": {m: f"{quality['popular'][m]:.4f}" for m in METRICS}})
glue("tiger_ndcg", tiger_runs["ndcg@10_mean"])
glue("popular_ndcg", quality["popular"]["ndcg@10"])
glue("tiger_epochs", float(np.mean([r["best_epoch"] for r in tiger_runs["runs"]])))
claim(tiger_runs["ndcg@10_mean"] > quality["popular"]["ndcg@10"],
      "converged TIGER beats popular")
table.rename_axis("test metric")

# %% [markdown]
# Converged TIGER (best validation after {glue:text}`tiger_epochs:.0f` epochs
# on average) reaches test NDCG@10 {glue:text}`tiger_ndcg:.3f`, against
# {glue:text}`popular_ndcg:.3f` for `popular`. How it compares with the
# models that score every film, and with COBRA, is the subject of
# {doc}`chapter 11 <11_experiments>`.
#
# ## Summary
#
# - TIGER generates a film's semantic ID code by code; the probability of a
#   film is the product of one softmax per code {eq}`eq-tiger-factor`, each
#   over $K$ values, never over the catalogue.
# - The model reads one item token per film of the history and one code token
#   per generated code; in training, all positions are targets at once, and
#   `structural_mask` lets each code token see only the history up to its
#   film and the earlier codes of its own film, so teacher-forced logits equal
#   the logits of decoding.
# - The loss is the sum of the levels' cross entropies {eq}`eq-tiger-loss`,
#   the mean negative log-probability of the next film.
# - A trie of the catalogue's IDs (prefix to allowed next codes) keeps the
#   beam search on real films; without it a large share of beams name no
#   film. Seen films are removed inside the search, prefix by prefix.
# - Beam search keeps the $M$ best prefixes per level, ranked by summed
#   log-probabilities; only those $M$ films get a score, the rest tie, so
#   metrics at cut-offs above $M$ are close to a random guess.
#
# ## Exercises
#
# Each exercise says how long it takes on the `cpu` profile. Those with one
# right answer end with a check: `check("07.1", your_answer)` prints whether
# it is right, with a hint if not. Solutions are folded below each exercise
# (click to open); try first.
#
# ```{exercise}
# :label: ex-07-1
#
# How many distinct tuples $(c_1, \dots, c_L)$ do the films use, and what
# share of all the words of $L + 1$ codes (each level with its own number of
# values, `trie.vocab_sizes`) are films? Use the from-scratch trie, not
# `SIDTrie`. *About a second.* Check: `check("07.1", (n_tuples,
# share_valid))`.
# ```

# %% [markdown] tags=["solution"]
# ````{solution-start} ex-07-1
# :class: dropdown
# ````

# %% tags=["solution"]
n_tuples = sum(len(p) == L for p in films_under)
share_valid = sum(len(p) == L + 1 for p in films_under) / math.prod(vocab)
print(f"{n_tuples} tuples of L = {L} codes; {share_valid:.4%} of all words are films")
check("07.1", (n_tuples, share_valid))

# %% [markdown] tags=["solution"]
# A uniformly random word is a film about once in a hundred tries; the
# trie's job is to make that every time.
#
# ````{solution-end}
# ````

# %% [markdown]
# ```{exercise}
# :label: ex-07-2
#
# How many films share the first code of *Star Wars* (item 50), its first two
# codes, and so on down to its whole ID? *About a second.* Check:
# `check("07.2", counts)`, a tuple of $L + 1$ counts, depth 1 first.
# ```

# %% [markdown] tags=["solution"]
# ````{solution-start} ex-07-2
# :class: dropdown
# ````

# %% tags=["solution"]
star_wars = tuple(int(c) for c in codes[50 - 1])
counts = tuple(len(films_under[star_wars[:d]]) for d in range(1, L + 2))
print(f"{titles[50 - 1]} {star_wars}: films under each prefix {counts}")
check("07.2", counts)

# %% [markdown] tags=["solution"]
# The count shrinks level by level, about $K$ times at first and less below,
# and the whole ID names one film, as the uniqueness code guarantees. Each
# level of the search therefore cuts the candidates by a large factor.
#
# ````{solution-end}
# ````

# %% [markdown]
# ```{exercise}
# :label: ex-07-3
#
# History exclusion works on prefixes. For the first user of the test batch,
# how many prefixes of depth $1, \dots, L$ are *dead*, every film under them
# already seen? Use `films_under` and the user's `seen_sets[0]`; then get the
# same counts from `trie.live_nodes(excluded[:1], level)`, the package's
# version (nodes at depth `level + 1`). *About a second.* Check:
# `check("07.3", dead)`, a tuple of $L$ counts, depth 1 first.
# ```

# %% [markdown] tags=["solution"]
# ````{solution-start} ex-07-3
# :class: dropdown
# ````

# %% tags=["solution"]
dead = tuple(sum(len(p) == d and all(i in seen_sets[0] for i in under)
                 for p, under in films_under.items()) for d in range(1, L + 1))
package_dead = tuple(int((~trie.live_nodes(excluded[:1], lv)).sum()) for lv in range(L))
print(f"user {int(test.users[0])} has seen {len(seen_sets[0])} films; "
      f"dead prefixes at depth 1..{L}: {dead}")
assert dead == package_dead
check("07.3", dead)

# %% [markdown] tags=["solution"]
# Whole regions high in the trie are rarely dead, but small groups deep down
# often are, for a user with a long history. Dropping them before the cut
# keeps every beam slot for a film the evaluator will rank.
#
# ````{solution-end}
# ````

# %% [markdown]
# ```{exercise}
# :label: ex-07-4
#
# Beam search is a heuristic: a film can have a high probability and still be
# lost, if one of its prefixes fell out of the beam early. Search exactly
# (`model.beam_search(batch, beam_width=config.num_items)`: with $M \ge N$
# every valid prefix survives) and compare with the beam of width $M$ for the
# first 8 test users. Of the exact top $M$ films of each user, how many does
# the beam of width $M$ find? *A few seconds.* An open question: the
# solution prints the share, and where the targets rank in the exact search.
# ```

# %% [markdown] tags=["solution"]
# ````{solution-start} ex-07-4
# :class: dropdown
# ````

# %% tags=["solution"]
# nbval-rtol: 0.01 -- a few steps of float32 training; other CPUs round differently
first8 = next(eval_batches(split, "test", config.max_seq_len, batch_size=8))
with torch.no_grad():
    exact = model.beam_search(first8, beam_width=config.num_items)  # (8, N) all films
found = [len(set(exact.items[u, :M].tolist()) & set(package.items[u].tolist())) / M
         for u in range(len(first8))]
target_rank = (exact.items == first8.targets[:, None]).float().argmax(1)  # 0-based
print(f"the beam of width {M} finds {np.mean(found):.3f} of the exact top {M}")
print(f"targets: median exact rank {float(target_rank.float().median()):.1f} of "
      f"{config.num_items}; share in the exact top {M}: "
      f"{float((target_rank < M).float().mean()):.3f}")

# %% [markdown] tags=["solution"]
# The beam finds a good part, not all, of the exact top $M$: a film whose first
# code has a modest probability but whose later codes are nearly certain is
# cut at the first level. Exact search costs a pass over the whole trie
# (here cheap, since $N$ is small); on a large catalogue the beam is the only
# option, and a wider beam trades time for fewer search errors.
#
# ````{solution-end}
# ````

# %% [markdown]
# ```{exercise}
# :label: ex-07-5
#
# The package scores a beam with the softmax over the whole level
# vocabulary, and the trie only removes codes. Change `my_beam_search` to
# renormalise the softmax over the allowed codes at each step (set the
# forbidden logits to $-\infty$ before the `log_softmax`). Then the
# probabilities of the films sum to one. Does it change the top 10 films of
# the first 8 test users? *A few seconds.* An open question: the solution
# prints the overlap of the two top-10 lists.
# ```

# %% [markdown] tags=["solution"]
# ````{solution-start} ex-07-5
# :class: dropdown
# ````

# %% tags=["solution"]
# nbval-rtol: 0.01 -- a few steps of float32 training; other CPUs round differently
def renormalised_step(step, seen):
    """Wrap a step function: logits of forbidden codes set to -inf."""
    def wrapped(level, prefixes):
        logits = step(level, prefixes).clone()  # (1, m, V)
        for b, prefix in enumerate(prefixes[0].tolist()):
            ok = [c for c in children[tuple(prefix)]
                  if any(i not in seen for i in films_under[tuple(prefix) + (c,)])]
            forbidden = torch.ones(logits.shape[-1], dtype=torch.bool)
            forbidden[ok] = False
            logits[0, b, forbidden] = float("-inf")
        return logits
    return wrapped


overlap = []
with torch.no_grad():
    for u in range(8):
        plain = {films_under[p][0] for p, _ in mine[u][:10]}
        renorm = my_beam_search(renormalised_step(user_step(u), seen_sets[u]), M,
                                seen_sets[u])
        overlap.append(len(plain & {films_under[p][0] for p, _ in renorm[:10]}) / 10)
print(f"top-10 overlap, plain vs renormalised scores: mean {np.mean(overlap):.2f} "
      f"(from {min(overlap):.1f} to {max(overlap):.1f})")

# %% [markdown] tags=["solution"]
# The lists overlap only in part. Renormalising raises every prefix
# whose allowed children the model likes little: if the model gives a
# prefix's only film a small probability next to codes that do not exist
# there, renormalising makes that film nearly certain given the prefix. That
# favours sparse regions of the trie for a reason that has nothing to do with
# the user. The unrenormalised score keeps the model's own doubt and is the
# one the package uses. The more mass a model puts on codes the trie
# forbids, the more the two rankings differ.
#
# ````{solution-end}
# ````
