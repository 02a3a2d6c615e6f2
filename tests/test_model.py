"""MelodyLSTM: context inputs, and that stepping gives exactly what a whole-sequence pass gives."""

from __future__ import annotations

import pytest
import torch

from tunesmith.config import ModelConfig
from tunesmith.model import MelodyLSTM

PAD, START, HOLD = 0, 1, 3


def sequence(batch: int = 3, steps: int = 40, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    tokens = torch.randint(3, 20, (batch, steps), generator=generator)
    tokens[:, 0] = START
    tokens[0, 5:9] = HOLD
    positions = (torch.arange(steps) % 12).expand(batch, steps).clone()
    positions[1] = (torch.arange(steps) + 5) % 8  # a pickup and a shorter bar
    return tokens, positions, torch.tensor([1, 2, 0]), torch.tensor([1, 2, 3])


@pytest.mark.parametrize("layers", [1, 2])
def test_steps_match_the_whole_sequence_pass(layers):
    torch.manual_seed(layers)
    model = MelodyLSTM(ModelConfig(hidden=32, layers=layers, lookback=[1, 2, 4]), 20, 3, 5).eval()
    tokens, positions, mode, meter = sequence()
    whole, _ = model(tokens, positions, mode, meter)
    state, stepped = None, []
    for t in range(tokens.shape[1]):
        logits, state = model.step(tokens[:, t], positions[:, t], mode, meter, state)
        stepped.append(logits)
    assert torch.allclose(whole, torch.stack(stepped, 1), atol=1e-5)
    # a primed state carries on exactly like the rest of the sequence
    head, primed = model(tokens[:, :15], positions[:, :15], mode, meter)
    rest, _ = model(tokens[:, 15:], positions[:, 15:], mode, meter, primed)
    assert torch.allclose(torch.cat([head, rest], 1), whole, atol=1e-5)


def test_context_inputs_hold_the_sounding_pitch_and_the_bar_lookback():
    model = MelodyLSTM(ModelConfig(hidden=8, lookback=[1, 2]), 20, 3, 5)
    #            <s> 10  _  _  11  12  _  13   (2-step bars: positions alternate 0, 1)
    tokens = torch.tensor([[START, 10, HOLD, HOLD, 11, 12, HOLD, 13]])
    positions = torch.tensor([[0, 1, 0, 1, 0, 1, 0, 1]])
    sounding, since, lookback, _ = model._context(tokens, positions)
    assert sounding.tolist() == [[START, 10, 10, 10, 11, 12, 12, 13]]
    assert since.tolist() == [[0, 0, 1, 2, 0, 0, 1, 0]]
    # target t is tokens[t + 1]; one bar back at the same position is the target two steps earlier
    assert lookback[0, :, 0, 0].tolist() == [PAD, PAD, 10, HOLD, HOLD, 11, 12, HOLD]
    assert lookback[0, :, 1, 0].tolist() == [PAD, PAD, PAD, PAD, 10, HOLD, HOLD, 11]
    # ... and the pitch sounding at that step, which a hold token alone does not name
    assert lookback[0, :, 0, 1].tolist() == [PAD, PAD, 10, 10, 10, 11, 12, 12]


def test_reorder_state_picks_rows():
    torch.manual_seed(0)
    model = MelodyLSTM(ModelConfig(hidden=16, layers=2), 20, 3, 5).eval()
    tokens, positions, mode, meter = sequence()
    _, state = model(tokens, positions, mode, meter)
    index = torch.tensor([2, 2, 0])
    picked = MelodyLSTM.reorder_state(state, index)
    assert torch.equal(picked.h, state.h[:, index]) and torch.equal(picked.recent, state.recent[index])
    logits, _ = model.step(tokens[index, -1], positions[index, -1], mode[index], meter[index], picked)
    expected, _ = model.step(tokens[:, -1], positions[:, -1], mode, meter, state)
    assert torch.allclose(logits, expected[index], atol=1e-6)


def test_training_mode_step_uses_the_lstm_and_agrees_without_dropout():
    torch.manual_seed(0)
    model = MelodyLSTM(ModelConfig(hidden=16, layers=1, dropout=0.0), 20, 3, 5)
    tokens, positions, mode, meter = sequence()
    slow, _ = model._step(tokens[:, 0], positions[:, 0], mode, meter, None)  # training: nn.LSTM path
    model.eval()
    fast, _ = model.step(tokens[:, 0], positions[:, 0], mode, meter, None)  # eval: folded tables
    assert torch.allclose(slow, fast, atol=1e-5)


def test_generation_sees_new_weights():
    torch.manual_seed(0)
    model = MelodyLSTM(ModelConfig(hidden=16), 20, 3, 5).eval()
    tokens, positions, mode, meter = sequence()
    _, primed = model(tokens[:, :5], positions[:, :5], mode, meter)
    before, _ = model.step(tokens[:, 5], positions[:, 5], mode, meter, primed)
    with torch.no_grad():  # as training or load_state_dict would
        model.head.bias.add_(1.0)
        model.lstm.weight_hh_l0.mul_(0.5)
    fresh, _ = model.step(tokens[:, 0], positions[:, 0], mode, meter, None)
    whole, _ = model(tokens[:, :6], positions[:, :6], mode, meter)
    _, primed = model(tokens[:, :5], positions[:, :5], mode, meter)
    after, _ = model.step(tokens[:, 5], positions[:, 5], mode, meter, primed)
    assert not torch.allclose(before, after)
    assert torch.allclose(after, whole[:, 5], atol=1e-5) and torch.allclose(fresh, whole[:, 0], atol=1e-5)


def random_form(batch: int, steps: int, vocab: int, seed: int = 0) -> torch.Tensor:
    from tunesmith.form import inputs as fi

    g = torch.Generator().manual_seed(seed)
    highs = (fi.N_TO_END, fi.N_LEFT, fi.N_ROLE, vocab, vocab)
    form = torch.stack([torch.randint(0, high, (batch, steps), generator=g) for high in highs], -1)
    form[2] = 0  # one song with its form unknown
    return form


@pytest.mark.parametrize("layers", [1, 2])
def test_form_inputs_step_matches_the_whole_sequence_pass(layers):
    torch.manual_seed(layers)
    model = MelodyLSTM(ModelConfig(hidden=32, layers=layers, lookback=[1, 2], form_inputs=True), 20, 3, 5).eval()
    tokens, positions, mode, meter = sequence()
    form = random_form(3, tokens.shape[1], 20)
    whole, _ = model(tokens, positions, mode, meter, form=form)
    state, stepped = None, []
    for t in range(tokens.shape[1]):
        logits, state = model.step(tokens[:, t], positions[:, t], mode, meter, state, form=form[:, t])
        stepped.append(logits)
    assert torch.allclose(whole, torch.stack(stepped, 1), atol=1e-5)
    # the form changes the prediction, and None reads as "unknown" (all zeros)
    blind, _ = model(tokens, positions, mode, meter)
    assert not torch.allclose(whole[:2], blind[:2], atol=1e-4)
    assert torch.allclose(whole[2], blind[2], atol=1e-6)
    model.train()  # the training-mode step (nn.LSTM) agrees with the folded tables without dropout
    model.dropout.p, model.lstm.dropout = 0.0, 0.0
    slow, _ = model.step(tokens[:, 0], positions[:, 0], mode, meter, None, form=form[:, 0])
    assert torch.allclose(slow, whole[:, 0], atol=1e-5)


def test_positions_only_model_ignores_role_and_lookback():
    torch.manual_seed(0)
    config = ModelConfig(hidden=16, layers=1, lookback=[1], form_inputs=True, form_restatement=False)
    model = MelodyLSTM(config, 20, 3, 5).eval()
    tokens, positions, mode, meter = sequence()
    form = random_form(3, tokens.shape[1], 20)
    other = form.clone()
    other[..., 2:] = random_form(3, tokens.shape[1], 20, seed=1)[..., 2:]
    assert torch.allclose(model(tokens, positions, mode, meter, form=form)[0],
                          model(tokens, positions, mode, meter, form=other)[0])  # fmt: skip
    step, _ = model.step(tokens[:, 0], positions[:, 0], mode, meter, None, form=other[:, 0])
    assert torch.allclose(step, model(tokens, positions, mode, meter, form=form)[0][:, 0], atol=1e-5)


@pytest.mark.parametrize("layers", [1, 2])
def test_sequences_of_different_lengths_encode_in_one_call_as_each_alone(layers):
    """``encode`` reads each padded row to its own end: the logits there and the state (LSTM and
    token context) are those of the row alone, so generation carries on the same from either."""
    torch.manual_seed(layers)
    model = MelodyLSTM(ModelConfig(hidden=32, layers=layers, lookback=[1, 2, 4], form_inputs=True), 20, 3, 5).eval()
    tokens, positions, mode, meter = sequence()
    form = random_form(3, tokens.shape[1], 20)
    lengths = [40, 17, 29]
    padded = tokens.clone()
    for row, length in enumerate(lengths):
        padded[row, length:] = PAD
    logits, state = model.encode(padded, lengths, positions, mode, meter, form=form)
    for row, length in enumerate(lengths):
        one = slice(row, row + 1)
        alone, own = model(tokens[one, :length], positions[one, :length], mode[one], meter[one], form=form[one, :length])
        assert torch.allclose(logits[row], alone[0, -1], atol=1e-5)
        assert torch.allclose(state.h[:, row], own.h[:, 0], atol=1e-5) and torch.allclose(state.c[:, row], own.c[:, 0], atol=1e-5)
        for part in range(2, len(state)):
            assert torch.equal(state[part][row], own[part][0])
        # the next step from either state gives the same prediction
        token, position = tokens[one, length - 1], positions[one, (length) % 40]
        rows = torch.tensor([row])
        after, _ = model.step(token, position, mode[one], meter[one], model.reorder_state(state, rows))
        expected, _ = model.step(token, position, mode[one], meter[one], own)
        assert torch.allclose(after, expected, atol=1e-5)


def test_a_running_loop_sees_new_weights_without_a_fresh_generation():
    """A server's loop never starts a generation from scratch (prefixes come from ``encode``):
    the folded tables still follow the weights, changed in place or loaded."""
    torch.manual_seed(0)
    model = MelodyLSTM(ModelConfig(hidden=16), 20, 3, 5).eval()
    tokens, positions, mode, meter = sequence()
    lengths = [5] * tokens.shape[0]
    _, state = model.encode(tokens[:, :5], lengths, positions[:, :5], mode, meter)
    before, _ = model.step(tokens[:, 5], positions[:, 5], mode, meter, state)
    with torch.no_grad():
        model.lstm.weight_ih_l0.mul_(0.5)  # an input weight: only the folded tables carry it
    _, state = model.encode(tokens[:, :5], lengths, positions[:, :5], mode, meter)
    after, _ = model.step(tokens[:, 5], positions[:, 5], mode, meter, state)
    whole, _ = model(tokens[:, :6], positions[:, :6], mode, meter)
    assert not torch.allclose(before, after) and torch.allclose(after, whole[:, 5], atol=1e-5)
    model.load_state_dict(MelodyLSTM(ModelConfig(hidden=16), 20, 3, 5).state_dict())
    loaded, _ = model.step(tokens[:, 5], positions[:, 5], mode, meter, state)
    assert not torch.allclose(loaded, after)


def copying_model(form_inputs: bool = True, layers: int = 1) -> MelodyLSTM:
    torch.manual_seed(layers)
    config = ModelConfig(hidden=32, layers=layers, lookback=[1, 2], form_inputs=form_inputs, copy_logits=True)
    model = MelodyLSTM(config, 20, 3, 5).eval()
    torch.nn.init.normal_(model.copy.weight)  # as trained: they start at zero
    torch.nn.init.normal_(model.copy.bias)
    return model


def test_copy_logits_add_a_score_to_the_lookback_and_restated_tokens_only():
    model = copying_model()
    tokens, positions, mode, meter = sequence()
    form = random_form(3, tokens.shape[1], 20)
    with_copy, _ = model(tokens, positions, mode, meter, form=form)
    model.copy_logits = False
    plain, _ = model(tokens, positions, mode, meter, form=form)
    model.copy_logits = True
    _, _, lookback, _ = model._context(tokens, positions)
    sources = torch.cat([lookback[..., 0], form[..., 3:4]], -1)
    sources[2, :, -1] = PAD  # the third song's form is unknown: nothing is restated
    output, _ = model.lstm(model._inputs(tokens, positions, mode, meter, *model._context(tokens, positions)[:3], form))
    scores = model.copy(output)
    expected = plain.clone()
    for b in range(3):
        for t in range(tokens.shape[1]):
            for k, token in enumerate(sources[b, t].tolist()):
                if token != PAD:
                    expected[b, t, token] += scores[b, t, k]
    assert torch.allclose(with_copy, expected, atol=1e-5)
    assert not torch.allclose(with_copy, plain, atol=1e-3)
    # where no source is known (the first steps, no form) the logits are the plain head's
    assert torch.equal((with_copy != plain).any(-1)[2, :2], torch.tensor([False, False]))
    # training reaches the copy layer through the in-place bonus: a copied token's loss moves it
    model.train()
    logits, _ = model(tokens, positions, mode, meter, form=form)
    torch.nn.functional.cross_entropy(logits.reshape(-1, 20), tokens.roll(-1, 1).reshape(-1)).backward()
    assert model.copy.weight.grad is not None and model.copy.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("form_inputs, layers", [(True, 1), (False, 2)])
def test_copy_logits_are_the_same_stepped_encoded_and_in_training_mode(form_inputs, layers):
    model = copying_model(form_inputs, layers)
    tokens, positions, mode, meter = sequence()
    form = random_form(3, tokens.shape[1], 20) if form_inputs else None
    whole, _ = model(tokens, positions, mode, meter, form=form)
    state, stepped = None, []
    for t in range(tokens.shape[1]):
        logits, state = model.step(tokens[:, t], positions[:, t], mode, meter, state,
                                   form=None if form is None else form[:, t])  # fmt: skip
        stepped.append(logits)
    assert torch.allclose(whole, torch.stack(stepped, 1), atol=1e-5)
    lengths = [40, 17, 29]
    encoded, _ = model.encode(tokens, lengths, positions, mode, meter, form=form)
    for row, length in enumerate(lengths):
        assert torch.allclose(encoded[row], whole[row, length - 1], atol=1e-5)
    model.train()  # the training-mode step (nn.LSTM) agrees without dropout
    model.dropout.p, model.lstm.dropout = 0.0, 0.0
    _, primed = model(tokens[:, :9], positions[:, :9], mode, meter, form=None if form is None else form[:, :9])
    slow, _ = model.step(tokens[:, 9], positions[:, 9], mode, meter, primed, form=None if form is None else form[:, 9])
    assert torch.allclose(slow, whole[:, 9], atol=1e-5)
