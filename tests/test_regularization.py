"""AWD-LSTM-style regularization (model.input_dropout, model.weight_drop, train.decoupled_decay):
off, training is bit for bit what it was; on, it changes training only — eval mode, the folded
generation step and the row stepper still read the plain weights and agree with nn.LSTM."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tunesmith.config import Config, ModelConfig, TrainConfig
from tunesmith.errors import TunesmithError
from tunesmith.form import inputs as fi
from tunesmith.model import MelodyLSTM
from tunesmith.regularization import locked_dropout, weight_dropped_lstm
from tunesmith.training.loop import _optimizer

START, HOLD = 1, 3


def batch(seed: int = 0, rows: int = 3, steps: int = 30):
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(3, 20, (rows, steps), generator=g)
    tokens[:, 0] = START
    tokens[0, 4:8] = HOLD
    positions = (torch.arange(steps) % 8).expand(rows, steps).clone()
    highs = (fi.N_TO_END, fi.N_LEFT, fi.N_ROLE, 20, 20)
    form = torch.stack([torch.randint(0, h, (rows, steps), generator=g) for h in highs], -1)
    return tokens, positions, torch.tensor([1, 2, 0]), torch.tensor([1, 2, 3]), form


def model_with(layers: int = 1, **options) -> MelodyLSTM:
    torch.manual_seed(7)
    config = ModelConfig(hidden=24, layers=layers, lookback=[1, 2], max_position=8, form_inputs=True, **options)
    return MelodyLSTM(config, 20, 3, 5)


@pytest.mark.parametrize("layers", [1, 2])
def test_off_the_training_pass_is_bit_for_bit_the_plain_lstm_pass(layers):
    model = model_with(layers)  # both rates 0, the defaults
    tokens, positions, mode, meter, form = batch()
    torch.manual_seed(3)
    logits, state = model(tokens, positions, mode, meter, form=form)
    torch.manual_seed(3)  # the forward pass as it was before the options: no extra random draw anywhere
    sounding, since, lookback, _ = model._context(tokens, positions)
    output, (h, _) = model.lstm(model._inputs(tokens, positions, mode, meter, sounding, since, lookback, form))
    assert torch.equal(logits, model.head(model.dropout(output))) and torch.equal(state.h, h)
    x = torch.randn(2, 5, 4)
    assert locked_dropout(x, 0.0, True) is x and locked_dropout(x, 0.5, False) is x


def test_input_dropout_is_one_mask_per_song_across_time():
    dropped = locked_dropout(torch.ones(4, 50, 16), 0.25, training=True)
    assert torch.equal(dropped, dropped[:, :1].expand_as(dropped))  # the same features dropped at every step
    assert dropped.unique().tolist() == pytest.approx([0.0, 1 / 0.75])  # kept values scaled: the expectation is unchanged
    assert not torch.equal(dropped[0], dropped[1])  # each song draws its own mask


@pytest.mark.parametrize("layers", [1, 2])
def test_weight_drop_runs_the_lstm_with_thinned_recurrent_weights(layers):
    torch.manual_seed(0)
    lstm = nn.LSTM(6, 8, layers, batch_first=True)
    x, rate = torch.randn(3, 12, 6), 0.4
    thinned = nn.LSTM(6, 8, layers, batch_first=True)
    thinned.load_state_dict(lstm.state_dict())
    torch.manual_seed(5)
    output, (h, c) = weight_dropped_lstm(lstm, x, None, rate, training=True)
    torch.manual_seed(5)  # the same masks, drawn layer by layer, put into a copy of the LSTM
    with torch.no_grad():
        for layer in range(layers):
            weight = getattr(thinned, f"weight_hh_l{layer}")
            weight.copy_(nn.functional.dropout(weight, rate, True))
            assert (weight == 0).float().mean() > 0.2  # the mask did drop weights
    expected, (h2, c2) = thinned(x)
    assert torch.allclose(output, expected, atol=1e-6) and torch.allclose(c, c2, atol=1e-6)
    output.sum().backward()  # gradients reach the plain weights, zero where the mask dropped
    dropped = getattr(thinned, "weight_hh_l0") == 0
    assert lstm.weight_hh_l0.grad[dropped].abs().sum() == 0 and lstm.weight_hh_l0.grad.abs().sum() > 0
    plain, _ = lstm(x)  # the module itself still holds (and runs) its plain weights
    assert not torch.allclose(plain, output, atol=1e-4)
    assert torch.equal(weight_dropped_lstm(lstm.eval(), x, None, rate, training=False)[0], lstm(x)[0])


@pytest.mark.parametrize("options", [{"weight_drop": 0.5}, {"input_dropout": 0.3}, {"weight_drop": 0.3, "input_dropout": 0.2}])
def test_on_it_changes_training_but_eval_and_the_fast_step_read_the_plain_weights(options):
    tokens, positions, mode, meter, form = batch()
    plain, regular = model_with(2, dropout=0.0), model_with(2, dropout=0.0, **options)
    assert all(torch.equal(a, b) for a, b in zip(plain.state_dict().values(), regular.state_dict().values()))
    torch.manual_seed(1)
    trained, _ = regular(tokens, positions, mode, meter, form=form)
    assert not torch.allclose(trained, plain(tokens, positions, mode, meter, form=form)[0], atol=1e-4)
    optimizer = torch.optim.Adam(regular.parameters(), lr=0.01)
    for _ in range(3):  # a few updates with the options on: the weights move
        logits, _ = regular(tokens[:, :-1], positions[:, 1:], mode, meter, form=form[:, 1:])
        loss = nn.functional.cross_entropy(logits.reshape(-1, 20), tokens[:, 1:].reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    regular.eval()
    plain.load_state_dict(regular.state_dict())
    plain.eval()
    whole, _ = regular(tokens, positions, mode, meter, form=form)
    assert torch.equal(whole, plain(tokens, positions, mode, meter, form=form)[0])  # eval: no option applies
    state, stepped = None, []
    for t in range(tokens.shape[1]):  # the folded fast step gives the nn.LSTM pass's logits
        step_logits, state = regular.step(tokens[:, t], positions[:, t], mode, meter, state, form=form[:, t])
        stepped.append(step_logits)
    assert torch.allclose(whole, torch.stack(stepped, 1), atol=1e-5)
    _, primed = regular(tokens[:1, :10], positions[:1, :10], mode[:1], meter[:1], form=form[:1, :10])
    stepper = regular.row_stepper([primed], [1], [1])
    for t in range(10, 20):  # and the one-row stepper gives the very logits of a model step
        expected, primed = regular.step(tokens[:1, t], positions[:1, t], mode[:1], meter[:1], primed, form[:1, t])
        assert torch.equal(stepper.step([int(tokens[0, t])], [int(positions[0, t])], [form[0, t].tolist()]), expected)


def test_the_options_are_validated_and_old_configs_read_them_as_off():
    for name in ("input_dropout", "weight_drop"):
        with pytest.raises(TunesmithError, match=f"model.{name} must be in"):
            ModelConfig(**{name: 1.0}).validate()
    with pytest.raises(TunesmithError, match="decoupled_decay must be true or false"):
        Config.from_dict({"train": {"decoupled_decay": 1}})
    old = Config.from_dict({"model": {"hidden": 8, "dropout": 0.3}, "train": {"weight_decay": 0.01}}).validate()
    assert (old.model.input_dropout, old.model.weight_drop, old.train.decoupled_decay) == (0.0, 0.0, False)


def test_decoupled_decay_shrinks_the_weights_as_adamw_does():
    weights = [nn.Parameter(torch.ones(3))]
    coupled = _optimizer(weights, TrainConfig(lr=0.1, weight_decay=0.5))
    decoupled = _optimizer([nn.Parameter(torch.ones(3))], TrainConfig(lr=0.1, weight_decay=0.5, decoupled_decay=True))
    for optimizer in (coupled, decoupled):
        (param,) = optimizer.param_groups[0]["params"]
        param.grad = torch.zeros(3)  # no loss gradient: only the decay acts
        optimizer.step()
    assert torch.allclose(decoupled.param_groups[0]["params"][0], torch.full((3,), 1 - 0.1 * 0.5))
    # Adam's L2 term goes through the adaptive step (a full lr step against the sign), AdamW's does not
    assert torch.allclose(coupled.param_groups[0]["params"][0], torch.full((3,), 0.9), atol=1e-4)
