"""AWD-LSTM-style regularization of the melody LSTM, active in training mode only.

Two pure functions that :class:`tunesmith.model.MelodyLSTM` applies when its config asks
(Merity et al., "Regularizing and Optimizing LSTM Language Models", 2017):

- :func:`locked_dropout` (``model.input_dropout``): variational dropout of the LSTM's input
  vector, one mask per sequence shared by every time step, so a song loses the same input
  features all the way through instead of fresh noise at each step;
- :func:`weight_dropped_lstm` (``model.weight_drop``): DropConnect on the hidden-to-hidden
  weights, one mask per batch (the recurrent matrix itself is thinned, the same for every step
  and song of the batch), which regularizes the recurrence without touching the cell's fast
  kernel.

Both return their input unchanged (the very same tensor, no random number drawn) when the
rate is 0 or the model is in eval mode, so a model without them trains bit for bit as before
and inference — the folded fast step included — always sees the plain weights. Both scale the
kept values by 1/(1 − p), so the plain weights are the expectation the eval mode uses.
"""

from __future__ import annotations

import torch
from torch import nn


def locked_dropout(inputs: torch.Tensor, rate: float, training: bool) -> torch.Tensor:
    """``inputs`` [B, T, F] with one dropout mask [B, 1, F] per sequence, shared across time;
    the same tensor back when ``rate`` is 0 or not ``training``."""
    if not training or rate <= 0.0:
        return inputs
    keep = 1.0 - rate
    mask = inputs.new_empty(inputs.shape[0], 1, inputs.shape[2]).bernoulli_(keep).div_(keep)
    return inputs * mask


def weight_dropped_lstm(lstm: nn.LSTM, inputs: torch.Tensor, hx: tuple[torch.Tensor, torch.Tensor] | None,
                        rate: float, training: bool) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:  # fmt: skip
    """``lstm(inputs, hx)`` with each layer's hidden-to-hidden weights dropped (DropConnect): one
    mask per call, i.e. per batch; gradients reach the kept weights. The module itself is left
    untouched (the thinned weights go to the same kernel ``nn.LSTM`` calls), so eval mode and
    the folded generation step read the plain weights. ``lstm(inputs, hx)`` itself when
    ``rate`` is 0 or not ``training``. ``inputs`` is a padded tensor, not a packed sequence."""
    if not training or rate <= 0.0:
        return lstm(inputs, hx)
    weights = [getattr(lstm, name) for name in lstm._flat_weights_names]
    weights = [nn.functional.dropout(w, rate, True) if name.startswith("weight_hh") else w
               for name, w in zip(lstm._flat_weights_names, weights)]  # fmt: skip
    if hx is None:
        batch = inputs.shape[0] if lstm.batch_first else inputs.shape[1]
        zeros = inputs.new_zeros(lstm.num_layers, batch, lstm.hidden_size)
        hx = (zeros, zeros)
    output, h, c = torch.lstm(inputs, hx, weights, lstm.bias, lstm.num_layers, lstm.dropout, True,
                              lstm.bidirectional, lstm.batch_first)  # fmt: skip
    return output, (h, c)
