"""SASRec: a causal Transformer with softmax attention, the classic baseline for HSTU.

Explained in chapter 05 (book/05_hstu.py).

SASRec (Kang & McAuley, 2018) as a pre-LayerNorm Transformer encoder::

    x = x * sqrt(D) + pos_emb(position);  x = Dropout(x)
    x = x + Dropout(MHA(LN(x)))            # softmax attention, causal + key padding mask
    x = x + Dropout(FFN(LN(x)))            # point-wise feed-forward (GELU)
    out = LN(x)

It has the same forward signature as :class:`cobra.hstu.HSTU` (embeddings,
timestamps, lengths, optional mask) so a model swaps one backbone for the other
and keeps its embeddings and loss; SASRec ignores the timestamps. The input
scaling and learned absolute positions follow the public HSTU reference's
SASRec setting. Outputs at padding positions are zero.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from cobra.hstu import allowed_attention, valid_mask


class SASRecBlock(nn.Module):
    """One pre-LN Transformer block with softmax multi-head attention.

    Args:
        dim: model dim ``D`` (divisible by ``num_heads``).
        num_heads: heads ``H``.
        dropout: dropout on attention weights, attention output and FFN output.
        ffn_dim: hidden width of the feed-forward (default ``4 * D``; the original SASRec
            uses ``D``).
    """

    def __init__(self, dim: int, num_heads: int = 1, dropout: float = 0.2, ffn_dim: int | None = None) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim={dim} must be divisible by num_heads={num_heads}")
        self.dim = dim
        self.num_heads = num_heads
        self.dropout_p = dropout
        self.norm_attn = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm_ffn = nn.LayerNorm(dim)
        hidden = ffn_dim or 4 * dim
        self.ffn = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, dim))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        """Apply the block.

        Args:
            x: (B, T, D) float.
            allowed: (B, T, T) bool, True where query ``i`` may attend key ``j``; every row
                must allow at least one key (see :meth:`SASRec.forward`).

        Returns:
            (B, T, D) float.
        """
        B, T, D = x.shape
        H = self.num_heads
        q, k, v = self.qkv(self.norm_attn(x)).split(D, dim=-1)  # 3 x (B, T, D)
        q, k, v = (t.view(B, T, H, D // H).transpose(1, 2) for t in (q, k, v))  # (B, H, T, D/H)
        a = F.scaled_dot_product_attention(
            q, k, v, attn_mask=allowed.unsqueeze(1), dropout_p=self.dropout_p if self.training else 0.0
        )  # (B, H, T, D/H)
        x = x + self.dropout(self.proj(a.transpose(1, 2).reshape(B, T, D)))
        return x + self.dropout(self.ffn(self.norm_ffn(x)))  # (B, T, D)


class SASRec(nn.Module):
    """SASRec encoder with the same interface as :class:`cobra.hstu.HSTU`.

    Args:
        dim: model dim ``D``.
        num_blocks: number of blocks.
        num_heads: heads per block.
        max_seq_len: longest ``T`` accepted (size of the positional table).
        dropout: input, attention and FFN dropout.
        ffn_dim: feed-forward hidden width (default ``4 * D``).
    """

    def __init__(
        self,
        dim: int,
        num_blocks: int = 2,
        num_heads: int = 1,
        max_seq_len: int = 200,
        dropout: float = 0.2,
        ffn_dim: int | None = None,
    ) -> None:
        super().__init__()
        self.dim = dim
        self.max_seq_len = max_seq_len
        self.pos_emb = nn.Embedding(max_seq_len, dim)
        nn.init.trunc_normal_(self.pos_emb.weight, std=math.sqrt(1.0 / dim))
        self.input_dropout = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(SASRecBlock(dim, num_heads, dropout, ffn_dim) for _ in range(num_blocks))
        self.final_norm = nn.LayerNorm(dim)

    def forward(
        self,
        x: torch.Tensor,
        timestamps: torch.Tensor,
        lengths: torch.Tensor,
        mask: torch.Tensor | None = None,
        query_timestamps: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Encode a right-padded batch.

        Args:
            x: (B, T, D) float item embeddings.
            timestamps: (B, T) int64; unused (kept for the shared backbone signature).
            lengths: (B,) int64 real items per row.
            mask: optional (B, T, T) or (1, T, T) bool, True = may attend; replaces the causal mask.
            query_timestamps: unused (kept for the shared backbone signature).

        Returns:
            (B, T, D) float hidden states, zero at padding positions.
        """
        del timestamps, query_timestamps
        B, T, D = x.shape
        if T > self.max_seq_len:
            raise ValueError(
                f"sequence length {T} exceeds max_seq_len={self.max_seq_len}; "
                "truncate the batch or build the model with a larger max_seq_len"
            )
        valid = valid_mask(lengths, T).unsqueeze(-1).to(x.dtype)  # (B, T, 1)
        allowed = allowed_attention(lengths, T, mask)  # (B, T, T)
        # A row with no allowed key (a length-0 row, or an explicit mask) would make softmax NaN:
        # let it attend to itself; its output is zeroed below anyway.
        empty = ~allowed.any(dim=-1, keepdim=True)  # (B, T, 1)
        eye = torch.eye(T, dtype=torch.bool, device=x.device).unsqueeze(0)  # (1, T, T)
        allowed = allowed | (empty & eye)
        h = x * math.sqrt(self.dim) + self.pos_emb(torch.arange(T, device=x.device)).unsqueeze(0)
        h = self.input_dropout(h) * valid  # (B, T, D)
        for block in self.blocks:
            h = block(h, allowed) * valid
        return self.final_norm(h) * valid  # (B, T, D)
