"""The policy network: item embeddings and a sequence encoder over feedback tokens."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from metarec.agents.ridge import RidgeHead
from metarec.agents.tokens import TokenBatch
from metarec.config import ModelConfig
from metarec.session import FEEDBACK_TYPES, SKIP


class SlatePolicy(nn.Module):
    """Scores every item for a user from the tokens seen so far.

    Each token is the sum of an item embedding, a feedback-type embedding
    (history, click, skip) and a position embedding. A Transformer encoder
    (or a GRU) reads the tokens. The user state ``h`` adds a projection of
    the encoder's summary token (Transformer) or last hidden state (GRU) to
    projections of the pooled embeddings of the chosen items and of the
    skipped items. Encoder ``pool`` keeps the pooled part alone, which is far
    cheaper on long sessions. Item ``i`` scores
    ``head(h) . o_i + b_i`` with an output embedding ``o`` kept apart from the
    input one (tying them forces every item to score its own neighbours
    highest, which trains far slower here), and a bias ``b`` that lets the
    policy fall back on popularity when ``h`` carries little evidence.
    A value head estimates the return from the same state for REINFORCE.
    With ``config.ridge_head`` the scores also add a :class:`RidgeHead`.
    Encoder ``none`` scores item ``i`` by ``b_i`` plus the ridge head alone,
    so the session reaches the scores only through the ridge regression;
    it has no state values (they are 0).
    """

    def __init__(self, n_items: int, config: ModelConfig) -> None:
        super().__init__()
        self.n_items = n_items
        self.config = config
        dim = config.dim

        # Token embeddings: item, feedback type and position are summed.
        self.item_embedding = nn.Embedding(n_items + 1, dim, padding_idx=n_items)
        self.feedback_embedding = nn.Embedding(FEEDBACK_TYPES + 1, dim)
        self.position_embedding = nn.Embedding(config.max_tokens + 1, dim)
        self.summary_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.input_dropout = nn.Dropout(config.dropout)
        self.encoder = _build_encoder(config)

        # Read-out: pooled items plus the encoder summary make the user state.
        self.chosen_pool = nn.Linear(dim, dim)
        self.skipped_pool = nn.Linear(dim, dim)
        self.norm = nn.LayerNorm(dim)
        self.sequence_out = nn.Linear(dim, dim)
        self.head = nn.Linear(dim, dim)
        self.output_embedding = nn.Embedding(n_items, dim)
        self.output_bias = nn.Parameter(torch.zeros(n_items))
        self.value_head = nn.Sequential(nn.Linear(dim, dim), nn.Tanh(), nn.Linear(dim, 1))
        self.ridge = (
            RidgeHead(n_items, config.ridge_dim, config.ridge_slate_size, config.dropout)
            if config.ridge_head
            else None
        )
        # NOTE: encoder "none" builds the token embeddings and read-out above too, unused, so
        # that every encoder has one parameter layout and one code path in MAML and the DQN.

        nn.init.normal_(self.item_embedding.weight, std=0.05)
        nn.init.normal_(self.output_embedding.weight, std=0.05)
        nn.init.normal_(self.summary_token, std=0.05)

    def init_output_bias(self, item_counts: np.ndarray) -> None:
        """Start the item bias at log-popularity, so the untrained policy ranks like Popularity.

        Adam moves a parameter by about ``lr`` per step, so a bias starting at
        zero would need thousands of steps to span the 5-6 nats between rare
        and popular items.
        """
        log_prior = np.log(item_counts.astype(np.float64) + 1.0)
        with torch.no_grad():
            self.output_bias.copy_(torch.as_tensor(log_prior - log_prior.mean()))

    def encode(self, batch: TokenBatch) -> torch.Tensor:
        """Return the user state ``(batch, dim)``."""
        if self.encoder is None:
            return self._pool_items(batch)
        positions = torch.arange(batch.items.shape[1], device=batch.items.device)
        tokens = (
            self.item_embedding(batch.items)
            + self.feedback_embedding(batch.feedback)
            + self.position_embedding(positions.clamp(max=self.config.max_tokens))[None]
        )
        # NOTE: the token dropout draws before the pooled one. The recorded runs of
        # `metarec run` used this order, and another order gives other dropout masks.
        tokens = self.input_dropout(tokens)
        pooled = self._pool_items(batch)
        if isinstance(self.encoder, nn.GRU):
            return pooled + self.sequence_out(
                self.norm(self._encode_gru(self.encoder, tokens, batch))
            )
        summary = self.summary_token.expand(tokens.shape[0], -1, -1)
        sequence = torch.cat([summary, tokens], dim=1)
        no_pad = torch.zeros_like(batch.padding[:, :1])
        padding = torch.cat([no_pad, batch.padding], dim=1)
        encoded = self.encoder(sequence, src_key_padding_mask=padding)
        return pooled + self.sequence_out(self.norm(encoded[:, 0]))

    def _pool_items(self, batch: TokenBatch) -> torch.Tensor:
        """Pool the chosen items (history and clicks) and the skipped items separately.

        Pooling them apart keeps ninety skips from drowning five chosen items,
        and gives co-occurrence a short linear route to the scores. Each pool
        is a sum divided by the square root of its count, so the personal part
        of the scores grows with the evidence and the popularity bias weighs
        less as a session fills up.
        """
        embeddings = self.input_dropout(self.item_embedding(batch.items))
        present = ~batch.padding
        skipped = present & (batch.feedback == SKIP)
        chosen = present & ~skipped
        return self.chosen_pool(_root_pool(embeddings, chosen)) + self.skipped_pool(
            _root_pool(embeddings, skipped)
        )

    @staticmethod
    def _encode_gru(gru: nn.GRU, tokens: torch.Tensor, batch: TokenBatch) -> torch.Tensor:
        lengths = batch.lengths.clamp(min=1).cpu()
        packed = nn.utils.rnn.pack_padded_sequence(
            tokens, lengths, batch_first=True, enforce_sorted=False
        )
        _, hidden = gru(packed)
        state: torch.Tensor = hidden[-1]
        empty = (batch.lengths == 0)[:, None]
        return torch.where(empty, torch.zeros_like(state), state)

    def item_scores(self, state: torch.Tensor) -> torch.Tensor:
        """Return logits ``(batch, n_items)`` for user states."""
        return self.head(state) @ self.output_embedding.weight.T + self.output_bias

    def forward(self, batch: TokenBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """Return item logits ``(batch, n_items)`` and state values ``(batch,)``."""
        if self.config.encoder == "none":
            assert self.ridge is not None  # ModelConfig rejects encoder none without it
            logits = self.output_bias + self.ridge(batch)
            return logits, torch.zeros(batch.size, device=logits.device)
        state = self.encode(batch)
        logits = self.item_scores(state)
        if self.ridge is not None:
            logits = logits + self.ridge(batch)
        return logits, self.value_head(state).squeeze(-1)


def _root_pool(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    weights = mask.unsqueeze(-1).to(values.dtype)
    return (values * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0).sqrt()


def _build_encoder(config: ModelConfig) -> nn.Module | None:
    """Return a pre-norm Transformer encoder, a GRU, or None for pooling alone or no encoder."""
    if config.encoder in ("pool", "none"):
        return None
    if config.encoder == "gru":
        return nn.GRU(config.dim, config.dim, num_layers=config.layers, batch_first=True)
    layer = nn.TransformerEncoderLayer(
        config.dim,
        config.heads,
        dim_feedforward=2 * config.dim,
        dropout=config.dropout,
        batch_first=True,
        norm_first=True,
    )
    return nn.TransformerEncoder(layer, config.layers, enable_nested_tensor=False)
