"""Sampling transforms and constraint masks: pure functions, exact expectations."""

import math

import pytest
import torch

from tunesmith.encoding import SPECIALS, Vocabulary
from tunesmith.errors import TunesmithError
from tunesmith.generate.constraints import (apply_mask, combine, note_number, parse_range, range_mask,
                                            require_pitches, scale_mask)  # fmt: skip
from tunesmith.generate.controls import structure_mask
from tunesmith.generate.sampling import apply_temperature, choose, greedy, mixed, sample, top_k_filter, top_p_filter

VOCAB = Vocabulary(list(SPECIALS) + [str(p) for p in range(55, 85)])


def seeded(seed=0):
    return torch.Generator().manual_seed(seed)


def test_greedy_equals_argmax():
    logits = torch.randn(16, 30, generator=seeded())
    assert torch.equal(greedy(logits), logits.argmax(dim=-1))
    assert torch.equal(choose(logits, "greedy", temperature=0.0), logits.argmax(dim=-1))


def test_top_k_never_leaves_the_k_best():
    logits = torch.randn(8, 40, generator=seeded(1))
    best = torch.topk(logits, 5, dim=-1).indices
    generator = seeded(2)
    for _ in range(200):
        chosen = choose(logits, "top-k", top_k=5, generator=generator)
        assert all(chosen[row] in best[row] for row in range(8))
    assert torch.isfinite(top_k_filter(logits, 5)).sum(dim=-1).tolist() == [5] * 8


def test_top_p_keeps_the_smallest_nucleus():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05], [0.05, 0.15, 0.3, 0.5]]))
    kept = torch.isfinite(top_p_filter(logits, 0.7))
    assert kept.tolist() == [[True, True, False, False], [False, False, True, True]]
    assert torch.isfinite(top_p_filter(logits, 0.4)).sum(dim=-1).tolist() == [1, 1]  # the best always stays
    assert torch.isfinite(top_p_filter(logits, 1.0)).all()


def test_temperature_scales_and_rejects_non_positive():
    logits = torch.tensor([[2.0, 1.0, float("-inf")]])
    assert torch.equal(apply_temperature(logits, 2.0), torch.tensor([[1.0, 0.5, float("-inf")]]))
    for bad in (0.0, -1.0):
        with pytest.raises(TunesmithError, match="temperature"):
            apply_temperature(logits, bad)


def test_sampling_honours_masks():
    logits = torch.zeros(4, 10)
    mask = torch.zeros(10, dtype=torch.bool)
    mask[[2, 7]] = True
    generator = seeded(3)
    picks = {int(t) for _ in range(100) for t in sample(apply_mask(logits, mask), generator)}
    assert picks == {2, 7}


def test_mixed_is_greedy_at_one_and_samples_at_zero():
    logits = torch.randn(32, 12, generator=seeded(4))
    assert torch.equal(mixed(logits, 1.0, seeded(5)), greedy(logits))
    drawn = torch.stack([mixed(logits, 0.0, seeded(s)) for s in range(20)])
    assert not torch.equal(drawn, greedy(logits).expand(20, -1))


def test_choose_is_reproducible_with_a_seed():
    logits = torch.randn(4, 20, generator=seeded(6))
    for scheme in ("sample", "mixed", "top-k", "top-p"):
        assert torch.equal(choose(logits, scheme, generator=seeded(9)), choose(logits, scheme, generator=seeded(9)))
    with pytest.raises(TunesmithError, match="unknown sampling scheme"):
        choose(logits, "nucleus")


def test_scale_mask_in_the_output_key():
    # Output key D major = model key C major shifted up 2: model pitch 60 (C) sounds as D.
    mask = scale_mask(VOCAB, tonic_pc=2, mode="major", shift=2)
    allowed = [p for p, i in zip(VOCAB.pitches, VOCAB.pitch_ids) if mask[i]]
    assert {(p + 2) % 12 for p in allowed} == {2, 4, 6, 7, 9, 11, 1}
    assert all(mask[VOCAB.index[t]] for t in ("_", "r", "</s>"))
    minor = scale_mask(VOCAB, tonic_pc=9, mode="minor")
    assert {p % 12 for p, i in zip(VOCAB.pitches, VOCAB.pitch_ids) if minor[i]} == {9, 11, 0, 2, 4, 5, 7, 8}


def test_range_mask_and_combination():
    mask = combine(range_mask(VOCAB, 62, 67, shift=2), scale_mask(VOCAB, 2, "major", 2))
    allowed = sorted(p + 2 for p, i in zip(VOCAB.pitches, VOCAB.pitch_ids) if mask[i])
    assert allowed == [62, 64, 66, 67]


def test_a_constraint_set_that_allows_nothing_is_an_error():
    mask = combine(range_mask(VOCAB, 61, 61), scale_mask(VOCAB, 0, "major"))  # C# only, not in C major
    with pytest.raises(TunesmithError, match="allow no pitch"):
        require_pitches(mask, VOCAB, "scale of C major, range C#4-C#4")


def test_parse_range_and_note_names():
    assert parse_range("C4-G5") == (60, 79)
    assert parse_range("Bb3 - F#5") == (58, 78)
    assert parse_range("60-72") == (60, 72)
    assert note_number("A4") == 69
    for bad in ("C4", "G5-C4", "H2-C4", "C4-X9"):
        with pytest.raises(TunesmithError):
            parse_range(bad)


def test_structure_mask_rules():
    previous = torch.tensor([VOCAB.start, VOCAB.index["60"]])
    mask = structure_mask(VOCAB, previous, has_note=torch.tensor([False, True]))
    assert not mask[:, VOCAB.pad].any() and not mask[:, VOCAB.start].any()
    assert mask[:, VOCAB.end].tolist() == [False, True]
    assert mask[:, VOCAB.hold].tolist() == [False, True]
    assert math.isinf(apply_mask(torch.zeros(2, len(VOCAB)), mask)[0, VOCAB.end])


def test_sample_draws_in_proportion_to_the_probabilities():
    probs = torch.tensor([0.5, 0.3, 0.0, 0.2])
    logits = torch.log(probs).expand(20_000, -1)
    draws = sample(logits, torch.Generator().manual_seed(0))
    share = torch.bincount(draws, minlength=4).float() / draws.numel()
    assert share[2] == 0  # a zero-probability token is never drawn
    assert torch.allclose(share, probs, atol=0.015)


@pytest.mark.parametrize("scheme", ["sample", "greedy", "mixed", "top-k", "top-p"])
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_every_scheme_refuses_broken_scores(scheme, bad):
    from tunesmith.generate.sampling import SamplingError

    logits = torch.zeros(3, 10)
    logits[1, 4] = bad
    with pytest.raises(SamplingError):
        choose(logits, scheme, generator=seeded(1))
    with pytest.raises(SamplingError):  # a row where everything is forbidden
        choose(torch.full((2, 10), float("-inf")), scheme, generator=seeded(1))


def test_numbers_drawn_ahead_are_the_numbers_drawn_step_by_step():
    from tunesmith.generate.sampling import DrawnAhead, JoinedRandom

    sizes = [1, 3, 2, 16, 1, 33, 4, 600, 5, 1, 2]  # pieces across chunk boundaries, one larger than a chunk
    alone = seeded(5)
    pieces = [torch.rand((n, 1), generator=alone) for n in sizes]
    ahead = DrawnAhead(seeded(5), chunk=64)
    for n, piece in zip(sizes, pieces):
        assert torch.equal(JoinedRandom([(ahead, n)]).rand((n, 1), "cpu"), piece)
    ahead.settle()  # the generator stands where the step-by-step one does, so later draws agree too
    assert torch.equal(ahead.generator.get_state(), alone.get_state())
    assert torch.equal(torch.rand(7, generator=ahead.generator), torch.rand(7, generator=alone))


def test_sample_from_streams_drawn_ahead_draws_what_each_generator_draws_alone():
    from tunesmith.generate.sampling import DrawnAhead, JoinedRandom

    logits = torch.randn(6, 12, generator=seeded(2))
    logits[0, :5] = float("-inf")
    streams = [seeded(3), seeded(4)]
    joined = JoinedRandom([(DrawnAhead(seeded(3), chunk=8), 2), (DrawnAhead(seeded(4), chunk=8), 4)])
    for _ in range(5):  # several steps: the chunks refill on the way
        expected = torch.cat([sample(logits[:2], streams[0]), sample(logits[2:], streams[1])])
        assert torch.equal(sample(logits, joined), expected)


def test_sample_picks_the_first_cdf_entry_above_the_draw():
    logits = torch.randn(200, 12, generator=seeded(2))
    logits[0, :5] = float("-inf")
    logits[1] = 0.0  # ties
    cdf = torch.softmax(logits, dim=-1).cumsum(dim=-1)
    u = torch.rand((200, 1), generator=seeded(3)) * cdf[:, -1:]
    expected = torch.searchsorted(cdf, u, right=True)[:, 0].clamp(max=11)
    assert torch.equal(sample(logits, seeded(3)), expected)
