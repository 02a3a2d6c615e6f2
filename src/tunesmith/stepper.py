"""One melody's generation steps with the model's context kept as Python ints (:class:`RowStepper`).

:meth:`tunesmith.model.MelodyLSTM.row_stepper` makes one; the one-melody loop of
:mod:`tunesmith.generate.decode` runs it (a melody alone is bound by per-operation overhead).
"""

from __future__ import annotations

import numpy as np
import torch

from tunesmith.errors import TunesmithError
from tunesmith.form import inputs as form_inputs
from tunesmith.model import MAX_SINCE, MelodyLSTM, State


class RowStepper:
    """One row's generation steps: :meth:`MelodyLSTM.step` (eval mode) for a batch of one, with
    the token context (sounding pitch, steps since it, the lookback table) kept as Python ints and
    the input rows' indices written into one reused buffer, so a step is the few tensor operations
    of the folded LSTM cell and the head (a melody alone is bound by per-operation overhead, not
    arithmetic). The tensor operations are those of :meth:`MelodyLSTM._fast_step` on the same
    values, so the logits are the very same; the model must not change while a stepper runs.
    """

    def __init__(self, model: MelodyLSTM, state: State, mode: int, meter: int):
        if state.h.shape[1] != 1:
            raise TunesmithError(f"a row stepper follows one row, the state has {state.h.shape[1]}")
        self.model, self.mode, self.meter = model, int(mode), int(meter)
        self.table, offsets, self.bias, self.layers = model._folded()
        self.offsets = offsets.tolist()
        self.hold, self.places = model.hold_id, model.config.max_position
        self.lags, self.form_inputs = model.lags, model.form_inputs
        self.restatement = getattr(model.config, "form_restatement", True)
        self.sounding, self.since = int(state.sounding[0]), int(state.since[0])
        self.position = int(state.position[0])
        self.recent = state.recent[0].tolist()  # [position][newest first][token, sounding]
        self.h = [state.h[layer] for layer in range(len(self.layers))]
        self.c = [state.c[layer] for layer in range(len(self.layers))]
        self.hidden = self.h[0].shape[1]
        self._index = np.zeros(len(self.offsets), dtype=np.int64)
        self._index_tensor = torch.from_numpy(self._index)  # shares the buffer: no tensor built per step
        self._bag = torch.zeros(1, dtype=torch.long)  # one bag: the offsets nn.functional.embedding_bag makes
        self._head_t, self._head_bias = model.head.weight.t(), model.head.bias
        self._lag_rows = [lag - 1 for lag in self.lags]
        self._copy = (model.copy.weight.t(), model.copy.bias) if model.copy_logits else None
        sources = model.copy.out_features if model.copy_logits else 0  # one per copy source
        self._sources = np.zeros((1, sources), dtype=np.int64)  # the copy sources, rewritten each step
        self._keep = np.zeros((1, sources), dtype=np.float32)  # 1 where a source is known (not pad)
        self._sources_tensor, self._keep_tensor = torch.from_numpy(self._sources), torch.from_numpy(self._keep)

    def step(self, token: int, position: int, form: list[int] | None = None) -> torch.Tensor:
        """Feed ``token`` (the step before's choice), predict the step at ``position`` (in the
        bar) with its form inputs ``form`` (5 ints; None = unknown): logits [1, V]."""
        position = min(max(position, 0), self.places - 1)
        if token != self.hold:
            self.sounding, self.since = token, 0
        else:
            self.since = min(self.since + 1, MAX_SINCE - 1)
        if self.recent[0]:  # the fed token becomes its position's newest
            slot = self.recent[self.position]
            slot.insert(0, [token, self.sounding])
            slot.pop()
        self.position = position
        back = self.recent[position]
        values = [token, position, self.mode, self.meter, self.sounding, self.since]
        values += [back[row][0] for row in self._lag_rows]
        values += [back[row][1] for row in self._lag_rows]
        if self.form_inputs:
            if form is None:
                values += [0] * form_inputs.WIDTH
            else:
                values += list(form) if self.restatement else [form[0], form[1], 0, 0, 0]
        self._index[:] = [v + o for v, o in zip(values, self.offsets)]
        # nn.functional.embedding_bag(index[None], table, mode="sum") without its argument checks
        bag = torch.embedding_bag(self.table, self._index_tensor, self._bag, False, 0, False, None, False, None)[0]
        gates_in = bag + self.bias
        hidden = self.hidden
        for layer, (w_hh_t, w_ih_t, b_next) in enumerate(self.layers):
            gates = torch.addmm(gates_in, self.h[layer], w_hh_t)  # gate order i, f, o, g
            i, f, o = torch.sigmoid(gates[:, : 3 * hidden]).chunk(3, dim=1)
            c = torch.addcmul(f * self.c[layer], i, torch.tanh(gates[:, 3 * hidden :]))
            h = o * torch.tanh(c)
            self.h[layer], self.c[layer] = h, c
            if w_ih_t is not None:
                gates_in = torch.addmm(b_next, h, w_ih_t)
        logits = torch.addmm(self._head_bias, self.h[-1], self._head_t)
        if self._copy is None:
            return logits
        # MelodyLSTM._with_copy for one row: the lookback tokens, then the restated token
        sources = [back[row][0] for row in self._lag_rows]
        if self.form_inputs:
            sources.append(form[3] if form is not None and self.restatement else self.model.pad_id)
        self._sources[0] = sources
        self._keep[0] = [token != self.model.pad_id for token in sources]
        bonus = torch.addmm(self._copy[1], self.h[-1], self._copy[0]).mul_(self._keep_tensor)
        return logits.scatter_add_(-1, self._sources_tensor, bonus)
