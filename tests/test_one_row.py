"""A melody alone runs a lean path (the model's context as Python ints, the draw searched in
NumPy): it must give exactly what the batched tensor path gives — bit for bit, not nearly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tunesmith.config import ModelConfig
from tunesmith.generate.sampling import sample
from tunesmith.model import MelodyLSTM, State

START, HOLD = 1, 3


def _small_model(seed: int, copy: bool, **settings) -> MelodyLSTM:
    """A small untrained model in eval mode, built as a checkpoint is loaded (outside inference
    mode), with copy scores as if trained when ``copy`` (they start at zero)."""
    torch.manual_seed(seed)
    model = MelodyLSTM(ModelConfig(hidden=24, max_position=12, copy_logits=copy, **settings), 20, 3, 5).eval()
    if copy:
        torch.nn.init.normal_(model.copy.weight)
        torch.nn.init.normal_(model.copy.bias)
    return model


@pytest.mark.parametrize("layers, form_inputs, restatement, lookback, copy", [
    (1, True, True, [1, 2, 4], False), (2, False, True, [1, 3], False), (1, True, False, [], False),
    (1, True, True, [1, 2, 4], True), (2, False, True, [1, 3], True), (1, True, False, [], True),
])  # fmt: skip
def test_the_row_stepper_gives_the_very_logits_of_a_model_step(layers, form_inputs, restatement, lookback, copy):
    model = _small_model(layers, copy, layers=layers, lookback=lookback, form_inputs=form_inputs,
                         form_restatement=restatement)  # fmt: skip
    with torch.inference_mode():
        _compare_steps(model, form_inputs)


def _compare_steps(model: MelodyLSTM, form_inputs: bool) -> None:
    draw = torch.Generator().manual_seed(0)
    tokens = torch.randint(3, 20, (60,), generator=draw)
    tokens[10:14] = HOLD  # holds keep the sounding pitch and count the steps since it
    positions = [(t + 5) % 8 for t in range(61)] + [30, 31]  # a pickup, and positions past max_position
    forms = torch.randint(0, 4, (61, 5), generator=draw)
    mode, meter = torch.tensor([2]), torch.tensor([3])
    fed = torch.tensor([[START, *tokens[:4].tolist()]])
    prefix_form = forms[None, :5] if form_inputs else None
    _, state = model(fed, torch.tensor([positions[:5]]), mode, meter, form=prefix_form)
    stepper = model.row_stepper([state], [2], [3])
    for t in range(4, 60):
        form = forms[t + 1][None] if form_inputs and t % 7 else None  # unknown form now and then
        expected, state = model.step(tokens[t][None], torch.tensor([positions[t + 1]]), mode, meter, state, form)
        logits = stepper.step([int(tokens[t])], [positions[t + 1]], [None if form is None else form[0].tolist()])
        assert torch.equal(logits, expected), t


@pytest.mark.parametrize("form_inputs, copy", [(True, True), (False, True), (True, False)])
def test_a_few_rows_step_as_the_model_steps_them_and_ended_rows_leave(form_inputs, copy):
    """Three melodies with their own prefixes, modes and meters step as one batch of the model's
    step, bit for bit; when one ends the others go on as the model steps the rows left."""
    model = _small_model(5, copy, layers=1, lookback=[1, 2, 4], form_inputs=form_inputs)
    draw = torch.Generator().manual_seed(3)
    tokens = torch.randint(3, 20, (3, 40), generator=draw)
    tokens[1, 8:12] = HOLD
    forms = torch.randint(0, 4, (3, 41, 5), generator=draw)
    modes, meters, starts = [2, 1, 2], [3, 4, 1], [4, 7, 5]  # each row its own prefix length
    positions = [[(t + r) % 8 for t in range(41)] for r in range(3)]
    with torch.inference_mode():
        states = []
        for r in range(3):
            fed = torch.tensor([[START, *tokens[r, : starts[r]].tolist()]])
            prefix_form = forms[r, None, : starts[r] + 1] if form_inputs else None
            _, state = model(fed, torch.tensor([positions[r][: starts[r] + 1]]), torch.tensor([modes[r]]),
                             torch.tensor([meters[r]]), form=prefix_form)  # fmt: skip
            states.append(state)
        stepper = model.row_stepper(states, modes, meters)
        state = State(*(torch.cat(parts, dim=1 if i < 2 else 0) for i, parts in enumerate(zip(*states))))
        rows = [0, 1, 2]
        for t in range(20):
            if t == 9:  # row 1 ends: rows 0 and 2 go on
                rows = [0, 2]
                stepper.keep([0, 2])
                state = model.reorder_state(state, torch.tensor([0, 2]))
            fed = torch.tensor([int(tokens[r, starts[r] + t]) for r in rows])
            where = [positions[r][starts[r] + t + 1] for r in rows]
            form = torch.stack([forms[r, starts[r] + t + 1] for r in rows]) if form_inputs else None
            expected, state = model.step(fed, torch.tensor(where), torch.tensor([modes[r] for r in rows]),
                                         torch.tensor([meters[r] for r in rows]), state, form)  # fmt: skip
            logits = stepper.step(fed.tolist(), where, [f.tolist() for f in form] if form_inputs else [None] * len(rows))
            assert torch.equal(logits, expected), t


def test_one_row_draws_what_the_batched_draw_gives_that_row():
    draw = torch.Generator().manual_seed(1)
    logits = torch.randn(300, 40, generator=draw) * 3
    logits[::3, 5:30] = float("-inf")  # forbidden tokens are never drawn
    logits[1::7, :-1] = float("-inf")  # only the last token left
    batched = sample(logits, torch.Generator().manual_seed(7))
    stream = torch.Generator().manual_seed(7)
    alone = torch.cat([sample(row[None], stream) for row in logits])
    assert alone.tolist() == batched.tolist()
    assert alone.dtype == batched.dtype and alone.shape == batched.shape


@pytest.mark.parametrize("settings", [
    {"bars": 4, "seed": 3},
    {"bars": 4, "seed": 4, "form": "AABA", "scheme": "top-k", "motif": 3.0},
    {"bars": 3, "seed": 5, "meter": "3/4", "primer": "67 _ 65 _", "scale": True, "scheme": "mixed"},
    {"steps": 40, "seed": 6, "full_length": True, "scheme": "top-p", "temperature": 0.7},
    {"bars": 4, "seed": 8, "scheme": "greedy", "range": "C4-C5"},
])  # fmt: skip
def test_a_melody_alone_decodes_as_the_batched_loop_decodes_it(tmp_path, settings):
    from dataclasses import replace

    from synthetic_songs import untrained_checkpoint

    from tunesmith.generate import GenerationConfig, Generator
    from tunesmith.generate import decode as decoding

    generator = Generator.from_checkpoint(untrained_checkpoint(tmp_path / "tiny.pt", seed=2), "cpu")
    config = GenerationConfig(**settings)
    plan = generator.plan(config)
    # fixed tokens after the first free steps, scored from the second one (as regenerating bars does)
    plan = replace(plan, fixed={10: generator.vocab.index["60"], 11: generator.vocab.hold, 14: generator.vocab.rest},
                   scored_from=11)  # fmt: skip
    chooser = decoding.StepChooser(config.scheme, config.temperature, config.top_k, config.top_p, config.mixed_p)
    lean_stream, batched_stream = torch.Generator().manual_seed(plan.seed), torch.Generator().manual_seed(plan.seed)
    lean = decoding.decode(generator.model, plan, chooser, lean_stream)
    with torch.inference_mode(), decoding.cpu_threads(1):
        batched = decoding._decode(generator.model, plan, chooser, batched_stream, list(plan.controls), 1,
                                   torch.device("cpu"))  # fmt: skip
    assert lean.ids == batched.ids and lean.scored == batched.scored
    # the lean loop draws its numbers ahead, and leaves the stream where the numbers it used leave it
    assert torch.equal(lean_stream.get_state(), batched_stream.get_state())
    assert lean.scored[0] < 0  # the fixed tokens were scored


def test_a_few_plans_decode_together_as_each_decodes_alone(tmp_path, monkeypatch):
    """The lean loop takes a request's few candidates at once (their model steps shared): plans
    with their own prefixes, lengths, meters, masks, forms and fixed tokens give, each, the very
    ids and scores the general loop gives it alone, though they end at different steps."""
    from dataclasses import replace

    from synthetic_songs import untrained_checkpoint

    from tunesmith.generate import GenerationConfig, Generator
    from tunesmith.generate import decode as decoding

    generator = Generator.from_checkpoint(untrained_checkpoint(tmp_path / "tiny.pt", seed=3), "cpu")
    configs = [GenerationConfig(bars=3, seed=5, meter="3/4", primer="67 _ 65 _", scale=True),
               GenerationConfig(steps=40, seed=6, full_length=True, range="C4-C5"),
               GenerationConfig(bars=4, seed=7, form="AABA"), GenerationConfig(bars=2, seed=8, meter="6/8")]  # fmt: skip
    plans = [generator.plan(c) for c in configs]
    plans[1] = replace(plans[1], fixed={12: generator.vocab.index["60"], 13: generator.vocab.hold}, scored_from=12)
    chooser = decoding.StepChooser("sample", 1.2)
    streams = [torch.Generator().manual_seed(p.seed) for p in plans]
    lean, calls = decoding._decode_lean, []
    monkeypatch.setattr(decoding, "_decode_lean", lambda model, plans, *rest: calls.append(len(plans)) or lean(model, plans, *rest))
    together = decoding.decode_plans(generator.model, plans, chooser, streams)
    assert calls == [4]  # one lean pass of the four
    with torch.inference_mode(), decoding.cpu_threads(1):
        alone = [decoding._decode(generator.model, p, chooser, torch.Generator().manual_seed(p.seed), list(p.controls), 1,
                                  torch.device("cpu")) for p in plans]  # fmt: skip
    assert [d.ids for d in together] == [d.ids for d in alone]
    assert [d.scored for d in together] == [d.scored for d in alone] and together[1].scored[0] < 0
    assert len({len(d.ids[0]) for d in together}) > 1  # they ended at different steps


@pytest.mark.parametrize("form_inputs, restatement, copy, lookback", [
    (True, True, True, [1, 2, 4]), (False, True, True, [1, 3]), (True, False, False, []),
])  # fmt: skip
def test_the_batch_stepper_steps_rows_that_join_split_and_leave_as_the_model_steps_them(form_inputs, restatement, copy,
                                                                                          lookback):  # fmt: skip
    """The shared loop's stepper (context in NumPy): rows with their own prefixes, modes and meters
    give the model's batched step bit for bit while rows join, a row becomes two (a trunk
    splitting into candidates) and rows leave."""
    from tunesmith.stepper import BatchStepper

    model = _small_model(7, copy, layers=2, lookback=lookback, form_inputs=form_inputs, form_restatement=restatement)
    draw = torch.Generator().manual_seed(4)
    tokens = torch.randint(3, 20, (5, 60), generator=draw)
    tokens[2, 6:12] = HOLD
    forms = torch.randint(0, 4, (5, 61, 5), generator=draw)
    modes, meters, starts = [2, 1, 2, 0, 1], [3, 4, 1, 2, 3], [4, 7, 5, 3, 6]
    positions = [[(t + r) % 8 for t in range(58)] + [20, 21, 22] for r in range(5)]  # past max_position at the end

    def primed(rows):
        states = []
        for r in rows:
            fed = torch.tensor([[START, *tokens[r, : starts[r]].tolist()]])
            prefix_form = forms[r, None, : starts[r] + 1] if form_inputs else None
            states.append(model(fed, torch.tensor([positions[r][: starts[r] + 1]]), torch.tensor([modes[r]]),
                                torch.tensor([meters[r]]), form=prefix_form)[1])  # fmt: skip
        return State(*(torch.cat(parts, dim=1 if i < 2 else 0) for i, parts in enumerate(zip(*states))))

    with torch.inference_mode():
        rows = [0, 1, 2]  # which melody each row plays; at[r]: steps it has taken
        state = primed(rows)
        stepper = BatchStepper(model, state, [modes[r] for r in rows], [meters[r] for r in rows], torch.device("cpu"))
        at = [0, 0, 0]
        for t in range(50):
            if t == 6:  # two melodies join the running rows
                joining = primed([3, 4])
                stepper.extend(joining, [modes[3], modes[4]], [meters[3], meters[4]])
                state = State(*(torch.cat([a, b], dim=1 if i < 2 else 0) for i, (a, b) in enumerate(zip(state, joining))))
                rows, at = rows + [3, 4], at + [0, 0]
            if t in (15, 30):  # row 1 splits into two rows; then rows 0 and 3 leave
                keep = [0, 1, 1, 2, 3, 4] if t == 15 else [1, 2, 3, 5]
                stepper.reorder(np.array(keep))
                state = model.reorder_state(state, torch.tensor(keep))
                rows, at = [rows[k] for k in keep], [at[k] for k in keep]
            fed = [int(tokens[r, starts[r] + a]) for r, a in zip(rows, at)]
            if t >= 15 and rows.count(1) == 2:  # the two copies of melody 1 now choose differently
                fed[rows.index(1) + 1] = int(tokens[0, t])
            where = [positions[r][starts[r] + a + 1] for r, a in zip(rows, at)]
            form = torch.stack([forms[r, starts[r] + a + 1] for r, a in zip(rows, at)]) if form_inputs else None
            if form_inputs and t % 9 == 4:
                form = None  # the form unknown now and then
            expected, state = model.step(torch.tensor(fed), torch.tensor(where), torch.tensor([modes[r] for r in rows]),
                                         torch.tensor([meters[r] for r in rows]), state, form)  # fmt: skip
            logits = stepper.step(np.array(fed), np.array(where), None if form is None else form.numpy())
            assert torch.equal(logits, expected), t
            at = [a + 1 for a in at]


def test_a_row_gives_the_same_logits_alone_and_in_any_batch():
    """A BLAS multiplies a lone row another way than a batch (MKL's matrix-vector path: a rounding
    apart), so a melody decoded alone, beside its other candidates or in a server's batch would
    differ in the last bits; every product of a step takes a lone row as a batch takes it. The
    shipped model's shapes (384 units, 47 tokens and copy scores), with copy scores as if trained."""
    from tunesmith.stepper import BatchStepper

    torch.manual_seed(11)
    model = MelodyLSTM(ModelConfig(hidden=384, copy_logits=True), 47, 3, 6).eval()
    torch.nn.init.normal_(model.copy.weight)
    draw = torch.Generator().manual_seed(5)
    tokens = torch.randint(3, 47, (5, 30), generator=draw)
    with torch.inference_mode():
        _, state = model(torch.cat([torch.full((5, 1), START), tokens[:, :3]], 1), torch.arange(4).repeat(5, 1),
                         torch.tensor([1, 2, 1, 2, 1]), torch.tensor([3, 4, 3, 5, 1]))  # fmt: skip
        modes, meters = [1, 2, 1, 2, 1], [3, 4, 3, 5, 1]
        rows = [model.row_stepper([model.reorder_state(state, torch.tensor([r]))], [modes[r]], [meters[r]]) for r in range(5)]
        pair = model.row_stepper([model.reorder_state(state, torch.tensor([r])) for r in (0, 1)], modes[:2], meters[:2])
        batch = BatchStepper(model, state, modes, meters, torch.device("cpu"))
        for t in range(3, 30):
            where = (t + 1) % 16
            together = batch.step(tokens[:, t].numpy(), np.full(5, where), None)
            if t == 17:  # the pair's first melody ends: the second goes on alone
                pair.keep([1])
            paired = [0, 1] if t < 17 else [1]
            both = pair.step(tokens[paired, t].tolist(), [where] * len(paired), [None] * len(paired))
            for r in range(5):
                alone = rows[r].step([int(tokens[r, t])], [where], [None])
                assert torch.equal(alone[0], together[r]), (t, r)
                if r in paired:
                    assert torch.equal(both[paired.index(r)], together[r]), (t, r)
