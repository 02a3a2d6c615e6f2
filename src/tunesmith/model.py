"""MelodyLSTM: token embedding (+ metric position, mode, meter) → LSTM → softmax over tokens.

Inputs at time t are the token at step t−1 (``<s>`` at t = 0) and the metric position of the
step being predicted (step t), so the model always knows where in the bar its next token falls.
Mode and meter are per-song conditioning; index 0 of each is "<unk>" (unseen or not given).
"""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tunesmith import __version__
from tunesmith.config import ModelConfig
from tunesmith.errors import TunesmithError

UNKNOWN = "<unk>"
CHECKPOINT_FORMAT = "tunesmith-checkpoint"
CHECKPOINT_VERSION = 1

State = tuple[torch.Tensor, torch.Tensor]


class MelodyLSTM(nn.Module):
    """The melody model. Shapes: B = batch, T = time steps, V = vocabulary size."""

    def __init__(self, config: ModelConfig, vocab_size: int, n_modes: int, n_meters: int):
        super().__init__()
        self.config = config
        self.vocab_size, self.n_modes, self.n_meters = vocab_size, n_modes, n_meters
        self.token_embedding = nn.Embedding(vocab_size, config.embedding)
        self.position_embedding = nn.Embedding(config.max_position, config.position_embedding)
        self.mode_embedding = nn.Embedding(n_modes, config.condition_embedding)
        self.meter_embedding = nn.Embedding(n_meters, config.condition_embedding)
        width = config.embedding + config.position_embedding + 2 * config.condition_embedding
        self.lstm = nn.LSTM(width, config.hidden, config.layers, batch_first=True,
                            dropout=config.dropout if config.layers > 1 else 0.0)  # fmt: skip
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.hidden, vocab_size)

    def _inputs(self, tokens: torch.Tensor, positions: torch.Tensor, mode: torch.Tensor, meter: torch.Tensor) -> torch.Tensor:
        steps = tokens.shape[1]
        positions = positions.clamp(0, self.config.max_position - 1)
        condition = torch.cat([self.mode_embedding(mode), self.meter_embedding(meter)], dim=-1)
        return torch.cat([
            self.token_embedding(tokens),
            self.position_embedding(positions),
            condition.unsqueeze(1).expand(-1, steps, -1),
        ], dim=-1)  # fmt: skip

    def forward(self, tokens: torch.Tensor, positions: torch.Tensor, mode: torch.Tensor, meter: torch.Tensor,
                state: State | None = None) -> tuple[torch.Tensor, State]:  # fmt: skip
        """Logits [B, T, V] of the next token at every step, and the final LSTM state."""
        output, state = self.lstm(self._inputs(tokens, positions, mode, meter), state)
        return self.head(self.dropout(output)), state

    @torch.no_grad()
    def step(self, token: torch.Tensor, position: torch.Tensor, mode: torch.Tensor, meter: torch.Tensor,
             state: State | None = None) -> tuple[torch.Tensor, State]:  # fmt: skip
        """One generation step: ``token``, ``position`` are [B]; returns logits [B, V] and the new state."""
        logits, state = self.forward(token[:, None], position[:, None], mode, meter, state)
        return logits[:, 0], state

    @torch.no_grad()
    def log_likelihood(self, tokens: torch.Tensor, positions: torch.Tensor, mode: torch.Tensor,
                       meter: torch.Tensor) -> torch.Tensor:  # fmt: skip
        """Natural-log probability [B, T−1] of each token given those before it.

        ``tokens`` [B, T] start with ``<s>``; ``positions`` [B, T] are the step-within-bar of each
        token's step (``positions[:, t]`` for ``tokens[:, t]``; the value at t = 0 is unused).
        """
        logits, _ = self.forward(tokens[:, :-1], positions[:, 1:], mode, meter)
        return torch.log_softmax(logits.float(), dim=-1).gather(-1, tokens[:, 1:, None])[..., 0]


def pick_device(name: str = "auto") -> torch.device:
    """``auto`` = CUDA if present, else Apple MPS, else CPU."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise TunesmithError("device 'cuda' was asked for but CUDA is not available")
    return torch.device(name)


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> None:
    """Write a checkpoint atomically: a temp file in the same folder, then rename over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "tunesmith_version": __version__, **payload}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read and check a checkpoint; a missing, foreign or incompatible file is a TunesmithError."""
    path = Path(path)
    if not path.is_file():
        raise TunesmithError(f"no checkpoint at {str(path)!r}")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as exc:  # torch raises several types for non-checkpoint files
        raise TunesmithError(f"{str(path)!r} is not a readable checkpoint ({type(exc).__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise TunesmithError(f"{str(path)!r} is not a tunesmith checkpoint")
    if payload.get("version") != CHECKPOINT_VERSION:
        raise TunesmithError(
            f"{str(path)!r} is checkpoint version {payload.get('version')!r} (tunesmith "
            f"{payload.get('tunesmith_version')}); this tunesmith reads version {CHECKPOINT_VERSION}"
        )
    return payload


def model_from_checkpoint(payload: dict[str, Any], device: str | torch.device = "cpu") -> MelodyLSTM:
    """Rebuild the model of a loaded checkpoint, in eval mode on ``device``."""
    config = ModelConfig(**payload["model_config"])
    model = MelodyLSTM(config, len(payload["vocab"]), len(payload["modes"]), len(payload["meters"]))
    model.load_state_dict(payload["model"])
    return model.to(device).eval()


def model_payload(model: MelodyLSTM) -> dict[str, Any]:
    """The part of a checkpoint that describes the network itself."""
    raw = model.module if hasattr(model, "module") else model
    return {"model_config": asdict(raw.config), "model": raw.state_dict()}
