"""Interleaving: token layout, types, positions, cloned times, query times, mask and targets (hand-worked, T = 3)."""

from __future__ import annotations

import pytest
import torch

from cobra.hstu import time_bucket
from cobra.interleave import (
    SID_TYPE,
    VID_TYPE,
    Interleaver,
    clone_timestamps,
    interleave_pairs,
    interleave_targets,
    interleaved_mask,
    interleaved_query_timestamps,
    mask_for_plot,
    time_gap_matrix,
    token_labels,
    token_lengths,
    token_types,
)

pytestmark = pytest.mark.usefixtures("one_thread")


# Items a=5, b=7, c=9 at times 10, 20, 30; the next item after c is d=11.
ITEMS = torch.tensor([[5, 7, 9]])
TIMES = torch.tensor([[10, 20, 30]])
LENGTHS = torch.tensor([3])
NEXT = torch.tensor([[7, 9, 11]])


def test_pairs_types_positions_and_cloned_times():
    # [S_a, V_a, S_b, V_b, S_c, V_c]
    s = torch.tensor([[1, 2, 3]])
    v = torch.tensor([[-1, -2, -3]])
    assert interleave_pairs(s, v).tolist() == [[1, -1, 2, -2, 3, -3]]
    assert token_types(3).tolist() == [SID_TYPE, VID_TYPE] * 3 == [0, 1, 0, 1, 0, 1]
    assert clone_timestamps(TIMES).tolist() == [[10, 10, 20, 20, 30, 30]]
    assert token_lengths(LENGTHS).tolist() == [6]
    assert token_lengths(LENGTHS, drop_last_vid=True).tolist() == [5]
    assert token_lengths(torch.tensor([0]), drop_last_vid=True).tolist() == [0]
    emb = torch.randn(2, 3, 4)
    vid = torch.randn(2, 3, 4)
    out = interleave_pairs(emb, vid)  # (B, 2T, D)
    assert out.shape == (2, 6, 4)
    assert torch.equal(out[:, 0::2], emb) and torch.equal(out[:, 1::2], vid)


def test_query_times_by_hand():
    # S_a predicts V_a (time 10); V_a predicts S_b (20); S_b -> V_b (20); V_b -> S_c (30); S_c -> V_c (30);
    # V_c predicts the unknown next SID: its own time ("now").
    assert interleaved_query_timestamps(TIMES, LENGTHS).tolist() == [[10, 20, 20, 30, 30, 30]]
    # Open last SID (training / decoding): the V_c slot is padding and gets the last real query time.
    assert interleaved_query_timestamps(TIMES, LENGTHS, drop_last_vid=True).tolist() == [[10, 20, 20, 30, 30, 30]]


def test_time_gap_matrix_by_hand():
    gaps = time_gap_matrix(TIMES[0])
    expected = torch.tensor([
        # keys: S_a V_a S_b V_b S_c V_c
        [0, 0, -10, -10, -20, -20],  # S_a (query time 10): zero gap to its own SID
        [10, 10, 0, 0, -10, -10],  # V_a (query time 20)
        [10, 10, 0, 0, -10, -10],  # S_b (20): zero gap to S_b, 10 s to V_a
        [20, 20, 10, 10, 0, 0],  # V_b (30)
        [20, 20, 10, 10, 0, 0],  # S_c (30)
        [20, 20, 10, 10, 0, 0],  # V_c (now = 30)
    ])
    assert torch.equal(gaps, expected)
    # Inside a pair the SID query sees its own SID at bucket 0.
    assert (time_bucket(gaps.diagonal()[0::2]) == 0).all()
    assert time_gap_matrix(TIMES.expand(2, 3)).shape == (2, 6, 6)


def test_mask_by_hand():
    m = mask_for_plot(3)
    assert m.shape == (6, 6) and m.dtype == torch.bool
    assert torch.equal(m, torch.ones(6, 6, dtype=torch.bool).tril())
    assert torch.equal(interleaved_mask(3)[0], m)
    for t in range(3):
        s, v = 2 * t, 2 * t + 1
        assert m[v, s]  # VID_t sees SID_t
        assert not m[s, v]  # SID_t does not see VID_t (it predicts it)
        if t + 1 < 3:
            assert m[s + 2, v]  # SID_{t+1} sees VID_t
            assert not m[v, s + 2]
    assert token_labels(3) == ["S1", "V1", "S2", "V2", "S3", "V3"]


def test_targets_by_hand():
    targets, sid_loss, vid_loss = interleave_targets(ITEMS, LENGTHS)
    # S_a -> a (VID), V_a -> b (SID), S_b -> b, V_b -> c, S_c -> c, V_c -> unknown.
    assert targets.tolist() == [[5, 7, 7, 9, 9, 0]]
    assert sid_loss.tolist() == [[False, True, False, True, False, False]]
    assert vid_loss.tolist() == [[True, False, True, False, True, False]]
    targets, sid_loss, vid_loss = interleave_targets(ITEMS, LENGTHS, next_ids=NEXT)
    assert targets.tolist() == [[5, 7, 7, 9, 9, 11]]
    assert sid_loss.tolist() == [[False, True, False, True, False, True]]
    # Training layout: c is the appended open SID, its VID slot is padding.
    targets, sid_loss, vid_loss = interleave_targets(ITEMS, LENGTHS, next_ids=NEXT, drop_last_vid=True)
    assert targets.tolist() == [[5, 7, 7, 9, 9, 0]]
    assert sid_loss.tolist() == [[False, True, False, True, False, False]]
    assert vid_loss.tolist() == [[True, False, True, False, True, False]]


def test_targets_with_padding_rows():
    items = torch.tensor([[5, 7, 9], [4, 0, 0], [0, 0, 0]])
    lengths = torch.tensor([3, 1, 0])
    targets, sid_loss, vid_loss = interleave_targets(items, lengths)
    assert targets.tolist() == [[5, 7, 7, 9, 9, 0], [4, 0, 0, 0, 0, 0], [0] * 6]
    assert not (sid_loss & vid_loss).any()
    assert torch.equal(sid_loss | vid_loss, targets != 0)


def test_interleaver_module():
    torch.manual_seed(0)
    layer = Interleaver(4)
    sid, vid = torch.randn(2, 3, 4), torch.randn(2, 3, 4)
    ts = torch.tensor([[10, 20, 30], [5, 0, 0]])
    lengths = torch.tensor([3, 1])
    out = layer(sid, vid, ts, lengths, drop_last_vid=True)
    type_emb = layer.type_embedding.weight
    assert out.tokens.shape == (2, 6, 4)
    assert torch.allclose(out.tokens[0, 0], sid[0, 0] + type_emb[0])
    assert torch.allclose(out.tokens[0, 3], vid[0, 1] + type_emb[1])
    assert torch.allclose(out.tokens[0, 4], sid[0, 2] + type_emb[0])
    assert (out.tokens[0, 5] == 0).all()  # the dropped VID of the open SID
    assert (out.tokens[1, 1:] == 0).all()  # row with one item: only its SID token
    assert out.lengths.tolist() == [5, 1]
    assert out.positions.tolist() == list(range(6))
    assert out.types.tolist() == [0, 1, 0, 1, 0, 1]
    assert out.timestamps[0].tolist() == [10, 10, 20, 20, 30, 30]
    assert out.query_timestamps[0].tolist() == [10, 20, 20, 30, 30, 30]
    assert out.query_timestamps[1].tolist() == [5] * 6
    assert out.mask.shape == (1, 6, 6)


def test_shape_errors_are_clear():
    with pytest.raises(ValueError, match="same shape"):
        interleave_pairs(torch.zeros(1, 3), torch.zeros(1, 2))
