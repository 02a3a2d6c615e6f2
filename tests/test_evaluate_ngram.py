"""The Witten-Bell n-gram baseline: proper distributions, order choice, the escape formula."""

import numpy as np
import pytest

from tunesmith.encoding import Vocabulary
from tunesmith.evaluate.ngram import NGramModel
from tunesmith.likelihood import prediction_metrics

VOCAB = Vocabulary.build([["60", "62", "64", "65", "67"]])
PHRASE = ["60", "_", "62", "_", "64", "64", "62", "r", "60", "_", "_", "_"]


def ids(tokens):
    return VOCAB.ids(tokens)


def test_probabilities_sum_to_one_at_every_step_and_order():
    train = [ids(PHRASE), ids(PHRASE[::-1][1:] + ["67"]), ids(["65", "_", "67", "_"])]
    for order in (1, 2, 4, 8):
        model = NGramModel(VOCAB, max_order=8).fit(train)
        model.order = order
        log_probs, targets = model.log_probs(ids(["60", "_", "67", "65", "r", "62"]))
        assert log_probs.shape == (7, len(VOCAB))
        np.testing.assert_allclose(np.exp(log_probs).sum(axis=1), 1.0)
        assert targets[-1] == VOCAB.end
        assert np.exp(log_probs[:, [VOCAB.pad, VOCAB.start]]).max() == 0.0


def test_witten_bell_bigram_matches_the_formula():
    model = NGramModel(VOCAB, max_order=2).fit([ids(["60", "62", "60", "64"])])
    model.order = 2
    log_probs, _ = model.log_probs(ids(["60"]))
    # Context "60" was followed by 62 and 64 once each: c(h) = 2, T(h) = 2.
    base = model._base()
    expected = (1.0 + 2.0 * base[VOCAB.index["62"]]) / (2.0 + 2.0)
    context_prob = np.exp(log_probs[1])  # the distribution after "<s> 60"
    assert context_prob[VOCAB.index["62"]] == pytest.approx(expected)


def test_order_is_chosen_on_validation_and_longer_contexts_help_repetitive_music():
    train = [ids(PHRASE * 4)] * 5
    model = NGramModel(VOCAB, max_order=10).fit(train)
    losses = model.order_losses([ids(PHRASE * 3)])
    assert len(losses) == 10
    order = model.choose_order([ids(PHRASE * 3)])
    assert order == int(np.argmin(losses)) + 1 and order > 2
    assert losses[order - 1] < losses[0]


def test_log_probs_agree_with_order_losses_and_feed_the_likelihood_metrics():
    train = [ids(PHRASE), ids(PHRASE[2:] + PHRASE[:2])]
    val = [ids(PHRASE[:7]), ids(PHRASE[3:])]
    model = NGramModel(VOCAB, max_order=4).fit(train)
    model.choose_order(val)
    scored = [model.log_probs(seq) for seq in val]
    metrics = prediction_metrics([lp for lp, _ in scored], [t for _, t in scored], VOCAB)
    assert metrics["loss"] == pytest.approx(model.order_losses(val)[model.order - 1])
    assert metrics["steps"] == sum(len(s) + 1 for s in val)


def test_unseen_tokens_still_get_probability():
    model = NGramModel(VOCAB, max_order=3).fit([ids(["60", "_", "62"])])
    log_probs, targets = model.log_probs(ids(["67"]))
    assert np.isfinite(log_probs[0, targets[0]])
