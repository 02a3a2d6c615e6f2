"""MelodyLSTM: token embedding (+ context, metric position, mode, meter) → LSTM → softmax over tokens.

Inputs at time t are the token at step t−1 (``<s>`` at t = 0) and the metric position of the
step being predicted (step t), so the model always knows where in the bar its next token falls.
Mode and meter are per-song conditioning; index 0 of each is "<unk>" (unseen or not given).

Three context inputs are derived from the tokens themselves, inside the model, so every caller
feeds only tokens and positions: the pitch (or rest) still sounding and how many steps ago it
began (a ``_`` token alone does not say which note it holds), and Magenta-style lookback: the
tokens that stood at the same position in the bar 1, 2 and 4 bars back, which lets the model
repeat a phrase the way folk tunes do. During generation these travel in the model's state, so
a step costs O(1) however long the melody is.

With ``config.form_inputs`` the model also reads the song's form, computed by the caller
(:mod:`tunesmith.form.inputs`): steps to the phrase's end, phrases still to come, the phrase's
role, and the token (and sounding pitch) at the same offset in the earlier phrase this one
restates. ``form=None`` (or rows of zeros) means "form unknown".
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from tunesmith.config import ModelConfig
from tunesmith.encoding import HOLD, PAD, SPECIALS
from tunesmith.errors import TunesmithError
from tunesmith.form import inputs as form_inputs
from tunesmith.regularization import locked_dropout, weight_dropped_lstm

MAX_SINCE = 32  # steps since the last onset are clipped to this many classes
STEPPED_PREFIX = 4  # a generation prefix this short is stepped, not run as one LSTM pass (see encode_prefix)
FORM_WIDTHS = (8, 4, 4)  # embedding widths of steps to the phrase's end, phrases left, phrase role


class State(NamedTuple):
    """Everything a generation step carries: LSTM state plus the token context.

    ``h``, ``c``: [layers, B, hidden]. ``sounding``, ``since``: [B] last onset token and steps
    since it. ``recent``: [B, max_position, depth, 2] the latest (token, sounding pitch) pairs at
    each position in the bar, newest first. ``position``: [B] position of the step the next fed token belongs to.
    """

    h: torch.Tensor
    c: torch.Tensor
    sounding: torch.Tensor
    since: torch.Tensor
    recent: torch.Tensor
    position: torch.Tensor


class MelodyLSTM(nn.Module):
    """The melody model. Shapes: B = batch, T = time steps, V = vocabulary size."""

    def __init__(self, config: ModelConfig, vocab_size: int, n_modes: int, n_meters: int,
                 pad_id: int = SPECIALS.index(PAD), hold_id: int = SPECIALS.index(HOLD)):  # fmt: skip
        super().__init__()
        self.config = config
        self.vocab_size, self.n_modes, self.n_meters = vocab_size, n_modes, n_meters
        self.pad_id, self.hold_id = pad_id, hold_id
        self.lags = list(config.lookback)
        self.depth = max(self.lags, default=0)
        self._lag_index = [lag - 1 for lag in self.lags]
        self.token_embedding = nn.Embedding(vocab_size, config.embedding)
        self.position_embedding = nn.Embedding(config.max_position, config.position_embedding)
        self.mode_embedding = nn.Embedding(n_modes, config.condition_embedding)
        self.meter_embedding = nn.Embedding(n_meters, config.condition_embedding)
        self.sounding_embedding = nn.Embedding(vocab_size, config.sounding_embedding)
        self.since_embedding = nn.Embedding(MAX_SINCE, config.since_embedding)
        self.lookback_embedding = nn.Embedding(vocab_size, config.lookback_embedding)
        self.lookback_sounding_embedding = nn.Embedding(vocab_size, config.lookback_sounding_embedding)
        width = (config.embedding + config.position_embedding + 2 * config.condition_embedding
                 + config.sounding_embedding + config.since_embedding
                 + len(self.lags) * (config.lookback_embedding + config.lookback_sounding_embedding))
        self.form_inputs = bool(getattr(config, "form_inputs", False))
        if self.form_inputs:
            self.form_embeddings = nn.ModuleList([
                nn.Embedding(form_inputs.N_TO_END, FORM_WIDTHS[0]),
                nn.Embedding(form_inputs.N_LEFT, FORM_WIDTHS[1]),
                nn.Embedding(form_inputs.N_ROLE, FORM_WIDTHS[2]),
                nn.Embedding(vocab_size, config.lookback_embedding),
                nn.Embedding(vocab_size, config.lookback_sounding_embedding),
            ])  # fmt: skip
            width += sum(e.weight.shape[1] for e in self.form_embeddings)
        self.lstm = nn.LSTM(width, config.hidden, config.layers, batch_first=True,
                            dropout=config.dropout if config.layers > 1 else 0.0)  # fmt: skip
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.hidden, vocab_size)
        self.copy_logits = bool(getattr(config, "copy_logits", False))
        if self.copy_logits:  # one score per copy source; zero at first, so training starts from the plain head
            self.copy = nn.Linear(config.hidden, len(self.lags) + (1 if self.form_inputs else 0))
            nn.init.zeros_(self.copy.weight)
            nn.init.zeros_(self.copy.bias)
        self._folded_cache = None  # generation's folded input tables (see _folded)

    def _form(self, form: torch.Tensor | None, shape: tuple) -> torch.Tensor:
        """The form inputs [*shape, 5] (zeros = unknown form when ``form`` is None); a model
        without ``form_restatement`` sees only the phrase positions (role and lookback 0)."""
        if form is None:
            return torch.zeros(*shape, form_inputs.WIDTH, dtype=torch.long, device=self.head.weight.device)
        if not getattr(self.config, "form_restatement", True):
            form = torch.cat([form[..., :2], torch.zeros_like(form[..., 2:])], dim=-1)
        return form

    def _inputs(self, tokens, positions, mode, meter, sounding, since, lookback, form=None) -> torch.Tensor:
        steps = tokens.shape[1]
        condition = torch.cat([self.mode_embedding(mode), self.meter_embedding(meter)], dim=-1)
        extra = []
        if self.form_inputs:
            form = self._form(form, tuple(tokens.shape))
            extra = [embedding(form[..., k]) for k, embedding in enumerate(self.form_embeddings)]
        return torch.cat([
            self.token_embedding(tokens),
            self.position_embedding(positions),
            condition.unsqueeze(1).expand(-1, steps, -1),
            self.sounding_embedding(sounding),
            self.since_embedding(since),
            self.lookback_embedding(lookback[..., 0]).flatten(2),
            self.lookback_sounding_embedding(lookback[..., 1]).flatten(2),
            *extra,
        ], dim=-1)  # fmt: skip

    def _context(self, tokens: torch.Tensor, positions: torch.Tensor, lengths: torch.Tensor | None = None):
        """Context of a whole sequence at once: sounding [B,T], since [B,T], lookback [B,T,lags,2]
        (token and sounding pitch), and the ``recent`` table [B,P,depth,2] after the last token
        (for carrying on with ``step``); with ``lengths`` [B], after each row's last real token
        (the steps after it are padding; everything before it is causal, so padding changes nothing)."""
        batch, steps = tokens.shape
        places = self.config.max_position
        index = torch.arange(steps, device=tokens.device).expand(batch, steps)
        onset = tokens != self.hold_id
        last = torch.where(onset, index, torch.zeros_like(index)).cummax(dim=1).values
        sounding = tokens.gather(1, last)
        since = (index - last).clamp(max=MAX_SINCE - 1)
        # occurrence[b, t]: how many earlier steps share step t's position in the bar
        onehot = nn.functional.one_hot(positions, places)
        occurrence = (onehot.cumsum(1) - onehot).gather(2, positions[..., None])[..., 0]
        where = torch.zeros(batch, places * steps + 1, dtype=torch.long, device=tokens.device)
        where.scatter_(1, positions * steps + occurrence, index)  # step of the j-th occurrence of each position

        def pair_at(step: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
            # the token of step s is input s + 1, and so is the sounding pitch once it is fed
            fed = (step + 1).clamp(max=steps - 1)
            pair = torch.stack([tokens.gather(1, fed), sounding.gather(1, fed)], dim=-1)
            return torch.where(valid[..., None], pair, torch.full_like(pair, self.pad_id))

        lookback = []
        for lag in self.lags:
            earlier = occurrence - lag
            lookback.append(pair_at(where.gather(1, positions * steps + earlier.clamp(min=0)), earlier >= 0))
        # recent[b, p, d]: the (d+1)-th latest pair at position p among steps 0..T-2 (fed so far)
        if lengths is None:
            count = onehot[:, : steps - 1].sum(1)  # [B, P]
        else:
            fed_so_far = torch.arange(steps, device=tokens.device)[None] < (lengths[:, None] - 1)
            count = (onehot * fed_so_far[..., None]).sum(1)
        recent = []
        for d in range(self.depth):
            j = count - 1 - d
            step = where.gather(1, torch.arange(places, device=tokens.device) * steps + j.clamp(min=0))
            recent.append(pair_at(step, j >= 0))
        recent = torch.stack(recent, dim=2) if recent else tokens.new_zeros(batch, places, 0, 2)
        lookback = torch.stack(lookback, dim=2) if lookback else tokens.new_zeros(batch, steps, 0, 2)
        return sounding, since, lookback, recent

    def forward(self, tokens: torch.Tensor, positions: torch.Tensor, mode: torch.Tensor, meter: torch.Tensor,
                state: State | None = None, form: torch.Tensor | None = None) -> tuple[torch.Tensor, State]:  # fmt: skip
        """Logits [B, T, V] of the next token at every step, and the state after the last one.

        ``form``: [B, T, 5] form inputs of each predicted step (see :mod:`tunesmith.form.inputs`),
        read only by a model with ``config.form_inputs``; None = form unknown.
        """
        positions = positions.clamp(0, self.config.max_position - 1)
        if state is not None:  # continuing: the context lives in the state, so go step by step
            logits = []
            for t in range(tokens.shape[1]):
                step_form = None if form is None else form[:, t]
                step_logits, state = self._step(tokens[:, t], positions[:, t], mode, meter, state, step_form)
                logits.append(step_logits)
            return torch.stack(logits, dim=1), state
        sounding, since, lookback, recent = self._context(tokens, positions)
        output, (h, c) = self._lstm(self._inputs(tokens, positions, mode, meter, sounding, since, lookback, form))
        state = State(h, c, sounding[:, -1], since[:, -1], recent, positions[:, -1])
        output = self.dropout(output)
        return self._with_copy(self.head(output), output, lookback, form), state

    def copy_sources(self, lookback: torch.Tensor, form: torch.Tensor | None) -> torch.Tensor:
        """The tokens :meth:`_with_copy` scores [..., K]: the lookback tokens (1, 2, 4 bars back at
        this step's place in the bar), then, for a form-aware model, the restated token (the token
        at the same offset in the phrase this one restates; pad where none or the form is unknown)."""
        sources = lookback[..., 0]
        if not self.form_inputs:
            return sources
        form = self._form(form, tuple(sources.shape[:-1]))
        return torch.cat([sources, form[..., 3:4]], dim=-1)

    def _with_copy(self, logits: torch.Tensor, output: torch.Tensor, lookback: torch.Tensor,
                   form: torch.Tensor | None) -> torch.Tensor:  # fmt: skip
        """``logits`` plus, with ``config.copy_logits``, a copy bonus: for each source token of
        :meth:`copy_sources`, a score computed from the LSTM output (``self.copy``) is added to that
        token's logit (pad sources add nothing). A direct path for "play what stood there", the
        way folk tunes restate bars and phrases, which the softmax head alone learns slowly
        (pointer-style copying, as in Merity et al.'s pointer sentinel and See et al.'s
        pointer-generator, here with a fixed, small set of places to copy from)."""
        if not self.copy_logits:
            return logits
        sources = self.copy_sources(lookback, form)
        bonus = torch.addmm(self.copy.bias, output.reshape(-1, output.shape[-1]), self.copy.weight.t())
        bonus = bonus.reshape(sources.shape).mul_(sources != self.pad_id)
        return logits.scatter_add_(-1, sources, bonus)  # in place: neither op's gradient reads what it overwrites

    @torch.no_grad()
    def encode_prefix(self, fed: torch.Tensor, positions: torch.Tensor, mode: torch.Tensor, meter: torch.Tensor,
                      form: torch.Tensor | None = None) -> tuple[torch.Tensor, State]:  # fmt: skip
        """One melody's ``<s>`` + prefix (``fed``, ``positions`` [1, T]; ``form`` [1, T, 5] or None):
        the logits [1, V] after it and the state there. Every generation loop starts a melody from
        this, so they all start from the very same numbers: a prefix of up to
        :data:`STEPPED_PREFIX` steps (a new melody's ``<s>`` alone) is stepped (:meth:`step`: ~0.8 ms
        a step, where a pass of the LSTM costs ~4 ms however short), a longer one is one pass of
        :meth:`encode`."""
        steps = fed.shape[1]
        if steps > STEPPED_PREFIX:
            return self.encode(fed, [steps], positions, mode, meter, form=form)
        state = None
        for t in range(steps):
            logits, state = self.step(fed[:, t], positions[:, t], mode, meter, state, None if form is None else form[:, t])
        return logits, state

    @torch.no_grad()
    def encode(self, tokens: torch.Tensor, lengths: list[int], positions: torch.Tensor, mode: torch.Tensor,
               meter: torch.Tensor, form: torch.Tensor | None = None) -> tuple[torch.Tensor, State]:  # fmt: skip
        """Sequences of different lengths as ONE call: ``tokens``, ``positions`` [B, T] padded
        after each row's ``lengths[b]`` steps (``form`` [B, T, 5] likewise). Returns the logits
        [B, V] after each row's last real step and the state there, as ``forward`` gives for that
        row alone (the LSTM runs packed, so no row reads its padding)."""
        positions = positions.clamp(0, self.config.max_position - 1)
        ends = torch.tensor(lengths, device=tokens.device)
        sounding, since, lookback, recent = self._context(tokens, positions, ends)
        inputs = self._inputs(tokens, positions, mode, meter, sounding, since, lookback, form)
        packed = nn.utils.rnn.pack_padded_sequence(inputs, ends.cpu(), batch_first=True, enforce_sorted=False)
        output, (h, c) = self.lstm(packed)
        output, _ = nn.utils.rnn.pad_packed_sequence(output, batch_first=True)
        rows = torch.arange(tokens.shape[0], device=tokens.device)
        last = ends - 1
        state = State(h, c, sounding[rows, last], since[rows, last], recent, positions[rows, last])
        last_form = None if form is None else form[rows, last]
        return self._with_copy(self.head(output[rows, last]), output[rows, last], lookback[rows, last], last_form), state

    def _step(self, token, position, mode, meter, state: State | None, form=None) -> tuple[torch.Tensor, State]:
        batch = token.shape[0]
        rows = torch.arange(batch, device=token.device)
        if state is None:
            recent = token.new_full((batch, self.config.max_position, self.depth, 2), self.pad_id)
            sounding, since, lstm_state = token, torch.zeros_like(token), None
        else:
            onset = token != self.hold_id
            sounding = torch.where(onset, token, state.sounding)
            since = torch.where(onset, torch.zeros_like(state.since), (state.since + 1).clamp(max=MAX_SINCE - 1))
            lstm_state = (state.h, state.c)
            # the fed token belongs to the step at state.position: it becomes that position's newest
            recent = state.recent.clone()
            if self.depth:
                newest = torch.stack([token, sounding], dim=-1)[:, None]
                recent[rows, state.position] = torch.cat([newest, state.recent[rows, state.position, :-1]], 1)
        lookback = recent[rows, position][:, self._lag_index]
        if not self.training:
            return self._fast_step(token, position, mode, meter, sounding, since, lookback, lstm_state, recent, form)
        inputs = self._inputs(token[:, None], position[:, None], mode, meter, sounding[:, None], since[:, None],
                              lookback[:, None], None if form is None else form[:, None])  # fmt: skip
        output, (h, c) = self._lstm(inputs, lstm_state)
        output = self.dropout(output[:, 0])
        return self._with_copy(self.head(output), output, lookback, form), State(h, c, sounding, since, recent, position)

    def _lstm(self, inputs: torch.Tensor, lstm_state=None):
        """``self.lstm`` with the config's training-only regularization (:mod:`tunesmith.regularization`:
        variational input dropout, DropConnect on the recurrent weights); in eval mode, or with
        both rates 0, exactly ``self.lstm(inputs, lstm_state)``."""
        inputs = locked_dropout(inputs, self.config.input_dropout, self.training)
        return weight_dropped_lstm(self.lstm, inputs, lstm_state, self.config.weight_drop, self.training)

    def _fast_step(self, token, position, mode, meter, sounding, since, lookback, lstm_state, recent, form=None):
        """The same step as ``nn.LSTM`` in eval mode, with the input layer folded into lookup tables.

        Each embedding times its slice of the first layer's input weights is precomputed, so the
        first layer's input is a sum of table rows, and the cell runs as a few fused operations:
        about 3× fewer kernel launches per step, which is what a one-melody step costs on a CPU.
        """
        table, offsets, bias, layers, head = self._folded()
        parts = [torch.stack([token, position, mode, meter, sounding, since], 1), lookback[..., 0], lookback[..., 1]]
        if self.form_inputs:
            form = self._form(form, (token.shape[0],))  # built once: the copy scores read it too
            parts.append(form)
        index = torch.cat(parts, 1)
        gates_in = nn.functional.embedding_bag(index + offsets, table, mode="sum").add_(bias)
        hs, cs = [], []
        for layer, (w_hh_t, w_ih_t, b_next) in enumerate(layers):
            h = lstm_state[0][layer] if lstm_state is not None else gates_in.new_zeros(token.shape[0], w_hh_t.shape[0])
            c = lstm_state[1][layer] if lstm_state is not None else torch.zeros_like(h)
            # in place on this step's own buffers: the same operations as nn.LSTM's cell, fewer allocations
            gates = addmm_rows_(gates_in, h, w_hh_t)  # gate order i, f, o, g (see _folded)
            hidden = h.shape[1]
            gates[:, : 3 * hidden].sigmoid_()
            i, f, o = gates[:, :hidden], gates[:, hidden : 2 * hidden], gates[:, 2 * hidden : 3 * hidden]
            c = f.mul_(c).addcmul_(i, gates[:, 3 * hidden :].tanh_())
            h = torch.tanh(c).mul_(o)
            hs.append(h)
            cs.append(c)
            if w_ih_t is not None:
                gates_in = addmm_rows(b_next, h, w_ih_t)
        logits = self._head_step(head, hs[-1], lookback, form)
        h, c = (hs[0][None], cs[0][None]) if len(hs) == 1 else (torch.stack(hs), torch.stack(cs))
        return logits, State(h, c, sounding, since, recent, position)

    def _head_step(self, head: tuple, output: torch.Tensor, lookback: torch.Tensor, form: torch.Tensor | None):
        """The head and the copy scores of a generation step as one product (``head``: their weights
        side by side, from :meth:`_folded`): :meth:`_with_copy` of the head's logits, the same sum."""
        scores = addmm_rows(head[1], output, head[0])
        if not self.copy_logits:
            return scores
        vocab, sources = self.head.out_features, self.copy_sources(lookback, form)
        return scores[:, :vocab].scatter_add_(-1, sources, scores[:, vocab:].mul_(sources != self.pad_id))

    def weights_key(self) -> tuple:
        """Changes whenever a weight does (each parameter's storage and version counter): what
        caches of computed weights (:meth:`_folded`, encoded prefixes) are keyed on."""
        weights = self.__dict__.get("_weights")  # the Parameter objects (load_state_dict and training update them in place)
        if weights is None:
            weights = self.__dict__["_weights"] = tuple(self.parameters())
        try:
            return tuple((p.data_ptr(), p._version) for p in weights)
        except RuntimeError:  # a model built in inference mode: its tensors keep no version counter
            return tuple(p.data_ptr() for p in weights)

    def _folded(self):
        """Lookup tables of ``embedding @ W_ih`` per input, built when first needed and again
        whenever a weight has changed (training steps, ``load_state_dict``: each parameter's
        storage and version counter are the key), so every caller — a fresh generation, a
        server's running loop — sees the current weights."""
        key = self.weights_key()
        cached = self._folded_cache  # read once: another thread may replace it meanwhile
        if cached is not None and cached[0] == key:
            return cached[1]
        hidden = self.config.hidden
        # nn.LSTM stacks gates as i, f, g, o; i, f, o, g lets one sigmoid cover three of them
        order = torch.cat([torch.arange(0, 2 * hidden), torch.arange(3 * hidden, 4 * hidden),
                           torch.arange(2 * hidden, 3 * hidden)]).to(self.lstm.weight_ih_l0.device)  # fmt: skip
        with torch.no_grad():
            w_ih = self.lstm.weight_ih_l0[order]
            tables, offsets, column, row = [], [], 0, 0
            pieces = [self.token_embedding, self.position_embedding, self.mode_embedding, self.meter_embedding,
                      self.sounding_embedding, self.since_embedding] + [self.lookback_embedding] * len(self.lags)
            pieces += [self.lookback_sounding_embedding] * len(self.lags)
            pieces += list(self.form_embeddings) if self.form_inputs else []
            for embedding in pieces:
                width = embedding.weight.shape[1]
                tables.append(embedding.weight @ w_ih[:, column : column + width].t())
                offsets.append(row)
                column, row = column + width, row + embedding.weight.shape[0]
            bias = (self.lstm.bias_ih_l0 + self.lstm.bias_hh_l0)[order]
            layers = []
            for layer in range(self.config.layers):
                w_hh_t = getattr(self.lstm, f"weight_hh_l{layer}")[order].t().contiguous()
                if layer + 1 < self.config.layers:
                    nxt = layer + 1
                    w_ih_t = getattr(self.lstm, f"weight_ih_l{nxt}")[order].t().contiguous()
                    b_next = (getattr(self.lstm, f"bias_ih_l{nxt}") + getattr(self.lstm, f"bias_hh_l{nxt}"))[order]
                    layers.append((w_hh_t, w_ih_t, b_next))
                else:
                    layers.append((w_hh_t, None, None))
            offsets = torch.tensor(offsets, device=w_ih.device)
            # the head and the copy scores side by side: one product a step (the logits a view of it)
            heads = [self.head] + ([self.copy] if self.copy_logits else [])
            head = (torch.cat([p.weight for p in heads]).t().contiguous(), torch.cat([p.bias for p in heads]))
            folded = (torch.cat(tables), offsets, bias, layers, head)
        self._folded_cache = (key, folded)
        return folded

    def step(self, token: torch.Tensor, position: torch.Tensor, mode: torch.Tensor, meter: torch.Tensor,
             state: State | None = None, form: torch.Tensor | None = None) -> tuple[torch.Tensor, State]:  # fmt: skip
        """One generation step: ``token``, ``position`` are [B], ``form`` [B, 5] or None (unknown);
        returns logits [B, V] and the new state (no autograd graph: a decoding loop that already
        runs without one skips the context manager, a cost paid on every step)."""
        position = position.clamp(0, self.config.max_position - 1)
        if not torch.is_grad_enabled():
            return self._step(token, position, mode, meter, state, form)
        with torch.no_grad():
            return self._step(token, position, mode, meter, state, form)

    def row_stepper(self, states: list[State], modes: list[int], meters: list[int]):
        """A few rows' generation on from their one-row ``states``: :meth:`step` with Python ints
        (see :class:`tunesmith.stepper.RowStepper`); the same arithmetic, so the same logits."""
        from tunesmith.stepper import RowStepper

        return RowStepper(self, states, modes, meters)

    @staticmethod
    def reorder_state(state: State, index: torch.Tensor) -> State:
        """The state of rows ``index`` (beam search keeps the best branches)."""
        return State(state.h[:, index], state.c[:, index], *(part[index] for part in state[2:]))

    @torch.no_grad()
    def log_likelihood(self, tokens: torch.Tensor, positions: torch.Tensor, mode: torch.Tensor,
                       meter: torch.Tensor, form: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
        """Natural-log probability [B, T−1] of each token given those before it.

        ``tokens`` [B, T] start with ``<s>``; ``positions`` [B, T] are the step-within-bar of each
        token's step (``positions[:, t]`` for ``tokens[:, t]``; the value at t = 0 is unused).
        """
        logits, _ = self.forward(tokens[:, :-1], positions[:, 1:], mode, meter, form=form)
        return torch.log_softmax(logits.float(), dim=-1).gather(-1, tokens[:, 1:, None])[..., 0]


def addmm_rows_(total: torch.Tensor, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``total += x @ weight`` in place, each row as a batch of two or more rows computes it: a
    BLAS multiplies a lone row another way (MKL's matrix-vector path), a rounding apart, and a
    melody must give the same logits alone, beside its other candidates or in a server's batch."""
    if x.shape[0] == 1:
        return total.add_(torch.mm(x.expand(2, -1), weight)[:1])  # the same sum as addmm_ for two rows
    return total.addmm_(x, weight)


def addmm_rows(bias: torch.Tensor, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``bias + x @ weight``, a lone row computed as in a batch (see :func:`addmm_rows_`)."""
    if x.shape[0] == 1:
        return torch.addmm(bias, x.expand(2, -1), weight)[:1]
    return torch.addmm(bias, x, weight)


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
    if name == "mps" and not (getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()):
        raise TunesmithError("device 'mps' was asked for but Apple's MPS is not available here")
    try:
        return torch.device(name)
    except RuntimeError:
        raise TunesmithError(f"unknown device {name!r}: auto, cpu, cuda or mps") from None
