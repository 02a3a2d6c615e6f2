"""Continuous batching: plans that join a running decoding loop mid-way, leave when done, split
into candidates or are cancelled still give exactly what they give decoded alone."""

import itertools

import pytest
import torch

from tunesmith.errors import TunesmithError
from tunesmith.generate import GenerationConfig, Generator, default_model_path
from tunesmith.generate.decode import StepChooser
from tunesmith.generate.regenerate import RegenerateConfig, plan_region, regenerate_many
from tunesmith.generate.stream import RowStream

pytestmark = pytest.mark.skipif(not default_model_path().is_file(), reason="the shipped model models/erk.pt is not present")


@pytest.fixture(scope="module")
def generator():
    return Generator.from_checkpoint(default_model_path(), "cpu")


@pytest.fixture(scope="module")
def melody(generator):
    return generator.generate(bars=8, form="AABA", seed=5, full_length=True)[0]


def _requests(generator, melody):
    """Compose plans (drawn forms, a scale mask, the copy guard) and regenerate plans (kept bars
    scored, a fixed note, trunks that split into candidates)."""
    composes = [generator.plan(GenerationConfig(bars=bars, meter=meter, seed=seed, scale=scale))
                for bars, meter, seed, scale in ((4, "3/4", 1, False), (6, "6/8", 2, True), (8, "4/4", 3, False))]  # fmt: skip
    regenerations = [plan_region(generator, melody, RegenerateConfig(**options).validate())[0] for options in (
        dict(bars="3-4", num=2, candidates=6, seed=4, horizon=1),
        dict(bars="5-8", num=2, candidates=8, seed=5, horizon=2, join_bars=1),
        dict(bars="2", num=1, candidates=3, seed=6, fix="bar 2 beat 1 = C5"))]  # fmt: skip
    return composes + regenerations


def _alone(generator, plan):
    stream = RowStream(generator.model, StepChooser("sample", 1.0, 8, 0.9, 0.5), generator.device)
    got = []
    stream.add([plan], [torch.Generator().manual_seed(plan.seed)], [got.append])
    while stream.busy:
        stream.step()
    return got[0]


def test_plans_joining_a_running_stream_give_what_they_give_alone(generator, melody):
    plans = _requests(generator, melody)
    alone = [generator.decode_plans([plan], GenerationConfig())[0] for plan in plans]
    for plan, one in zip(plans, alone):  # the scalar loop and a stream of one plan agree
        streamed = _alone(generator, plan)
        assert streamed.ids == one.ids and streamed.scored == one.scored  # bit for bit: the same numbers
    stream = RowStream(generator.model, StepChooser("sample", 1.0, 8, 0.9, 0.5), generator.device)
    answers: dict[int, object] = {}
    joins = {0: [0, 3], 5: [1], 9: [4, 2], 30: [5]}  # step of the stream → plans joining then
    steps = 0
    while joins or stream.busy:
        for index in joins.pop(steps, []):
            stream.add([plans[index]], [torch.Generator().manual_seed(plans[index].seed)],
                       [lambda decoded, i=index: answers.__setitem__(i, decoded)])  # fmt: skip
        stream.step()
        steps += 1
    assert sorted(answers) == list(range(len(plans)))
    for index, one in enumerate(alone):
        assert answers[index].ids == one.ids, f"plan {index} changed when it joined mid-way"
        assert answers[index].scored == one.scored


def test_trunks_share_their_region_up_to_the_branch_and_give_one_version_each(generator, melody):
    config = RegenerateConfig(bars="3-6", num=3, candidates=12, seed=9, horizon=2, join_bars=1).validate()
    plan, (start, end) = plan_region(generator, melody, config)
    assert plan.trunks == 3 and start < plan.branch < end
    rows = generator.decode_plans([plan], config.generation())[0].ids
    for trunk in range(3):
        group = rows[trunk * 4 : trunk * 4 + 4]
        assert len({tuple(row[start : plan.branch]) for row in group}) == 1  # one trunk up to the branch
    versions = generator.regenerate(melody, (3, 6), num=3, candidates=12, seed=9, horizon=2, join_bars=1)
    # each version is the best of its own trunk's candidates: they differ before the branch
    assert len({tuple(v.model_tokens[start : plan.branch]) for v in versions}) == 3
    scores = [v.params["regenerated"]["suffix_log_likelihood"] for v in versions]
    assert scores == sorted(scores, reverse=True)
    together = regenerate_many(generator, [(melody, (3, 6), dict(num=3, candidates=12, seed=9, horizon=2, join_bars=1)),
                                           (melody, (2, 3), dict(num=2, candidates=4, seed=1))])  # fmt: skip
    assert [v.tokens for v in together[0]] == [v.tokens for v in versions]
    with pytest.raises(TunesmithError, match="multiple of --num"):
        RegenerateConfig(bars="5-8", num=3, candidates=10, join_bars=1).validate()


def test_a_cancelled_plan_leaves_unanswered_and_a_failure_answers_every_plan(generator, melody):
    plans = _requests(generator, melody)[:3]
    alone = [generator.decode_plans([plan], GenerationConfig())[0] for plan in plans]
    stream = RowStream(generator.model, StepChooser("sample", 1.0, 8, 0.9, 0.5), generator.device)
    answers: dict[int, object] = {}
    entries = stream.add(plans, [torch.Generator().manual_seed(p.seed) for p in plans],
                         [lambda d, i=i: answers.__setitem__(i, d) for i in range(3)])  # fmt: skip
    stream.step()
    stream.cancel(entries[1:2])
    while stream.busy:
        stream.step()
    assert sorted(answers) == [0, 2] and answers[0].ids == alone[0].ids and answers[2].ids == alone[2].ids
    stream.add(plans, [torch.Generator().manual_seed(p.seed) for p in plans],
               [lambda d, i=i: answers.__setitem__(i, d) for i in range(3)])  # fmt: skip
    stream.fail(TunesmithError("the model broke"))
    assert not stream.busy and all(isinstance(answers[i], TunesmithError) for i in range(3))
    with pytest.raises(TunesmithError, match="no step"):
        stream.add([_empty(plans[0])], [torch.Generator()], [answers.clear])
    assert not stream.busy


def _empty(plan):
    """A plan whose prefix already fills its length: nothing to decode."""
    from dataclasses import replace

    return replace(plan, prefix=[plan.vocab.rest] * plan.total_steps)


def test_a_busy_stream_with_compactions_and_cancels_still_gives_each_plan_alone(generator, melody, monkeypatch):
    """Plans join every few steps, some are cancelled, and the slot tables are compacted many
    times (the threshold lowered): every plan that finishes has the tokens it has alone."""
    import random

    from tunesmith.generate import stream as stream_module

    monkeypatch.setattr(stream_module, "COMPACT_SLOTS", 4)
    compactions = []
    real = RowStream._compact
    monkeypatch.setattr(RowStream, "_compact", lambda self: compactions.append(1) or real(self))
    rng = random.Random(3)

    def make():
        if rng.random() < 0.5:
            return generator.plan(GenerationConfig(bars=rng.choice([2, 4]), meter=rng.choice(["6/8", "3/4"]),
                                                   seed=rng.randrange(1000)))  # fmt: skip
        first = rng.randint(1, 5)
        return plan_region(generator, melody, RegenerateConfig(bars=f"{first}-{first + 1}", num=2, candidates=4,
                                                               horizon=1, join_bars=1, seed=rng.randrange(1000)).validate())[0]  # fmt: skip

    stream = RowStream(generator.model, StepChooser("sample", 1.0, 8, 0.9, 0.5), generator.device)
    plans, answers, entries = [], {}, []
    for step in range(160):
        if step % 4 == 0 and step < 120:
            plan = make()
            plans.append(plan)
            entries += stream.add([plan], [torch.Generator().manual_seed(plan.seed)],
                                  [lambda d, i=len(plans) - 1: answers.__setitem__(i, d)])  # fmt: skip
        if step == 30:
            stream.cancel(entries[3:4])
        stream.step()
    while stream.busy:
        stream.step()
    assert compactions and 3 not in answers and len(answers) == len(plans) - 1
    for i, decoded in answers.items():
        assert decoded.ids == generator.decode_plans([plans[i]], GenerationConfig())[0].ids, f"plan {i}"


def test_plans_sharing_one_generator_draw_from_it_in_turn(generator, melody, monkeypatch):
    """Two plans given the same generator draw as they do straight from it, step by step: each
    step, the first plan's rows, then the second's (and the generator ends where they leave it)."""
    from tunesmith.generate import stream as stream_module

    plans = _requests(generator, melody)[:2]

    def run():
        shared = torch.Generator().manual_seed(11)
        stream = RowStream(generator.model, StepChooser("sample", 1.0, 8, 0.9, 0.5), generator.device)
        got = {}
        stream.add(plans, [shared, shared], [lambda d, i=i: got.__setitem__(i, d) for i in range(2)])
        while stream.busy:
            stream.step()
        return [got[0].ids, got[1].ids], shared.get_state()

    ahead_ids, ahead_state = run()
    monkeypatch.setattr(stream_module, "ahead", lambda g: g)  # every draw straight from the generator
    direct_ids, direct_state = run()
    assert ahead_ids == direct_ids
    assert torch.equal(ahead_state, direct_state)


def test_encoded_prefixes_are_cached_and_give_the_same_numbers(generator, melody, monkeypatch):
    """A prefix encoded before (the same melody's kept bars, regenerated again) comes from the
    model's cache: the very numbers a fresh encode gives, alone or beside other plans (each
    prefix is encoded on its own, so no plan's numbers depend on the plans beside it)."""
    from tunesmith.generate.rows import _prefix_cache, encode_prefixes

    model, device = generator.model, generator.device
    plans = _requests(generator, melody)
    sizes = [plan.num for plan in plans]
    model.__dict__.pop("_prefix_cache", None)
    together = encode_prefixes(model, plans, sizes, True, device)
    assert len(_prefix_cache(model).entries) == len(plans)
    model.__dict__.pop("_prefix_cache", None)
    alone = [encode_prefixes(model, [plan], [size], True, device) for plan, size in zip(plans, sizes)]
    monkeypatch.setattr(model, "encode", lambda *a, **k: pytest.fail("a cached prefix was encoded again"))
    cached = encode_prefixes(model, plans, sizes, True, device)
    rows = [0] + list(itertools.accumulate(sizes))
    for p, one in enumerate(alone):
        part = slice(rows[p], rows[p + 1])
        for got in (together, cached):
            assert torch.equal(got[0][part], one[0]) and torch.equal(got[2][part], one[2])
            assert all(torch.equal(a[:, part] if i < 2 else a[part], b) for i, (a, b) in enumerate(zip(got[1], one[1])))
    monkeypatch.undo()
    with torch.no_grad():  # a weight changes (training, loading): the cache starts again
        model.head.bias.add_(0.0)
    assert len(_prefix_cache(model).entries) == 0
