"""The decoding loop: one pass over a :class:`~tunesmith.generate.plan.Plan`, for every scheme.

``<s>`` + the plan's prefix go through the model once; then ``model.step`` runs once per time
step with the carried LSTM state, so a step costs the same at bar 1 and at bar 100. At each step
the token is either fixed by the plan (kept bars, user-fixed notes; its log-probability can be
scored) or chosen: the controls' masks and biases are applied to the logits and a *chooser*
picks — a per-step sampling scheme (:class:`StepChooser`) or beam search (:class:`BeamChooser`).
Beam search reorders rows; the loop then reorders the model state and every control, and
the tokens are traced back through the recorded parents at the end.

One melody with a per-step scheme on the CPU (what ``tunesmith generate`` asks by default), or a
few (a request's candidates), runs the same steps in :func:`_decode_lean`, with the model's context
and the tokens as Python ints and the rows' model steps taken as one: at a batch of a few rows a
step costs its number of tensor operations, not their arithmetic, so that loop keeps them few. It
gives the very melody the batched loop gives (``tests/test_one_row.py``).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import torch

from tunesmith.errors import TunesmithError
from tunesmith.generate.controls import Control, StepContext, control_scores
from tunesmith.generate.sampling import (DrawnAhead, RowRandom, SamplingError, ahead, apply_temperature, choose,
                                         uniform)

# Up to this many rows a step's matrices are so small that a second CPU thread costs more in
# synchronisation than it saves (measured: 20x slower with 2 threads on a busy 2-core machine);
# from 64 rows on, two threads win on an idle machine (56k against 34k steps/s).
SMALL_BATCH = 32
# Up to this many one-melody plans (a request's candidates, its form retries) decode together by
# the lean loop: their model steps shared, each row's controls and draw its own. (On this 2-core
# CPU a lean step costs about 0.4 ms for one row, 0.6 ms for two; the batched loop 1.1 ms at 2 rows.)
LEAN_ROWS = 4


@contextmanager
def cpu_threads(threads: int | None):
    """Run a block with ``threads`` torch CPU threads (None = unchanged), then restore the setting."""
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class StepChooser:
    """A per-step scheme (sample, greedy, mixed, top-k, top-p): one independent choice per row."""

    width = 1

    def __init__(self, scheme: str, temperature: float = 1.0, top_k: int = 8, top_p: float = 0.9,
                 mixed_p: float = 0.5):  # fmt: skip
        self.scheme, self.temperature, self.top_k, self.top_p, self.mixed_p = scheme, temperature, top_k, top_p, mixed_p

    def start(self, searches: int, device: torch.device) -> None:
        pass

    def choose(self, logits, finished, generator):
        """Token ids ``[rows]`` for masked ``logits``; no reordering (``None``)."""
        chosen = choose(logits, self.scheme, self.temperature, self.top_k, self.top_p, self.mixed_p, generator)
        return chosen, None

    def forced(self, logits, token: int, finished) -> None:
        pass

    def best_rows(self, searches: int) -> list[int]:
        return list(range(searches))


class BeamChooser:
    """Magenta-style beam search: each beam branches into ``width`` sampled continuations (drawn
    without replacement at ``temperature``, by Gumbel top-k), and the ``width`` most likely of all
    branches survive, ranked by mean log-probability per step (so ending early is no bonus).
    ``searches`` independent searches run as one batch of ``searches * width`` rows."""

    def __init__(self, width: int, temperature: float = 1.0):
        self.width, self.temperature = width, temperature

    def start(self, searches: int, device: torch.device) -> None:
        self.searches, self.device = searches, device
        # Only the first beam of each search is live at the start, so the beams do not begin as copies.
        score = torch.full((searches, self.width), float("-inf"), device=device)
        score[:, 0] = 0.0
        self.score = score.view(-1)
        self.length = torch.zeros(searches * self.width, device=device)
        self.only_end = None

    def _log_probs(self, logits, finished):
        log_probs = torch.log_softmax(apply_temperature(logits, self.temperature), dim=-1)
        if self.only_end is None:
            self.only_end = torch.full((logits.shape[1],), float("-inf"), device=logits.device)
            self.only_end[self.end] = 0.0
        return torch.where(finished[:, None], self.only_end, log_probs)  # finished beams stay as they are

    def choose(self, logits, finished, generator):
        num, width = self.searches, self.width
        log_probs = self._log_probs(logits, finished)
        uniform_ = uniform(tuple(log_probs.shape), generator, log_probs.device).clamp_(1e-20, 1.0)
        branches = torch.topk(log_probs - torch.log(-torch.log(uniform_)), width, dim=-1).indices
        branch_score = self.score[:, None] + log_probs.gather(-1, branches)
        branch_length = self.length[:, None] + (~finished)[:, None].float()
        ranking = (branch_score / branch_length.clamp(min=1.0)).view(num, width * width)
        best_values, best = torch.topk(ranking, width, dim=-1)
        if not bool(torch.isfinite(best_values[:, 0]).all()):  # NaN scores, or nothing allowed in a search
            raise SamplingError("beam search met scores that are NaN, infinite or all forbidden")
        parent = (torch.arange(num, device=logits.device)[:, None] * width + best // width).view(-1)
        column = (best % width).view(-1)
        self.score, self.length = branch_score[parent, column], branch_length[parent, 0]
        return branches[parent, column], parent

    def forced(self, logits, token: int, finished) -> None:
        """Every beam takes a fixed token: its log-probability joins each beam's score."""
        log_probs = self._log_probs(logits, finished)
        self.score = self.score + log_probs[:, token]
        self.length = self.length + (~finished).float()

    def best_rows(self, searches: int) -> list[int]:
        return [i * self.width for i in range(searches)]  # topk keeps beams sorted, best first


@dataclass
class Decoded:
    """What the loop produced, one entry per search (per melody)."""

    ids: list[list[int]]  # body token ids: prefix, then each step's token, ending with </s> if chosen
    scored: list[float]  # summed natural-log probability of the plan's scored fixed tokens (0 if none)


@torch.inference_mode()
def decode(model, plan, chooser, generator: torch.Generator | RowRandom, controls: list[Control] = ()) -> Decoded:
    """Run ``plan`` for ``plan.num`` melodies with ``chooser`` and the plan's controls plus ``controls``.

    ``generator`` is one seeded stream for the whole batch, or a RowRandom with one per row."""
    return decode_plans(model, [plan], chooser, [generator], controls)[0]


@torch.inference_mode()
def decode_plans(model, plans: list, chooser, generators: list, controls: list[Control] = ()) -> list[Decoded]:
    """Run several plans as ONE pass: ``plans[i]`` gets ``plans[i].num`` rows and draws from
    ``generators[i]`` only, so each plan gives exactly what it gives decoded alone.

    The plans may differ in everything a plan holds (prefix, length, fixed and scored tokens, form,
    key, mode, meter, masks, seed); they must share the vocabulary and the chooser (one scheme and
    temperature). Rows are aligned at their first free step (after their own prefix), each plan
    advances through its own steps and leaves the batch when it is done. Beam search and extra
    ``controls`` (the Control protocol's whole-batch steps) need a single plan."""
    if not plans:
        return []
    if len(plans) > 1 and (chooser.width > 1 or controls):
        raise TunesmithError("beam search and extra controls decode one plan at a time")
    device = next(model.parameters()).device
    rows = sum(plan.num for plan in plans) * chooser.width
    # several plans (a server's batch): one thread, since the 2 cores are shared with other requests
    threads = 1 if device.type == "cpu" and (rows <= SMALL_BATCH or len(plans) > 1) else None
    with cpu_threads(threads):
        lean = rows <= LEAN_ROWS and rows == len(plans) and isinstance(chooser, StepChooser) and device.type == "cpu"
        if lean and hasattr(model, "row_stepper") and not model.training:
            return _decode_lean(model, plans, chooser, generators, [controls] + [()] * (len(plans) - 1), device)
        if len(plans) == 1:
            plan = plans[0]
            return [_decode(model, plan, chooser, generators[0], list(plan.controls) + list(controls), rows, device)]
        from tunesmith.generate.rows import decode_rows

        return decode_rows(model, plans, chooser, generators, device)


def _decode(model, plan, chooser, generator, controls, rows, device) -> Decoded:
    from tunesmith.generate.rows import branches

    vocab, total, prefix = plan.vocab, plan.total_steps, plan.prefix
    # a plan with trunks (regenerate's --join-bars) runs one row per trunk up to its branch step,
    # where each becomes its candidates (rows t * split ... of trunk t), as in rows.py
    last_free = max((s for s in range(len(prefix), total) if s not in plan.fixed), default=-1)
    split = plan.num // plan.trunks if chooser.width == 1 and branches(plan, len(prefix), last_free) else 0
    if split:
        rows = plan.trunks
    positions = plan.positions
    position_ids = torch.tensor(positions, device=device)
    modes = torch.full((rows,), plan.mode_id, dtype=torch.long, device=device)
    meters = torch.full((rows,), plan.meter_id, dtype=torch.long, device=device)
    # Every row starts with the same prefix: run it once, then copy the state to every row.
    fed = torch.tensor([[vocab.start] + prefix], device=device)
    # a form-aware model reads the plan's form inputs (the lookback from each row's own history)
    form = plan.form if getattr(plan, "form", None) is not None and getattr(model, "form_inputs", False) else None
    prefix_form = form.prefix_inputs(prefix, device) if form is not None else None
    logits, state = model.encode_prefix(fed, position_ids[None, : len(prefix) + 1], modes[:1], meters[:1], prefix_form)
    one = torch.zeros(rows, dtype=torch.long, device=device)
    logits, state = logits[one].float(), model.reorder_state(state, one)
    previous = fed[one, -1]
    end = torch.full((rows,), vocab.end, device=device)
    finished = torch.zeros(rows, dtype=torch.bool, device=device)
    scored = torch.zeros(rows, device=device)
    chooser.end = vocab.end
    chooser.start(plan.num, device)
    for control in controls:
        control.start(rows, prefix)
    steps: list[tuple[torch.Tensor, torch.Tensor | None]] = []
    for step in range(len(prefix), total):
        token = plan.fixed.get(step)
        parent = None
        if split and step == plan.branch:  # each trunk's row becomes its candidates, sharing its tokens so far
            parent = torch.arange(rows, device=device).repeat_interleave(split)
            rows, split = rows * split, 0
            logits, previous, finished, scored = logits[parent], previous[parent], finished[parent], scored[parent]
            modes, meters, state = modes[parent], meters[parent], model.reorder_state(state, parent)
            end = torch.full((rows,), vocab.end, device=device)
            for control in controls:
                control.reorder(parent)
        if token is not None:
            if not bool(torch.isfinite(logits).all()):
                raise TunesmithError(f"the model gave NaN or infinite scores at step {step}: the checkpoint is broken")
            if plan.scored_from is not None and step >= plan.scored_from:
                scored += torch.log_softmax(logits, dim=-1)[:, token].masked_fill(finished, 0.0)
            chooser.forced(logits, token, finished)
            chosen = torch.full((rows,), token, device=device)
        else:
            ctx = StepContext(step, positions[step], plan.bar_of_step[step], positions[step] == 0, total, rows,
                              device, vocab, previous)  # fmt: skip
            chosen, beams = _choose(controls, ctx, logits, chooser, finished, generator)
            if beams is not None:
                parent = beams
                finished, scored = finished[parent], scored[parent]
                state = model.reorder_state(state, parent)
                for control in controls:
                    control.reorder(parent)
        chosen = torch.where(finished, end, chosen)  # a finished melody only repeats its end
        for control in controls:
            control.advance(chosen)
        steps.append((chosen, parent))
        finished = finished | (chosen == vocab.end)
        if step + 1 == total or bool(finished.all()):
            break
        step_form = form.inputs(step + 1, device) if form is not None else None
        logits, state = model.step(chosen, position_ids[step + 1].expand(rows), modes, meters, state, form=step_form)
        logits, previous = logits.float(), chosen
    best = chooser.best_rows(plan.num)
    if split:  # every row ended before the branch: each candidate is its trunk
        best = [row // split for row in best]
    return _trace(steps, best, prefix, vocab.end, scored)


def _choose(controls, ctx: StepContext, logits, chooser, finished, generator):
    """The chooser's pick (and beam parents) from the controls' scores at a free step; a step
    the controls leave no token is explained (:func:`_explain`) before the error is raised."""
    scores = control_scores(controls, ctx, logits)
    try:
        return chooser.choose(scores, finished, generator)
    except SamplingError:
        _explain(scores, logits, ctx.step)
        raise


class _LeanRow:
    """One melody of the lean loop: its plan, random stream, controls, logits and tokens so far."""

    def __init__(self, model, plan, generator, controls, device):
        vocab, prefix = plan.vocab, plan.prefix
        self.plan, self.generator, self.controls = plan, generator, controls
        self.fed = torch.tensor([[vocab.start] + prefix], device=device)
        form = plan.form if getattr(plan, "form", None) is not None and getattr(model, "form_inputs", False) else None
        self.form = form
        prefix_form = form.prefix_inputs(prefix, device) if form is not None else None
        position_ids = torch.tensor([plan.positions[: len(prefix) + 1]], device=device)
        mode, meter = torch.tensor([plan.mode_id], device=device), torch.tensor([plan.meter_id], device=device)
        logits, self.state = model.encode_prefix(self.fed, position_ids, mode, meter, prefix_form)
        self.logits = logits.float()
        self.previous = self.fed[:, -1]
        self.scored = torch.zeros(1, device=device)
        self.step, self.tokens = len(prefix), []
        self.chosen = self.previous  # the token chosen at the last step, as a one-row tensor
        for control in controls:
            control.start(1, prefix)


def _decode_lean(model, plans, chooser, generators, controls, device) -> list[Decoded]:
    """:func:`_decode` for a few one-melody plans with a per-step scheme: the same steps, controls
    and draws for each (so the same melodies), each plan with its own controls and random stream,
    the model's context and the tokens kept as Python ints, and the rows' model steps taken as
    one (:meth:`MelodyLSTM.row_stepper`): a melody costs what its tensor operations cost, and a
    request's few candidates share the model's. Rows are aligned at their first free step; a row
    leaves when its melody ends."""
    drawn: dict[int, DrawnAhead] = {}  # one per generator: plans that share one draw from it in turn, as without
    streams = [drawn.setdefault(id(generator), ahead(generator)) for generator in generators]
    rows = [_LeanRow(model, plan, stream, list(plan.controls) + list(extra), device)
            for plan, stream, extra in zip(plans, streams, controls)]  # fmt: skip
    stepper = model.row_stepper([row.state for row in rows], [p.mode_id for p in plans], [p.meter_id for p in plans])
    finished = torch.zeros(1, dtype=torch.bool, device=device)  # a row that goes on never is finished here
    chooser.end = plans[0].vocab.end
    chooser.start(1, device)
    live = list(rows)
    try:
        while live:
            going = [row for row in live if not _lean_step(row, chooser, finished, device)]
            if len(going) < len(live):
                stepper.keep([i for i, row in enumerate(live) if row in going])
            live = going
            if not live:
                break
            forms = [row.form.row_inputs(row.step + 1) if row.form is not None else None for row in live]
            logits = stepper.step([row.tokens[-1] for row in live], [row.plan.positions[row.step + 1] for row in live],
                                  forms).float()  # fmt: skip
            for i, row in enumerate(live):
                row.logits = logits if len(live) == 1 else logits[i : i + 1]
                row.previous, row.step = row.chosen, row.step + 1
    finally:
        for stream in drawn.values():
            if isinstance(stream, DrawnAhead):
                stream.settle()  # each generator left where the numbers taken leave it
    return [Decoded([list(row.plan.prefix) + row.tokens], row.scored.tolist()) for row in rows]


def _lean_step(row: _LeanRow, chooser, finished, device) -> bool:
    """Row ``row``'s token at its step (fixed by the plan, else chosen); True when its melody ends there."""
    plan, step, logits = row.plan, row.step, row.logits
    token = plan.fixed.get(step)
    if token is not None:
        if not bool(torch.isfinite(logits).all()):
            raise TunesmithError(f"the model gave NaN or infinite scores at step {step}: the checkpoint is broken")
        if plan.scored_from is not None and step >= plan.scored_from:
            row.scored += torch.log_softmax(logits, dim=-1)[:, token]
        chosen = torch.full((1,), token, device=device)
    else:
        positions = plan.positions
        ctx = StepContext(step, positions[step], plan.bar_of_step[step], positions[step] == 0, plan.total_steps, 1,
                          device, plan.vocab, row.previous)  # fmt: skip
        chosen, _ = _choose(row.controls, ctx, logits, chooser, finished, row.generator)
        token = int(chosen)
    for control in row.controls:
        control.advance(chosen)
    row.tokens.append(token)
    row.chosen = chosen
    return token == plan.vocab.end or step + 1 == plan.total_steps


def _explain(scores: torch.Tensor, logits: torch.Tensor, step: int) -> None:
    """Say why a chooser refused the scores: NaN from the model, an infinite bias, or a row where
    the controls allow nothing (the choosers check cheaply; this finds the cause)."""
    # NaN compares false, so ``< inf`` also refuses NaN (a bias of +inf would make NaN probabilities)
    ok = (scores < float("inf")).all() & (scores > float("-inf")).any(dim=-1).all()
    if not bool(ok):
        if not bool(torch.isfinite(logits).all()):
            raise TunesmithError(f"the model gave NaN or infinite scores at step {step}: the checkpoint is broken")
        if not bool((scores < float("inf")).all()):
            raise TunesmithError(f"a control's logit bias is not finite at step {step}")
        raise TunesmithError(f"the constraints allow no token at step {step}: they contradict each other there")


def _trace(steps, best: list[int], prefix: list[int], end: int, scored: torch.Tensor) -> Decoded:
    """Follow the recorded parents back from the best rows; cut each row after its ``</s>``."""
    if not steps:
        return Decoded([list(prefix) for _ in best], [0.0] * len(best))
    rows = torch.tensor(best, device=steps[0][0].device)
    final = scored[rows].tolist()
    columns = []
    for chosen, parent in reversed(steps):
        columns.append(chosen[rows])
        if parent is not None:
            rows = parent[rows]
    generated = torch.stack(columns[::-1], dim=1).tolist()
    ids = []
    for row in generated:
        ids.append(list(prefix) + (row[: row.index(end) + 1] if end in row else row))
    return Decoded(ids, final)
