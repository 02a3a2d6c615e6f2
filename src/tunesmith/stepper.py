"""A few melodies' generation steps with the model's context kept as Python ints (:class:`RowStepper`).

:meth:`tunesmith.model.MelodyLSTM.row_stepper` makes one; the lean loop of
:mod:`tunesmith.generate.decode` runs it (a melody alone, or a request's few candidates, is
bound by per-operation overhead: the rows of one step share its few tensor operations).
"""

from __future__ import annotations

import numpy as np
import torch

from tunesmith.errors import TunesmithError
from tunesmith.form import inputs as form_inputs
from tunesmith.model import MAX_SINCE, MelodyLSTM, State


class RowStepper:
    """A few rows' generation steps: :meth:`MelodyLSTM.step` (eval mode) for a small batch, with
    each row's token context (sounding pitch, steps since it, the lookback table, mode and meter)
    kept as Python ints and the input rows' indices written into one reused buffer, so a step is
    the few tensor operations of the folded LSTM cell and the head, whatever the rows (a few
    melodies are bound by per-operation overhead, not arithmetic). The tensor operations are those
    of :meth:`MelodyLSTM._fast_step` on the same values, so the logits are the very same as a
    model step of the same rows; the model must not change while a stepper runs. Rows whose
    melodies have ended leave through :meth:`keep`.
    """

    def __init__(self, model: MelodyLSTM, states: list[State], modes: list[int], meters: list[int]):
        if any(state.h.shape[1] != 1 for state in states):
            raise TunesmithError("a row stepper starts from one-row states, one per melody")
        self.model = model
        self.modes, self.meters = [int(m) for m in modes], [int(m) for m in meters]
        self.table, offsets, self.bias, self.layers = model._folded()
        self.offsets = offsets.tolist()
        self.hold, self.places = model.hold_id, model.config.max_position
        self.lags, self.form_inputs = model.lags, model.form_inputs
        self.restatement = getattr(model.config, "form_restatement", True)
        self.sounding = [int(state.sounding[0]) for state in states]
        self.since = [int(state.since[0]) for state in states]
        self.position = [int(state.position[0]) for state in states]
        self.recent = [state.recent[0].tolist() for state in states]  # per row: [position][newest first][token, sounding]
        layers = range(len(self.layers))
        self.h = [torch.cat([state.h[layer] for state in states]) for layer in layers]
        self.c = [torch.cat([state.c[layer] for state in states]) for layer in layers]
        self.hidden = self.h[0].shape[1]
        self._head_t, self._head_bias = model.head.weight.t(), model.head.bias
        self._lag_rows = [lag - 1 for lag in self.lags]
        self._copy = (model.copy.weight.t(), model.copy.bias) if model.copy_logits else None
        self._buffers(len(states))

    def _buffers(self, rows: int) -> None:
        width = len(self.offsets)
        self._index = np.zeros(rows * width, dtype=np.int64)
        self._index_tensor = torch.from_numpy(self._index)  # shares the buffer: no tensor built per step
        self._bags = torch.arange(0, rows * width, width)  # each row one bag: the offsets embedding_bag makes
        sources = self.model.copy.out_features if self.model.copy_logits else 0  # one per copy source
        self._sources = np.zeros((rows, sources), dtype=np.int64)  # the copy sources, rewritten each step
        self._keep = np.zeros((rows, sources), dtype=np.float32)  # 1 where a source is known (not pad)
        self._sources_tensor, self._keep_tensor = torch.from_numpy(self._sources), torch.from_numpy(self._keep)

    @property
    def rows(self) -> int:
        return len(self.modes)

    def keep(self, rows: list[int]) -> None:
        """Only rows ``rows`` (indices of the current rows, in order) go on: the others have ended."""
        if rows == list(range(self.rows)):
            return
        index = torch.tensor(rows, dtype=torch.long)
        self.h, self.c = [h[index] for h in self.h], [c[index] for c in self.c]
        for name in ("modes", "meters", "sounding", "since", "position", "recent"):
            values = getattr(self, name)
            setattr(self, name, [values[row] for row in rows])
        self._buffers(len(rows))

    def step(self, tokens: list[int], positions: list[int], forms: list[list[int] | None]) -> torch.Tensor:
        """Feed each row its ``tokens[r]`` (the step before's choice) and predict the step at
        ``positions[r]`` (in the bar) with form inputs ``forms[r]`` (5 ints; None = unknown):
        logits [rows, V]."""
        values, sources = [], []
        for row, (token, position, form) in enumerate(zip(tokens, positions, forms)):
            values += self._row_inputs(row, token, position, form)
            if self._copy is not None:  # MelodyLSTM._with_copy: the lookback tokens, then the restated token
                back = self.recent[row][self.position[row]]
                row_sources = [back[lag][0] for lag in self._lag_rows]
                if self.form_inputs:
                    row_sources.append(form[3] if form is not None and self.restatement else self.model.pad_id)
                sources.append(row_sources)
        self._index[:] = values
        # nn.functional.embedding_bag(index, table, mode="sum") without its argument checks
        bag = torch.embedding_bag(self.table, self._index_tensor, self._bags, False, 0, False, None, False, None)[0]
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
        self._sources[:] = sources
        self._keep[:] = [[token != self.model.pad_id for token in row] for row in sources]
        bonus = torch.addmm(self._copy[1], self.h[-1], self._copy[0]).mul_(self._keep_tensor)
        return logits.scatter_add_(-1, self._sources_tensor, bonus)

    def _row_inputs(self, row: int, token: int, position: int, form: list[int] | None) -> list[int]:
        """Row ``row``'s table indices for this step (its context advanced by ``token``)."""
        position = min(max(position, 0), self.places - 1)
        if token != self.hold:
            self.sounding[row], self.since[row] = token, 0
        else:
            self.since[row] = min(self.since[row] + 1, MAX_SINCE - 1)
        recent = self.recent[row]
        if recent[0]:  # the fed token becomes its position's newest
            slot = recent[self.position[row]]
            slot.insert(0, [token, self.sounding[row]])
            slot.pop()
        self.position[row] = position
        back = recent[position]
        values = [token, position, self.modes[row], self.meters[row], self.sounding[row], self.since[row]]
        values += [back[lag][0] for lag in self._lag_rows]
        values += [back[lag][1] for lag in self._lag_rows]
        if self.form_inputs:
            if form is None:
                values += [0] * form_inputs.WIDTH
            else:
                values += list(form) if self.restatement else [form[0], form[1], 0, 0, 0]
        return [v + o for v, o in zip(values, self.offsets)]
