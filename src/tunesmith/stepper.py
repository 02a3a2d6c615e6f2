"""Generation steps with the model's context kept outside torch: a few melodies' as Python ints
(:class:`RowStepper`), many rows' as NumPy arrays (:class:`BatchStepper`).

:meth:`tunesmith.model.MelodyLSTM.row_stepper` makes a RowStepper; the lean loop of
:mod:`tunesmith.generate.decode` runs it (a melody alone, or a request's few candidates, is
bound by per-operation overhead: the rows of one step share its few tensor operations). The
shared loop of :mod:`tunesmith.generate.stream` (a server's continuous batching) runs a
BatchStepper. Both give the very logits of :meth:`MelodyLSTM.step` on the same rows.
"""

from __future__ import annotations

import numpy as np
import torch

from tunesmith.errors import TunesmithError
from tunesmith.form import inputs as form_inputs
from tunesmith.model import MAX_SINCE, MelodyLSTM, State, addmm_rows, addmm_rows_


class _Cell:
    """The tensor operations of a generation step shared by :class:`RowStepper` and
    :class:`BatchStepper`: the folded input tables (one ``embedding_bag`` of each row's indices),
    the LSTM cell and the head with its copy scores — those of :meth:`MelodyLSTM._fast_step` on
    the same values, so the logits are the very same as a model step of the same rows."""

    def _setup(self, model: MelodyLSTM) -> None:
        self.model = model
        self.table, offsets, self.bias, self.layers, (self._head_t, self._head_bias) = model._folded()
        self.offsets = offsets.tolist()
        self.hold, self.places = model.hold_id, model.config.max_position
        self.lags, self.form_inputs = model.lags, model.form_inputs
        self.restatement = getattr(model.config, "form_restatement", True)
        self._vocab = model.head.out_features
        self._lag_rows = [lag - 1 for lag in self.lags]
        self._copy = bool(model.copy_logits)  # the step adds copy scores

    def _buffers(self, rows: int) -> None:
        width = len(self.offsets)
        self._index = np.zeros(rows * width, dtype=np.int64)
        self._index_tensor = torch.from_numpy(self._index)  # shares the buffer: no tensor built per step
        self._bags = torch.arange(0, rows * width, width)  # each row one bag: the offsets embedding_bag makes
        sources = self.model.copy.out_features if self.model.copy_logits else 0  # one per copy source
        self._sources = np.zeros((rows, sources), dtype=np.int64)  # the copy sources, rewritten each step
        self._keep = np.zeros((rows, sources), dtype=np.float32)  # 1 where a source is known (not pad)
        self._sources_tensor, self._keep_tensor = torch.from_numpy(self._sources), torch.from_numpy(self._keep)

    def _logits(self, index: torch.Tensor, bags: torch.Tensor, sources: torch.Tensor | None,
                keep: torch.Tensor | None) -> torch.Tensor:  # fmt: skip
        """The step of every row from its table ``index`` (``bags``: each row's first; one bag a
        row), the LSTM state advanced; ``sources``/``keep``: the copy sources and 1.0 where known."""
        # nn.functional.embedding_bag(index, table, mode="sum") without its argument checks
        gates_in = torch.embedding_bag(self.table, index, bags, False, 0, False, None, False, None)[0].add_(self.bias)
        hidden = self.hidden
        for layer, (w_hh_t, w_ih_t, b_next) in enumerate(self.layers):
            # in place on this step's own buffers, as MelodyLSTM._fast_step: fewer allocations
            gates = addmm_rows_(gates_in, self.h[layer], w_hh_t)  # gate order i, f, o, g
            gates[:, : 3 * hidden].sigmoid_()
            i, f, o = gates[:, :hidden], gates[:, hidden : 2 * hidden], gates[:, 2 * hidden : 3 * hidden]
            c = f.mul_(self.c[layer]).addcmul_(i, gates[:, 3 * hidden :].tanh_())
            h = torch.tanh(c).mul_(o)
            self.h[layer], self.c[layer] = h, c
            if w_ih_t is not None:
                gates_in = addmm_rows(b_next, h, w_ih_t)
        scores = addmm_rows(self._head_bias, self.h[-1], self._head_t)  # the head, then the copy scores
        if not self._copy:
            return scores
        vocab = self._vocab
        return scores[:, :vocab].scatter_add_(-1, sources, scores[:, vocab:].mul_(keep))


class RowStepper(_Cell):
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
        self._setup(model)
        self.modes, self.meters = [int(m) for m in modes], [int(m) for m in meters]
        self.sounding = [int(state.sounding[0]) for state in states]
        self.since = [int(state.since[0]) for state in states]
        self.position = [int(state.position[0]) for state in states]
        self.recent = [state.recent[0].tolist() for state in states]  # per row: [position][newest first][token, sounding]
        layers = range(len(self.layers))
        self.h = [torch.cat([state.h[layer] for state in states]) for layer in layers]
        self.c = [torch.cat([state.c[layer] for state in states]) for layer in layers]
        self.hidden = self.h[0].shape[1]
        self._buffers(len(states))

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
            if self._copy:  # MelodyLSTM._with_copy: the lookback tokens, then the restated token
                back = self.recent[row][self.position[row]]
                row_sources = [back[lag][0] for lag in self._lag_rows]
                if self.form_inputs:
                    row_sources.append(form[3] if form is not None and self.restatement else self.model.pad_id)
                sources.append(row_sources)
        self._index[:] = values
        if self._copy:
            self._sources[:] = sources
            self._keep[:] = [[token != self.model.pad_id for token in row] for row in sources]
        return self._logits(self._index_tensor, self._bags, self._sources_tensor, self._keep_tensor)

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


class BatchStepper(_Cell):
    """Many rows' generation steps (the shared loop of :mod:`tunesmith.generate.stream`, dozens of
    rows that join and leave between steps): :meth:`MelodyLSTM.step` (eval mode) with the rows'
    token context — sounding pitch, steps since it, the lookback table, position, mode and meter —
    kept as NumPy arrays and advanced by a dozen array operations a step whatever the rows, where
    the model's own step spends a tensor operation (ten times the cost) on each. The tensor
    operations are :class:`RowStepper`'s, so the logits are the very same as a model step of the
    same rows. Rows join with :meth:`extend` and leave or repeat with :meth:`reorder`.
    """

    def __init__(self, model: MelodyLSTM, state: State, modes, meters, device: torch.device):
        if model.training:
            raise TunesmithError("generation needs the model in eval mode (model.eval())")
        self.device, self._on_cpu = device, device.type == "cpu"
        self._setup(model)
        self.h, self.c = list(state.h.unbind(0)), list(state.c.unbind(0))
        self.hidden = self.h[0].shape[1]
        self.sounding, self.since, self.recent, self.position = _host(state)
        self.recent = self.recent.copy()  # written in place each step: never the caller's (a cached prefix's) array
        self.modes, self.meters = np.asarray(modes, np.int64), np.asarray(meters, np.int64)
        self._pad = model.pad_id
        self._rows = -1

    @property
    def rows(self) -> int:
        return int(self.sounding.shape[0])

    def refresh(self) -> None:
        """Take the model's tables again if its weights changed since (never while a server runs)."""
        if self.model._folded()[0] is not self.table:
            self._setup(self.model)

    def extend(self, state: State, modes, meters) -> None:
        """Rows joining after the current ones, from their model ``state`` (rows in order)."""
        self.h = [torch.cat([old, new]) for old, new in zip(self.h, state.h.unbind(0))]
        self.c = [torch.cat([old, new]) for old, new in zip(self.c, state.c.unbind(0))]
        for name, new in zip(("sounding", "since", "recent", "position"), _host(state)):
            setattr(self, name, np.concatenate([getattr(self, name), new]))
        self.modes = np.concatenate([self.modes, np.asarray(modes, np.int64)])
        self.meters = np.concatenate([self.meters, np.asarray(meters, np.int64)])

    def reorder(self, index: np.ndarray) -> None:
        """Row ``index[r]`` becomes row ``r`` (rows leave, or a row becomes several)."""
        on_device = torch.from_numpy(index).to(self.device)
        self.h, self.c = [h[on_device] for h in self.h], [c[on_device] for c in self.c]
        for name in ("sounding", "since", "recent", "position", "modes", "meters"):
            setattr(self, name, getattr(self, name)[index])

    def step(self, tokens: np.ndarray, positions: np.ndarray, form: np.ndarray | None) -> torch.Tensor:
        """Feed each row its ``tokens[r]`` (the step before's choice) and predict the step at
        ``positions[r]`` (in the bar) with form inputs ``form[r]`` ([rows, 5]; None = unknown):
        logits [rows, V] on the stepper's device."""
        rows = self.rows
        if rows != self._rows:
            self._buffers(rows)
        positions = np.minimum(np.maximum(positions, 0), self.places - 1)  # np.clip costs ten times more
        onset = tokens != self.hold
        self.sounding = np.where(onset, tokens, self.sounding)
        self.since = np.where(onset, 0, np.minimum(self.since + 1, MAX_SINCE - 1))
        everyone = self._everyone
        if self.recent.shape[2]:  # the fed token becomes its position's newest
            slot = self.recent[everyone, self.position]
            slot[:, 1:] = slot[:, :-1]
            slot[:, 0, 0], slot[:, 0, 1] = tokens, self.sounding
            self.recent[everyone, self.position] = slot
        self.position = positions
        back = self.recent[everyone, positions][:, self._lag_rows]  # [rows, lags, 2]
        index, lags = self._index2d, len(self._lag_rows)
        index[:, 0], index[:, 1], index[:, 2], index[:, 3] = tokens, positions, self.modes, self.meters
        index[:, 4], index[:, 5] = self.sounding, self.since
        index[:, 6 : 6 + lags], index[:, 6 + lags : 6 + 2 * lags] = back[:, :, 0], back[:, :, 1]
        if self.form_inputs:  # unknown (None): zeros; without restatement only the phrase positions
            known, first, read = form is not None, 6 + 2 * lags, 5 if self.restatement else 2
            index[:, first:] = 0
            if known:
                index[:, first : first + read] = form[:, :read]
        index += self._offsets
        if self._copy:
            self._sources[:, :lags] = back[:, :, 0]
            if self.form_inputs:
                self._sources[:, lags] = form[:, 3] if known and self.restatement else self._pad
            np.not_equal(self._sources, self._pad, out=self._keep)
        tensors = (self._index_tensor, self._bags, self._sources_tensor, self._keep_tensor)
        if not self._on_cpu:  # the host buffers copied over (the bags' offsets are there already)
            tensors = tuple(t if t is self._bags else t.to(self.device) for t in tensors)
        if torch.is_grad_enabled():  # a loop that already runs without autograd skips the context manager
            with torch.no_grad():
                return self._logits(*tensors)
        return self._logits(*tensors)

    def _buffers(self, rows: int) -> None:
        super()._buffers(rows)
        self._bags = self._bags.to(self.device)
        self._rows = rows
        self._index2d = self._index.reshape(rows, len(self.offsets))
        self._offsets = np.asarray(self.offsets, np.int64)
        self._everyone = np.arange(rows)


def _host(state: State) -> tuple[np.ndarray, ...]:
    """A model state's token context as NumPy arrays on the host: sounding, since, recent, position."""
    parts = (state.sounding, state.since, state.recent, state.position)
    return tuple(np.asarray(part.cpu().numpy(), np.int64) for part in parts)
