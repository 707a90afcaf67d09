"""Checks for the chapters' exercises: ``check("01.1", answer)`` says right or not yet, with a hint.

Every exercise in the book has a key ``"NN.k"`` (chapter ``NN``, exercise ``k``). An exercise with one
right answer has an :class:`Exercise` here: its ``solve`` computes that answer with the package, from the
same data the chapter uses (nothing is typed in), and :func:`check` compares a student's answer with it
(:func:`is_right` does the same without printing). Open-ended exercises (a design, a plot, a comparison)
have no check; their solutions in the book print what a good answer is compared with.

In a chapter, the exercise text names its key; the solution (folded in the HTML, left out of the student
edition, see :func:`cobra.book.student_edition`) ends with the same ``check`` call, so the test suite runs
every solution through its check, and checks a wrong answer fails it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np

from cobra.config import PROFILES

CPU = PROFILES["cpu"]  # the profile the book's outputs and these answers are for


@dataclass(frozen=True)
class Exercise:
    """One checkable exercise.

    Attributes:
        key: ``"NN.k"``.
        solve: computes the right answer (a number or a tuple of numbers).
        hint: what to look at when the answer is wrong.
        rel_tol: relative tolerance for floats (0 for counts).
    """

    key: str
    solve: Callable[[], Any]
    hint: str
    rel_tol: float = 0.0


# Chapter 00: introduction


def _commands() -> tuple[str, ...]:
    """The subcommands of ``python -m cobra``, sorted."""
    from cobra.cli import COMMANDS

    return tuple(sorted(COMMANDS))


def _profile_changes() -> int:
    """How many settings of the ``cpu`` profile the ``4090d`` profile changes."""
    cpu, big = vars(PROFILES["cpu"]), vars(PROFILES["4090d"])
    return sum(cpu[k] != big[k] for k in cpu)


# Chapter 01: MovieLens as sequences


@cache
def _split():
    from cobra.data import load_split

    return load_split("ml-100k")


def _users_below(n: int) -> int:
    """Users with fewer than ``n`` ratings in MovieLens-100K."""
    return int((_split().sequences.lengths < n).sum())


def _popular_without_filter() -> float:
    """Test HR@10 of ``popular`` when the user's history stays in the ranking."""
    from cobra.data import eval_batches
    from cobra.metrics import BASELINES, rank_metrics

    split = _split()
    recommender = BASELINES["popular"](split, 0)
    hits, users = 0.0, 0
    for batch in eval_batches(split, "test", 50, 512):
        scores = recommender.score(batch)  # (B, N+1)
        hits += float(rank_metrics(scores, batch.targets, None)["hr@10"].sum())
        users += len(batch)
    return hits / users


def _constant_hr10() -> float:
    """Test HR@10 of a recommender that gives every film the same score (the tie rule of chapter 01)."""
    import torch

    from cobra.metrics import Evaluator

    class Constant:
        def score(self, batch):
            return torch.zeros(len(batch), _split().num_items + 1)

    return float(Evaluator(_split(), "test", 50, 512, progress=False).evaluate(Constant())["hr@10"])


# Chapter 02: items as vectors


@cache
def _items():
    from cobra.datasets import load_dataset

    return load_dataset(CPU.dataset).items


def _vectors(encoder: str = CPU.encoder, items=None) -> np.ndarray:
    """The catalogue's ``(N, D)`` vectors under ``encoder``; of ``items``' texts when given (cached on disk)."""
    from cobra.text import embed_items

    return embed_items(CPU.dataset, encoder, items=items, progress=False).vectors


def _neighbours(vectors: np.ndarray, k: int = 10) -> np.ndarray:
    """``(N, k)``: each row's ``k`` nearest rows by cosine, ranked as :func:`cobra.text.nearest` ranks."""
    v = vectors.astype(np.float64)
    sims = v @ v.T  # (N, N)
    np.fill_diagonal(sims, -np.inf)
    return np.argsort(-sims, axis=1, kind="stable")[:, :k]


def _overlap_without_year() -> float:
    """Mean share of a film's 10 nearest neighbours that stay when the year leaves its text."""
    with_year, without = _neighbours(_vectors()), _neighbours(_vectors(items=_items().assign(year=None)))
    return float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(with_year, without, strict=True)]))


def _closest_different_texts() -> float:
    """The highest cosine between two films whose texts differ."""
    from cobra.text import item_texts

    texts = np.array(item_texts(_items()))
    v = _vectors().astype(np.float64)
    sims = v @ v.T  # (N, N)
    sims[texts[:, None] == texts[None, :]] = -np.inf
    return float(sims.max())


def _genre_sharing_neighbours() -> float:
    """Mean over films of how many of its 10 nearest neighbours share a genre with it."""
    genres = [set(g.split("|")) - {""} for g in _items()["genres"]]
    return float(np.mean([sum(bool(genres[i] & genres[j]) for j in row)
                          for i, row in enumerate(_neighbours(_vectors()))]))


# Chapter 03: semantic IDs


def _unit_vectors():
    """The chapter's ``x``: the vectors as a unit-row ``(N, D)`` float32 tensor."""
    import torch

    return torch.nn.functional.normalize(torch.from_numpy(_vectors()), dim=1)


@cache
def _sids(method: str = "balanced", levels: int = CPU.sid_levels, codes: int = CPU.sid_codes,
          encoder: str = CPU.encoder):
    """Semantic IDs fitted as the chapters fit them (seed 0, default tolerance), kept for the next check."""
    from cobra.sid import SIDConfig, fit_semantic_ids

    return fit_semantic_ids(_vectors(encoder), SIDConfig(levels=levels, codes=codes, method=method, seed=0))


def _colliding(codes: np.ndarray) -> int:
    """Films whose tuple (a row of ``codes``) another film also has."""
    _, group, size = np.unique(codes, axis=0, return_inverse=True, return_counts=True)
    return int((size[group.reshape(-1)] > 1).sum())


def _inertia_range() -> tuple[float, float]:
    """Smallest and largest level-1 k-means inertia over seeds 0 to 4 (``kmeans`` gives the chapter's
    ``lloyd`` codes)."""
    from cobra.sid import kmeans

    x, inertias = _unit_vectors(), []
    for seed in range(5):
        res = kmeans(x, CPU.sid_codes, seed=seed)
        inertias.append(float(((x.double() - res.centroids.double()[res.labels]) ** 2).sum()))
    return min(inertias), max(inertias)


def _moved_by_balancing() -> tuple[int, int]:
    """Films not in their nearest centroid's level-1 cluster under balanced k-means, at tolerance 0 and 0.1."""
    import torch

    from cobra.sid import balanced_kmeans

    x, moved = _unit_vectors(), []
    x64 = x.double()
    for tolerance in (0.0, 0.1):
        res = balanced_kmeans(x, CPU.sid_codes, generator=torch.Generator().manual_seed(0), tolerance=tolerance)
        c64 = res.centroids.double()
        dist = (x64 * x64).sum(1, keepdim=True) - 2 * x64 @ c64.T + (c64 * c64).sum(1)  # (N, K), as lloyd
        moved.append(int((dist.argmin(1) != res.labels).sum()))
    return moved[0], moved[1]


def _collisions_at_256() -> tuple[int, int]:
    """Films sharing their balanced tuple with another film at K = 256, for L = 3 and L = 2."""
    return tuple(_colliding(_sids(levels=levels, codes=256).codes[:, :levels]) for levels in (3, 2))


@cache
def _encoder():
    from cobra.text import get_encoder

    return get_encoder(CPU.encoder)


def _new_film_sid() -> tuple[int, ...]:
    """The balanced SID (without the uniqueness code) of a film that is not in the catalogue."""
    from cobra.text import item_text

    text = item_text({"title": "Toy Story 3", "year": 2010, "genres": "Animation|Children's|Comedy"})
    new = _encoder().encode([text], progress=False)  # (1, D)
    return tuple(int(c) for c in _sids().quantizer.encode(new)[0])


# Chapter 04: how good are the semantic IDs?


def _report(method: str = "balanced", levels: int = CPU.sid_levels, encoder: str = CPU.encoder) -> dict:
    from cobra.sid_metrics import sid_report

    return sid_report(_vectors(encoder), _sids(method, levels, CPU.sid_codes, encoder))


def _fourth_level() -> tuple[float, float]:
    """At L = 4: the balanced full-tuple collision rate and plain k-means' level-4 entropy."""
    return (_report("balanced", 4)["collision_rate"][-1],
            _report("kmeans", 4)["per_level"][-1]["entropy"])


def _shared_tuples() -> float:
    """Share of the distinct balanced full tuples that more than one film has."""
    _, films_per_tuple = np.unique(_sids().codes[:, :CPU.sid_levels], axis=0, return_counts=True)
    return float((films_per_tuple > 1).mean())


# Chapter 05: HSTU


def _tune_gap() -> float:
    """HSTU's best validation NDCG@10 on the committed tuning grid minus SASRec's."""
    from cobra.book import load_result

    models = load_result("tune_cpu")["models"]
    best = [max(p["valid_ndcg@10"] for p in models[f"{m}-{CPU.name}"]["points"]) for m in ("hstu", "sasrec")]
    return best[0] - best[1]


def _backbone_parameters() -> tuple[int, int, int]:
    """Backbone parameters of HSTU, of SASRec (feed-forward width 4D) and of SASRec with width D."""
    import dataclasses

    import torch

    from cobra.models import SequentialRecommender
    from cobra.presets import get_preset

    def count(name: str, overrides: dict | None = None) -> int:
        config = dataclasses.replace(get_preset(name, overrides).model, num_items=len(_items()))
        with torch.random.fork_rng():
            return sum(p.numel() for p in SequentialRecommender(config).backbone.parameters())

    dim = get_preset(f"sasrec-{CPU.name}").model.dim
    return (count(f"hstu-{CPU.name}"), count(f"sasrec-{CPU.name}"),
            count(f"sasrec-{CPU.name}", {"model.ffn_dim": dim}))


def _request_time_users() -> int:
    """Test users with a time bucket of the last query row that changes when ``request_time`` is off."""
    import torch

    from cobra.data import eval_batches
    from cobra.hstu import time_bucket, valid_mask
    from cobra.presets import get_preset

    changed = 0
    for b in eval_batches(_split(), "test", get_preset(f"hstu-{CPU.name}").model.max_seq_len, 512):
        own = b.timestamps[torch.arange(len(b)), b.lengths - 1]  # (B,) the last event's own time
        moved = time_bucket(b.query_time[:, None] - b.timestamps) != time_bucket(own[:, None] - b.timestamps)
        changed += int((moved & valid_mask(b.lengths, b.ids.shape[1])).any(dim=1).sum())
    return changed


def _users_cut() -> tuple[int, int]:
    """Test users whose history is longer than the preset's max_seq_len, and longer than 200 events."""
    from cobra.presets import get_preset

    lengths = _split().history("test").lengths
    return int((lengths > get_preset(f"hstu-{CPU.name}").model.max_seq_len).sum()), int((lengths > 200).sum())


def _softmax_block_change() -> float:
    """Largest change of the chapter's by-hand HSTU block output (real positions) with a softmax for SiLU / n."""
    import torch
    import torch.nn.functional as F

    from cobra.hstu import HSTUBlock, allowed_attention, next_timestamps, time_bucket, valid_mask

    B, T, D, H = 2, 8, 16, 2
    with torch.random.fork_rng():  # the chapter's block, batch and times
        torch.manual_seed(0)
        block = HSTUBlock(D, num_heads=H, dropout=0.0, max_seq_len=T).eval()
        x = torch.randn(B, T, D)  # (B, T, D)
        lengths = torch.tensor([8, 5])
        timestamps = (880_000_000 + torch.randint(0, 100_000, (B, T)).cumsum(1)) * valid_mask(lengths, T)
    allowed = allowed_attention(lengths, T)  # (B, T, T)
    with torch.no_grad():
        package = block(x, timestamps, lengths, allowed)
        u, v, q, k = torch.split(F.silu(F.layer_norm(x, (D,), eps=1e-6) @ block.uvqk.weight.T), block.widths, -1)
        q, k, v = (t.reshape(B, T, H, -1) for t in (q, k, v))  # (B, T, H, D/H)
        rel = torch.arange(T).view(1, T) - torch.arange(T).view(T, 1)  # (T, T) j - i
        query_time = next_timestamps(timestamps, lengths)  # (B, T)
        bias = (block.rel_bias.pos_weight[rel + T - 1]
                + block.rel_bias.time_weight[time_bucket(query_time[:, :, None] - timestamps[:, None, :])])
        z = torch.einsum("bihd,bjhd->bhij", q, k) + bias[:, None]  # (B, H, T, T)
        attn = torch.softmax(z.masked_fill(~allowed[:, None], float("-inf")), dim=-1)
        av = torch.einsum("bhij,bjhd->bihd", attn, v).reshape(B, T, D)  # (B, T, D)
        out = x + block.out(u * F.layer_norm(av, (D,), eps=1e-6))
    return float((out - package).abs().amax(dim=-1)[valid_mask(lengths, T)].max())


# Chapter 06: PrefixN


@cache
def _prefixn_codes() -> tuple[np.ndarray, int]:
    """The codes the ``hstu-sid`` preset trains with, (N, L + 1), and its hash table size."""
    from cobra.inputs import semantic_ids, sid_config_of
    from cobra.presets import get_preset

    preset = get_preset(f"hstu-sid-{CPU.name}")
    return semantic_ids(preset.dataset, preset.encoder, sid_config_of(preset)), preset.model.sid_table_size


def _murmur_collisions() -> tuple[int, int]:
    """Level-1 prefixes, and prefixes in all, sharing their row with another prefix when ``tuple_hash`` ends with
    MurmurHash3's 32-bit finaliser."""
    from collections import Counter

    codes, table_size = _prefixn_codes()

    def row(key: tuple[int, ...]) -> int:
        h = 0
        for x in key:
            h = (h * 1_000_003 + x + 1) % (2**31 - 1)
        h ^= h >> 16
        h = h * 0x85EBCA6B % 2**32
        h ^= h >> 13
        h = h * 0xC2B2AE35 % 2**32
        h ^= h >> 16
        return h % table_size + 1

    rows = {key: row(key) for key in {(length, *c[:length]) for c in codes.tolist()
                                      for length in range(1, codes.shape[1] + 1)}}
    keys_in_row = Counter(rows.values())
    collided = [key for key, r in rows.items() if keys_in_row[r] > 1]
    return sum(key[0] == 1 for key in collided), len(collided)


def _indistinguishable_without_u() -> int:
    """Films whose PrefixN rows without the uniqueness column equal another film's."""
    from cobra.embeddings import PrefixNEmbedding

    codes, table_size = _prefixn_codes()
    rows = PrefixNEmbedding(codes, dim=1, table_size=table_size, levels=codes.shape[1] - 1).rows[1:]
    return _colliding(rows.numpy())


def _films_with_own_row() -> tuple[int, int, int]:
    """Films with a table row no other film uses, under ``prefixN``, ``ngram`` and ``rqsum``."""
    from collections import Counter

    from cobra.embeddings import build_item_embedding

    codes, table_size = _prefixn_codes()
    own = []
    for kind in ("prefixN", "ngram", "rqsum"):
        films = build_item_embedding(kind, len(codes), 1, codes, table_size=table_size).rows[1:].tolist()
        films_of_row = Counter(r for film in films for r in set(film))
        own.append(sum(any(films_of_row[r] == 1 for r in film) for film in films))
    return own[0], own[1], own[2]


def _tail_and_head_gain() -> tuple[int, float, float]:
    """Test users whose target has fewer than 20 training ratings, and the mean per-user test NDCG@10 of
    ``hstu-sid-cpu`` minus ``hstu-cpu`` (committed benchmark) in that tail and in the head."""
    from cobra.book import load_result

    models = load_result("bench_quality")["models"]
    split = _split()
    _, targets = split.targets("test")
    tail = np.bincount(split.train.items, minlength=split.num_items + 1)[targets] < 20  # (M,)
    gain = (np.asarray(models[f"hstu-sid-{CPU.name}"]["per_user_ndcg@10"])
            - np.asarray(models[f"hstu-{CPU.name}"]["per_user_ndcg@10"]))  # (M,)
    return int(tail.sum()), float(gain[tail].mean()), float(gain[~tail].mean())


# Chapter 08: interleaving sparse and dense tokens


@cache
def _cobra_model():
    """The chapter's untrained ``CobraRecommender`` (D = 64), in eval mode."""
    import torch

    from cobra.cobra_model import CobraConfig, CobraRecommender
    from cobra.inputs import semantic_ids
    from cobra.sid import SIDConfig

    codes = semantic_ids(CPU.dataset, CPU.encoder, SIDConfig(levels=CPU.sid_levels, codes=CPU.sid_codes))
    config = CobraConfig(num_items=len(_items()), dim=64, max_seq_len=CPU.max_seq_len)
    with torch.random.fork_rng():  # fresh weights without touching the caller's random state
        torch.manual_seed(CPU.seed)
        return CobraRecommender(config, codes, _vectors()).eval()


def _moved_under_item_mask() -> tuple[int, ...]:
    """Tokens of the chapter's example whose hidden state moves when VID_2 changes, under an item-level mask."""
    import torch

    model = _cobra_model()
    items, ts, lengths = torch.tensor([[1, 50, 181, 100]]), torch.tensor([[0, 60, 3_660, 90_060]]), torch.tensor([4])
    sid, vid = model.sid_tower(items), model.vid_tower(items)  # (1, T, D)
    changed = vid.clone()
    changed[:, 1] = torch.randn(vid.shape[-1], generator=torch.Generator().manual_seed(0))
    pos = torch.arange(2 * items.shape[1])
    mask = (pos[None, :] // 2 <= pos[:, None] // 2).unsqueeze(0)  # (1, 2T, 2T): a film's two tokens see each other

    def hidden(vid_tokens):
        inter = model.interleaver(sid, vid_tokens, ts, lengths)
        return model.backbone(inter.tokens, inter.timestamps, inter.lengths, mask, inter.query_timestamps)

    with torch.no_grad():
        moved = (hidden(changed) - hidden(vid)).abs().amax(dim=-1)[0]  # (2T,)
    return tuple(int(i) for i in torch.nonzero(moved > 1e-6).flatten())


def _padded_row_losses() -> tuple[int, int]:
    """Tokens of a length-1 padded row that carry the SID loss and the VID loss."""
    import torch

    from cobra.interleave import interleave_targets

    _, sid_loss, vid_loss = interleave_targets(torch.tensor([[1, 50, 181], [100, 0, 0]]), torch.tensor([3, 1]))
    return int(sid_loss[1].sum()), int(vid_loss[1].sum())


def _buckets_moved_by_a_second() -> int:
    """Allowed cells of user 1's first 10 ratings whose time bucket changes when VID_t is stamped ts_t + 1."""
    import torch

    from cobra.datasets import load_dataset
    from cobra.hstu import time_bucket
    from cobra.interleave import clone_timestamps, interleaved_mask, interleaved_query_timestamps

    interactions = load_dataset(CPU.dataset).interactions
    ts = torch.tensor(interactions.query("user == 1")["timestamp"].to_numpy()[:10])[None]  # (1, T)
    cloned = clone_timestamps(ts)[0]  # (2T,)
    old = time_bucket(interleaved_query_timestamps(ts, torch.tensor([ts.shape[1]]))[0][:, None] - cloned[None, :])
    shifted = torch.stack([ts, ts + 1], dim=2).reshape(-1)  # (2T,) ts_t, ts_t + 1
    query = torch.cat([shifted[1:], shifted[-1:]])  # the next token's time; the last keeps its own
    new = time_bucket(query[:, None] - shifted[None, :])
    return int(((new != old) & interleaved_mask(ts.shape[1])[0]).sum())


def _interleaved_slots() -> tuple[int, float]:
    """Token slots of COBRA's backbone at the profile's max_seq_len, and its attention matrix over plain HSTU's."""
    slots, films = _cobra_model().backbone.max_seq_len, CPU.max_seq_len
    return slots, slots**2 / films**2


# Chapter 09: the dual loss


def _toy_in_batch():
    """The chapter's toy in-batch example: VIDs (N + 1, 2), queries (M, 2), positives (M,), and the pool."""
    import torch

    vids = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.7, 0.7]])
    queries = torch.tensor([[0.9, 0.2], [0.1, 1.0], [0.8, 0.1], [0.5, 0.5]])
    pos = torch.tensor([1, 2, 1, 4])
    pool_ids = torch.cat([pos, torch.tensor([1, 3])])
    pool_vectors = torch.cat([vids[pos], torch.tensor([[0.95, 0.05], [0.2, 0.3]])])
    pool_is_sid = torch.tensor([False, False, False, False, True, True])
    return vids, queries, pos, pool_ids, pool_vectors, pool_is_sid


def _toy_loss(tau: float, log_q: bool = False) -> float:
    """Mean in-batch InfoNCE of the toy example (SID entries and copies of the positive masked); with
    ``log_q``, every candidate's logit less the log of its item's share of the pool's VID entries."""
    import torch
    import torch.nn.functional as F

    from cobra.losses import info_nce_loss

    vids, queries, pos, pool_ids, pool_vectors, pool_is_sid = _toy_in_batch()
    if not log_q:
        return float(info_nce_loss(queries, pos, vids, "in-batch", tau, pool_ids=pool_ids,
                                   pool_vectors=pool_vectors, pool_is_sid=pool_is_sid))
    vid_entries = pool_ids[~pool_is_sid]

    def correction(item) -> float:
        return math.log(float((vid_entries == item).float().mean()))

    losses = []
    for m in range(len(pos)):
        q = F.normalize(queries[m], dim=0)
        logits = [q @ F.normalize(vids[pos[m]], dim=0) / tau - correction(pos[m])]  # the positive first
        logits += [q @ F.normalize(pool_vectors[c], dim=0) / tau - correction(pool_ids[c])
                   for c in range(len(pool_ids)) if not pool_is_sid[c] and pool_ids[c] != pos[m]]
        losses.append(float(torch.logsumexp(torch.stack(logits), dim=0) - logits[0]))
    return float(np.mean(losses))


@cache
def _bench_batch() -> dict:
    from cobra.book import load_result

    return load_result("bench_batch")


@cache
def _cobra_windows():
    from cobra.data import TrainWindows, load_split
    from cobra.presets import get_preset

    preset = get_preset(f"cobra-{CPU.name}")
    return TrainWindows(load_split(CPU.dataset), preset.model.max_seq_len), preset.train.seed


def _steps_and_best_step() -> tuple[int, float]:
    """Optimiser steps in 3 epochs at batch 256, and the mean steps to the best validation of the grid's
    catalogue runs there."""
    from cobra.train import epoch_batches, epoch_order

    windows, seed = _cobra_windows()
    steps = sum(1 for _ in epoch_batches(windows, 256, epoch_order(len(windows), seed=seed, epoch=0)))
    cell = next(c for c in _bench_batch()["cells"] if c["batch_size"] == 256 and c["negatives"] == "catalogue")
    return 3 * steps, float(np.mean([r["best_epoch"] * r["steps"] / r["epochs"] for r in cell["runs"]]))


def _films_in_cache(size: int = 1024) -> int:
    """Distinct films in a VID cache of ``size`` after one epoch of batch-16 pushes of the VID positives."""
    import torch

    from cobra.losses import VidCache
    from cobra.train import epoch_batches, epoch_order

    windows, seed = _cobra_windows()
    queue = VidCache(size=size, dim=1)
    for b in epoch_batches(windows, 16, epoch_order(len(windows), seed=seed, epoch=0)):
        held = torch.cat([b.ids[b.ids != 0], b.next_ids[torch.arange(len(b)), b.lengths - 1]])
        queue.push(held, torch.zeros(len(held), 1))
    return len(torch.unique(queue.entries()[0]))


# Chapter 10: decoding


def _tail_hr200(split_name: str, preset: str, users: int, retrieved: int) -> float:
    """Expected HR@200 of a target in none of ``retrieved`` ranked films, tied with every other candidate,
    averaged over the first ``users`` users of ``split_name`` (the evaluator's exact tie handling)."""
    import torch

    from cobra.data import eval_batches, load_split
    from cobra.presets import get_preset

    config = get_preset(preset)
    split = load_split(config.dataset)
    batch = next(eval_batches(split, split_name, config.model.max_seq_len, batch_size=users))
    removed = batch.exclude.clone()
    removed[torch.arange(len(batch)), batch.targets] = False
    candidates = split.num_items - removed[:, 1:].sum(dim=1)
    return float(((200 - retrieved) / (candidates - retrieved).double()).mean())


def _best_mode_of(variant: str) -> str:
    """The decoding mode with the best validation NDCG@10 of one committed ablation variant."""
    from cobra.book import load_result

    scores = load_result("ablate_cobra_valid")["variants"][variant]["valid_ndcg@10_by_decode"]
    return max(scores, key=scores.get)


# Chapter 11: experiments


def _ablation_runner_up() -> str:
    """The second-best ablation variant on validation, each scored by its best decoding mode."""
    from cobra.book import load_result

    best = {name: max(v["valid_ndcg@10_by_decode"].values())
            for name, v in load_result("ablate_cobra_valid")["variants"].items()}
    return sorted(best, key=best.get, reverse=True)[1]


def _tiger_beams() -> int:
    from cobra.presets import get_preset

    return get_preset(f"tiger-{CPU.name}").model.beam_width


def _larger_lr_models() -> tuple[str, ...]:
    """The presets whose tuned learning rate is the grid's largest."""
    from cobra.book import load_result
    from cobra.presets import TUNE_GRID

    largest = max(TUNE_GRID["train.lr"])
    return tuple(sorted(name for name, m in load_result("tune_cpu")["models"].items()
                        if m["best"]["train.lr"] == largest))


def _pooled_best() -> str:
    """The top-group row with the best test NDCG@10 pooled over the CPU's and the GPU's runs."""
    import numpy as np

    from cobra.bench.quality import TOP_ROWS, committed_machine_rows

    machines = committed_machine_rows().values()
    pooled = {key: np.mean([m[key]["per_user_ndcg@10"] for m in machines]) for key in TOP_ROWS}
    return max(pooled, key=pooled.get)


# Chapter 07: TIGER


@cache
def _tiger_codes() -> np.ndarray:
    """The ``tiger-cpu`` preset's semantic IDs (balanced, the ``cpu`` profile's shape), (N, L + 1) int64."""
    from cobra.inputs import semantic_ids
    from cobra.sid import SIDConfig

    return semantic_ids(CPU.dataset, CPU.encoder, SIDConfig(levels=CPU.sid_levels, codes=CPU.sid_codes))


def _tuples_and_share_of_films() -> tuple[int, float]:
    """Distinct (c_1, ..., c_L) tuples of the films, and the share of all words of L + 1 codes that are films."""
    from cobra.trie import SIDTrie

    trie = SIDTrie(_tiger_codes())
    return trie.num_nodes[trie.depth - 1], trie.num_items / math.prod(trie.vocab_sizes)


def _films_under_prefixes(item: int = 50) -> tuple[int, ...]:
    """Films whose ID starts with the first 1, 2, ..., L + 1 codes of ``item``'s."""
    codes = _tiger_codes()
    return tuple(int((codes[:, :d] == codes[item - 1, :d]).all(1).sum()) for d in range(1, codes.shape[1] + 1))


def _dead_prefixes() -> tuple[int, ...]:
    """Prefixes of depth 1..L all of whose films the first test user has seen (``SIDTrie.live_nodes``)."""
    from cobra.data import eval_batches
    from cobra.trie import SIDTrie

    trie = SIDTrie(_tiger_codes())
    batch = next(eval_batches(_split(), "test", CPU.max_seq_len, 1))
    excluded = batch.excluded(trie.num_items)  # (1, N + 1)
    return tuple(int((~trie.live_nodes(excluded, level)).sum()) for level in range(trie.depth - 1))


# Chapter 12: the book at full scale


@cache
def _scale_rows() -> dict[str, dict]:
    from cobra.book import load_result

    return {r["preset"]: r for r in load_result("scale_4090d_h200")["presets"]}


def _cobra_30_epochs_minutes() -> float:
    r = _scale_rows()["cobra-4090d"]
    return 30 * (r["epoch_seconds"] + r["eval_seconds"]) / 60


def _tiger_batch_on(card_gb: float) -> int:
    """The largest power of two b with b x (training peak per example) <= 0.9 x card_gb."""
    r = _scale_rows()["tiger-4090d"]
    per_example = r["train_peak_gb"] / r["batch_size"]
    return 2 ** math.floor(math.log2(0.9 * card_gb / per_example))


EXERCISES: dict[str, Exercise] = {e.key: e for e in (
    Exercise("00.1", _commands, "`python -m cobra --help` lists them under COMMAND; compare the sorted tuple"),
    Exercise("00.2", _profile_changes, "print both profiles (`cobra.config.PROFILES`) side by side and count "
             "the rows that differ"),
    Exercise("01.1", lambda: _users_below(50), "count the users whose sequence length is below 50: "
             "`(seqs.lengths < 50).sum()`"),
    Exercise("01.3", _popular_without_filter, "score `popular` with `rank_metrics(scores, targets, None)` "
             "on every test batch and average HR@10 over users", rel_tol=1e-6),
    Exercise("01.4", _constant_hr10, "with every score tied, the target's expected HR@10 is 10 over the "
             "number of candidates (all films minus the user's history, the target kept), averaged over "
             "users", rel_tol=1e-3),
    Exercise("02.1", _overlap_without_year, "embed `ml.items.assign(year=None)` with `embed_items(..., "
             "items=...)`; for each film, the size of the intersection of its two sets of 10 nearest "
             "neighbours (with and without the year), over 10, averaged over all films", rel_tol=1e-3),
    Exercise("02.2", _closest_different_texts, "compute all cosines `vectors @ vectors.T`, set the pairs "
             "with equal texts (the diagonal included) to `-inf`, and take the maximum", rel_tol=1e-4),
    Exercise("02.4", _genre_sharing_neighbours, "split each film's genres at `|` into a set; a neighbour "
             "counts when the two sets intersect; average the counts (0 to 10) over all films",
             rel_tol=1e-4),
    Exercise("03.1", _inertia_range, "for seeds 0 to 4, `res = METHODS[\"kmeans\"](x, K, seed=seed)`; its "
             "inertia is `((x.double() - res.centroids.double()[res.labels]) ** 2).sum()`; give "
             "`(min, max)` of the five", rel_tol=1e-6),
    Exercise("03.3", _moved_by_balancing, "for each tolerance, compare the returned `labels` with the "
             "argmin over the squared distances (float64) to the returned `centroids`; count where they "
             "differ; give `(count at 0.0, count at 0.1)`"),
    Exercise("03.4", _collisions_at_256, "`np.unique(codes[:, :L], axis=0, return_inverse=True, "
             "return_counts=True)` groups the films by tuple; count the films in groups of 2 or more, "
             "with `SIDConfig(levels=L, codes=256, method=\"balanced\", seed=0)`; give `(L = 3, L = 2)`"),
    Exercise("03.5", _new_film_sid, "`item_text({\"title\": \"Toy Story 3\", \"year\": 2010, \"genres\": "
             "\"Animation|Children's|Comedy\"})`, then `get_encoder(\"minilm\").encode([text])` (a `(1, D)` "
             "array), then `balanced.quantizer.encode(...)[0]`: a tuple of the L codes"),
    Exercise("04.1", _fourth_level, "fit with `SIDConfig(levels=4, codes=K, method=m, seed=0)`; "
             "`sid_report(...)[\"collision_rate\"][-1]` for `balanced` and "
             "`[\"per_level\"][-1][\"entropy\"]` for `kmeans`", rel_tol=1e-6),
    Exercise("04.3", _shared_tuples, "`np.unique(codes[:, :L], axis=0, return_counts=True)` gives the number "
             "of films of each distinct tuple; the answer is the share of those counts above 1", rel_tol=1e-9),
    Exercise("04.4", lambda: _report()["collision_rate"][-1], "parse the last line of the command's output "
             "with `json.loads` and take `[\"collision_rate\"][-1]`", rel_tol=1e-9),
    Exercise("04.5", lambda: _report(encoder="tfidf")["collision_rate"][-1], "vectors from "
             "`embed_items(profile.dataset, \"tfidf\")`, balanced IDs at `K = 32`, then "
             "`sid_report(...)[\"collision_rate\"][-1]`", rel_tol=1e-9),
    Exercise("05.1", _tune_gap, "for each model, the maximum of `p[\"valid_ndcg@10\"]` over "
             "`load_result(\"tune_cpu\")[\"models\"][name][\"points\"]`; HSTU's minus SASRec's", rel_tol=1e-9),
    Exercise("05.2", _backbone_parameters, "`sum(p.numel() for p in model.backbone.parameters())` for "
             "`SequentialRecommender(get_preset(name, overrides).model)`, with `{\"model.ffn_dim\": 64}` for "
             "the third; give `(HSTU, SASRec 4D, SASRec D)`"),
    Exercise("05.3", _request_time_users, "per batch, buckets `time_bucket(query[:, None] - b.timestamps)` "
             "with `query` once `b.query_time` and once the last event's timestamp; count the rows where a "
             "bucket differs at a real position (`valid_mask(b.lengths, T)`)"),
    Exercise("05.4", _users_cut, "`lengths = split.history(\"test\").lengths`; give `((lengths > 50).sum(), "
             "(lengths > 200).sum())`"),
    Exercise("05.5", _softmax_block_change, "weights `torch.softmax(z.masked_fill(~m, float(\"-inf\")), "
             "dim=-1)` with `z` the scores plus `bias[:, None]`, no division by n; then the maximum of "
             "`(out - package).abs().amax(dim=-1)` over `valid_mask(lengths, T_)`", rel_tol=1e-4),
    Exercise("06.1", _murmur_collisions, "apply the finaliser to `h` after the loop, before `% table_size`; "
             "hash every key `(l, c_1, ..., c_l)` once, count the keys whose row holds another key; give "
             "`(level-1 keys, all keys)`"),
    Exercise("06.2", _indistinguishable_without_u, "`np.unique(emb.rows[1:].numpy(), axis=0, "
             "return_inverse=True, return_counts=True)` groups the films; count the films in groups of 2 or "
             "more"),
    Exercise("06.3", _films_with_own_row, "count, for each row, the films that use it (a film once per row); a "
             "film has a row of its own when one of its rows has count 1; give `(prefixN, ngram, rqsum)`"),
    Exercise("06.4", _tail_and_head_gain, "`tail = np.bincount(split.train.items, minlength=N + 1)[targets] < "
             "20`; the gains are means of the per-user differences `hstu-sid-cpu` minus `hstu-cpu` over "
             "`tail` and `~tail`", rel_tol=1e-6),
    Exercise("07.1", _tuples_and_share_of_films, "count the prefixes of `films_under` of length L (the tuples) "
             "and of length L + 1 (the films); divide the films by `math.prod(vocab)`", rel_tol=1e-9),
    Exercise("07.2", _films_under_prefixes, "`len(films_under[star_wars[:d]])` for d = 1, ..., L + 1, with "
             "`star_wars` the codes of row 49 of `codes` (item 50)"),
    Exercise("07.3", _dead_prefixes, "a prefix of length d is dead when every film of `films_under[prefix]` is in "
             "`seen_sets[0]`; count them for d = 1, ..., L"),
    Exercise("08.1", _moved_under_item_mask, "the item-level mask allows key j for query i when "
             "`j // 2 <= i // 2`; the tokens that move are those that can see `VID_2` (token 3), now "
             "including `SID_2`; give their indices as a tuple"),
    Exercise("08.2", _padded_row_losses, "sum the second row of `sid_loss` and of `vid_loss` returned by "
             "`interleave_targets`; give `(SID-loss tokens, VID-loss tokens)`"),
    Exercise("08.4", _buckets_moved_by_a_second, "token times `[ts_1, ts_1 + 1, ts_2, ts_2 + 1, ...]`, "
             "query times the next token's (the last its own), buckets `time_bucket(query[:, None] - "
             "times[None, :])`; count the cells where the buckets differ and `interleaved_mask(10)` allows"),
    Exercise("08.5", _interleaved_slots, "two tokens per film for the 50 films and for the appended next "
             "film (its VID slot is padding); the ratio is the square of the slots over the square of 50",
             rel_tol=1e-9),
    Exercise("09.2", _steps_and_best_step, "three times `steps_per_epoch[256]`; then, over the `runs` of "
             "the cell with `batch_size` 256 and `negatives` `\"catalogue\"`, the mean of "
             "`r[\"best_epoch\"] * r[\"steps\"] / r[\"epochs\"]`", rel_tol=1e-9),
    Exercise("09.3", _films_in_cache, "for each batch of `epoch_batches(windows, 16, epoch_order(num_windows, "
             "seed=preset.train.seed, epoch=0))`, push the window's films and its next film; count "
             "`len(torch.unique(cache.entries()[0]))` at the end"),
    Exercise("09.4", lambda: _toy_loss(0.05), "`info_nce_loss(queries, pos, vids, \"in-batch\", 0.05, "
             "pool_ids=pool_ids, pool_vectors=pool_vectors, pool_is_sid=pool_is_sid)`", rel_tol=1e-5),
    Exercise("09.6", lambda: _toy_loss(0.5, log_q=True), "item 1 is half of the 4 VID entries (log 0.5), "
             "items 2 and 4 a quarter each (log 0.25); subtract these from the positive's and the "
             "negatives' logits before the log-sum-exp", rel_tol=1e-5),
    Exercise("10.4", lambda: _tail_hr200("valid", f"cobra-{CPU.name}", 1, 40), "count the candidates n: all "
             "films minus `batch.exclude[0]` (with the target set back to False); a target behind C ranked films, "
             "tied with the other n - C - 1, reaches the top 200 with probability (200 - C) / (n - C)",
             rel_tol=1e-9),
    Exercise("10.5", lambda: _best_mode_of("SID 2 levels, no uniqueness code"), "the key with the largest value "
             "of the variant's `valid_ndcg@10_by_decode`"),
    Exercise("11.2", _ablation_runner_up, "for each variant take the largest of its `valid_ndcg@10_by_decode`, "
             "sort the variants by it and take the second"),
    Exercise("11.3", lambda: _tail_hr200("test", f"tiger-{CPU.name}", 128, _tiger_beams()), "per user, n "
             "candidates (all films minus the history, the target kept) and M beams: (200 - M) / (n - M); "
             "average over the users of `batch`", rel_tol=1e-9),
    Exercise("11.4", _larger_lr_models, "keep the names whose `best[\"train.lr\"]` equals "
             "`max(TUNE_GRID[\"train.lr\"])`, then `tuple(sorted(...))`"),
    Exercise("11.5", _pooled_best, "average the two machines' `per_user_ndcg@10` lists of each row of `TOP_ROWS`, "
             "user by user, and take the row with the largest mean"),
    Exercise("12.1", _cobra_30_epochs_minutes, "30 times (`epoch_seconds` + `eval_seconds`) of the "
             "`cobra-4090d` row, over 60", rel_tol=1e-9),
    Exercise("12.2", lambda: _tiger_batch_on(12), "GB per example = `train_peak_gb / batch_size`; double a "
             "batch of 1 while twice the batch still needs at most 0.9 x 12 GB"),
)}


def _close(answer: Any, right: Any, rel_tol: float) -> bool:
    if isinstance(right, str):
        return answer == right
    if isinstance(right, tuple):
        return isinstance(answer, (tuple, list)) and len(answer) == len(right) and all(
            _close(a, r, rel_tol) for a, r in zip(answer, right, strict=True))
    try:
        a, r = float(answer), float(right)
    except (TypeError, ValueError):
        return False
    return bool(np.isfinite(a)) and math.isclose(a, r, rel_tol=rel_tol, abs_tol=0.0 if rel_tol else 1e-12)


def is_right(key: str, answer: Any) -> bool:
    """Whether ``answer`` is right for exercise ``key`` (the test suite's view of :func:`check`)."""
    if key not in EXERCISES:
        raise KeyError(f"no exercise {key!r} has a check; checkable exercises: {', '.join(sorted(EXERCISES))}")
    exercise = EXERCISES[key]
    return _close(answer, exercise.solve(), exercise.rel_tol)


def check(key: str, answer: Any) -> None:
    """Print whether ``answer`` is right for exercise ``key``, with a hint if it is not."""
    right = is_right(key, answer)
    print(f"exercise {key}: " + ("right." if right else f"not yet. Hint: {EXERCISES[key].hint}"))
