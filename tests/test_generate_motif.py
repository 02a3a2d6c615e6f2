"""The motif echo: a melody's own fragments tend to go on as they went before."""

import pytest
import torch

from tunesmith.encoding import Vocabulary
from tunesmith.generate.controls import Control, MotifEcho, StepContext, motif_continuations

VOCAB = Vocabulary.build([[str(p) for p in range(60, 73)]])


def ids(*tokens):
    return VOCAB.ids([str(t) for t in tokens])


def context(rows, step=0):
    return StepContext(step, 0, 0, True, 64, rows, torch.device("cpu"), VOCAB, torch.zeros(rows, dtype=torch.long))


def test_continuations_are_what_followed_each_fragment():
    history = ids(60, "_", 62, 60, "_", 64, 60, "_", 62)
    table = motif_continuations(history, order=2)
    assert table[tuple(ids(60, "_"))] == tuple(ids(62, 64))  # both continuations, in order of appearance
    assert table[tuple(ids("_", 62))] == tuple(ids(60))
    assert motif_continuations(history[:2], order=2) == {}  # nothing has followed a fragment yet


def test_a_returning_fragment_leans_toward_its_earlier_continuation():
    echo = MotifEcho(order=2, strength=2.5)
    assert isinstance(echo, Control)
    echo.start(rows=2, prefix=ids(60, "_", 67))  # "60 _" was followed by 67
    ctx = context(2)
    assert echo.bias(ctx) is None  # "_ 67" never came before
    echo.advance(torch.tensor(ids(60, 64)))  # row 0: ... 67 60; row 1: ... 67 64
    echo.advance(torch.tensor(ids("_", "_")))  # row 0 now ends "60 _" again; row 1 ends "64 _"
    bias = echo.bias(ctx)
    assert bias.shape == (2, len(VOCAB))
    assert bias[0, ids(67)[0]] == 2.5 and bias[0].sum() == 2.5  # only the earlier continuation
    assert not bias[1].any()  # row 1's fragment is new
    echo.reorder(torch.tensor([1, 1]))  # beam search kept row 1 twice
    assert echo.bias(ctx) is None
    assert MotifEcho(order=2, strength=0.0).bias(ctx) is None  # strength 0: no echo at all


def test_a_strong_echo_makes_generated_melodies_restate_themselves(tiny_checkpoint):
    from tunesmith.form import repetition
    from tunesmith.generate import GenerationConfig, Generator

    generator = Generator.from_checkpoint(tiny_checkpoint, "cpu")
    config = GenerationConfig(num=8, bars=8, seed=5, form="none", max_copy=0)
    plain = generator.generate(config, motif=0.0)
    echoed = generator.generate(config, motif=30.0)  # in effect: a returning fragment goes on as before
    share = [sum(repetition(m.song) for m in melodies) / len(melodies) for melodies in (plain, echoed)]
    assert share[1] > max(2 * share[0], 0.1), share
    assert plain[0].params["motif"] == 0.0 and echoed[0].params["motif"] == 30.0


def test_the_order_must_be_positive():
    with pytest.raises(ValueError, match="at least one token"):
        MotifEcho(order=0)
