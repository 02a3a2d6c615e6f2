"""Batched generation: requests decoded together give, each, the melody they give alone."""

import pytest
import torch
from synthetic_songs import untrained_checkpoint

from tunesmith.errors import TunesmithError
from tunesmith.generate import GenerationConfig, Generator, default_model_path
from tunesmith.generate.batch import batch_key, generate_batch
from tunesmith.generate.config import CANDIDATES
from tunesmith.generate.sampling import RowRandom, mixed, sample


@pytest.fixture(scope="module")
def generator(tmp_path_factory):
    return Generator.from_checkpoint(untrained_checkpoint(tmp_path_factory.mktemp("model") / "tiny.pt"), device="cpu")


def test_a_row_stream_draws_what_a_single_generator_draws():
    logits = torch.randn(1, 12)
    streams, single = RowRandom([7], "cpu"), torch.Generator().manual_seed(7)
    assert [int(mixed(logits, 0.3, streams)) for _ in range(50)] == [int(mixed(logits, 0.3, single)) for _ in range(50)]
    # three rows: each row's draws depend on its own seed only
    batch = RowRandom([7, 8, 9], "cpu")
    drawn = batch.rand((3, 5), "cpu")
    assert torch.equal(drawn[1], RowRandom([8], "cpu").rand((1, 5), "cpu")[0])
    logits = torch.randn(1, 40).repeat(3, 1)
    assert sample(logits, RowRandom([4, 5, 4], "cpu")).tolist()[0] == sample(logits[:1], RowRandom([4], "cpu")).item()
    with pytest.raises(TunesmithError, match="2 rows drawn from 3 random streams"):
        batch.rand((2, 1), "cpu")


@pytest.mark.parametrize("scheme", ["sample", "mixed", "top-k", "top-p", "greedy"])
def test_batched_requests_give_the_melodies_they_give_alone(generator, scheme):
    configs = [GenerationConfig(bars=4, meter="3/4", key="D", scheme=scheme, temperature=1.3, seed=s) for s in range(9)]
    alone = [generator.generate(c)[0].tokens for c in configs]
    # batched in another order and in passes of 4 rows: still each request's own melody
    together = generate_batch(generator, configs[::-1], max_rows=4)
    assert [m[0].tokens for m in together][::-1] == alone
    assert [m[0].params["seed"] for m in together] == list(range(9))[::-1]
    if scheme != "greedy":
        assert len({tuple(t) for t in alone}) > 1  # the seeds really differ


def test_incompatible_and_bad_requests_are_answered_apart(generator):
    configs = [GenerationConfig(bars=4, seed=1), GenerationConfig(bars=4, seed=1, meter="3/4"),
               GenerationConfig(bars=4, seed=1, num=2), GenerationConfig(bars=4, seed=1, scheme="beam", beam_size=2),
               GenerationConfig(bars=4, seed=2, mode="dorian")]  # fmt: skip
    assert batch_key(configs[0]) == batch_key(configs[1])  # a meter lives in the plan: they share a pass
    assert batch_key(configs[0]) != batch_key(GenerationConfig(bars=4, seed=1, temperature=0.9))
    assert batch_key(configs[2]) is None and batch_key(configs[3]) is None
    results = generator.generate_batch(configs, return_errors=True)
    for config, result in zip(configs[:4], results[:4]):
        assert [m.tokens for m in result] == [m.tokens for m in generator.generate(config)]
    assert isinstance(results[4], TunesmithError) and "mode" in str(results[4])
    with pytest.raises(TunesmithError, match="mode"):
        generator.generate_batch(configs)


def test_requests_with_a_form_give_what_they_give_alone(generator):
    """A form fixes the melody's length and phrases: requests with a form decode together and
    still give what they give alone (retries of a missed form included)."""
    configs = [GenerationConfig(seed=s, meter="3/4", form="AABA") for s in range(5)]
    configs += [GenerationConfig(seed=9, meter="3/4", form="ABAC")]
    configs += [GenerationConfig(seed=s, meter="4/4", form="A A' B A", temperature=2.0) for s in range(3)]  # these miss
    batched = generate_batch(generator, configs)
    for config, melodies in zip(configs, batched, strict=True):
        alone = generator.generate(config)[0]
        assert melodies[0].tokens == alone.tokens and melodies[0].params["form"] == alone.params["form"]
        assert melodies[0].params["form_honoured"] == alone.params["form_honoured"]
    assert not all(m[0].params["form_honoured"] for m in batched)  # this untrained model misses forms
    # a server's decode hook: each request decodes its first form retry beside it, same melodies
    calls = []

    def shared(plans, config, ahead=()):
        calls.append((len(plans), len(ahead)))
        return generator.decode_plans([*plans, *ahead], config, max_rows=len(plans) + len(ahead))

    hooked = generate_batch(generator, configs, decode=shared)
    assert calls[:2] == [(6, 6), (3, 3)]  # the two groups of equal sampling settings, each plan with its first retry
    for melodies, expected in zip(hooked, batched, strict=True):
        assert [m.tokens for m in melodies] == [m.tokens for m in expected]
        assert melodies[0].params["form_honoured"] == expected[0].params["form_honoured"]


@pytest.mark.skipif(not default_model_path().is_file(), reason="the shipped model models/erk.pt is not present")
def test_different_drawn_forms_share_one_pass_and_each_seed_gives_its_own_melody(monkeypatch):
    """A default compose draws its form from its seed: composes with different forms (phrases,
    lengths) are rows of ONE pass, each the melody it is alone (and the CLI's for that seed)."""
    from tunesmith.generate import decode as decode_module

    shipped = Generator.from_checkpoint(None, "cpu")
    configs = [GenerationConfig(meter="6/8", key="G", seed=s) for s in range(8)]
    alone = [shipped.generate(c)[0] for c in configs]
    assert len({m.params["form"] for m in alone}) >= 3 and len({m.song.total_steps for m in alone}) >= 2
    passes = []
    real = decode_module.decode_plans
    monkeypatch.setattr(decode_module, "decode_plans", lambda model, plans, *a, **k: passes.append(len(plans)) or real(model, plans, *a, **k))
    together = generate_batch(shipped, configs)
    assert passes[0] == 8 * CANDIDATES  # every request's candidates in the first pass (later ones: form retries)
    for one, batched in zip(alone, together, strict=True):
        assert batched[0].tokens == one.tokens and batched[0].params["form"] == one.params["form"]
        assert batched[0].song.phrase_starts == one.song.phrase_starts



def test_requests_that_differ_in_all_but_their_sampling_share_one_pass(generator, monkeypatch):
    """Length, meter, mode, key, masks, a primer and chords live in each request's plan: such
    requests are rows of one pass, and each still gets the melody (and chords) it gets alone."""
    from tunesmith.generate import decode as decode_module

    configs = [GenerationConfig(bars=4, meter="3/4", key="D", seed=1), GenerationConfig(bars=6, meter="6/8", seed=2),
               GenerationConfig(bars=3, mode="minor", key="E", scale=True, seed=3),
               GenerationConfig(steps=40, primer="67 _ _ _ 65 _", seed=4), GenerationConfig(bars=5, range="C4-G5", seed=5),
               GenerationConfig(bars=4, chords=True, seed=6)]  # fmt: skip
    assert len({batch_key(c) for c in configs}) == 1
    alone = [generator.generate(c)[0] for c in configs]
    passes = []
    real = decode_module.decode_plans
    monkeypatch.setattr(decode_module, "decode_plans", lambda model, plans, *a, **k: passes.append(len(plans)) or real(model, plans, *a, **k))
    together = generate_batch(generator, configs)
    assert passes[0] == len(configs)
    for config, one, batched in zip(configs, alone, together, strict=True):
        assert batched[0].tokens == one.tokens and batched[0].params["meter"] == one.params["meter"]
        assert batched[0].params["bars"] == one.params["bars"] and batched[0].song.key == one.song.key
        assert batched[0].song.chords == one.song.chords and bool(one.song.chords) == config.chords


def test_plans_with_a_control_that_has_no_row_wise_merge_are_decoded_alone(generator):
    # the motif echo keeps one plan's history: its plan decodes alone, the others still share a pass
    configs = [GenerationConfig(bars=4, seed=s, motif=5.0 if s == 2 else 0.0) for s in range(4)]
    plans = [generator.plan(c) for c in configs]
    alone = [generator.decode_plans([plan], c)[0].ids for plan, c in zip(plans, configs)]
    together = generator.decode_plans(plans, configs[0])
    assert [d.ids for d in together] == alone


# ---- a request's candidates on the machine's cores at once (generate/forked.py) ----------------------
def _two_plans(generator):
    from dataclasses import replace

    from tunesmith.generate import forked

    config = GenerationConfig(bars=16, meter="4/4", seed=0)
    plans = [generator.plan(replace(config, seed=seed)) for seed in (5, 6)]
    assert all(p.total_steps - len(p.prefix) >= forked.FORK_STEPS for p in plans)  # long enough to fork
    return config, plans


def _forkable(monkeypatch):
    import sys
    import threading

    from tunesmith.generate import forked

    if not sys.platform.startswith("linux"):
        pytest.skip("candidates are decoded in forked copies on Linux only")
    from tqdm import tqdm

    if tqdm.monitor is not None:  # an earlier test's progress bars left tqdm's monitor thread running
        tqdm.monitor.exit()
        tqdm.monitor.join()
        tqdm.monitor = None
    assert threading.active_count() == 1  # forking is safe only without other threads (the CLI's case)
    monkeypatch.setattr(forked, "usable_cores", lambda: 2)  # whatever cores the test machine has
    return forked


def test_a_requests_candidates_decode_on_two_cores_as_in_the_shared_loop(generator, monkeypatch):
    forked = _forkable(monkeypatch)
    config, plans = _two_plans(generator)
    calls, real = [], forked.decode_forked
    monkeypatch.setattr(forked, "decode_forked", lambda one, chunk: calls.append(len(chunk)) or real(one, chunk))
    on_cores = generator.decode_together(plans, config)
    assert calls == [2]  # this process and one copy, a candidate each
    monkeypatch.setattr(forked, "ENABLED", False)
    shared = generator.decode_together(plans, config)  # one loop, the two rows sharing each model step
    assert calls == [2]
    assert [d.ids for d in on_cores] == [d.ids for d in shared] and [d.scored for d in on_cores] == [d.scored for d in shared]
    assert on_cores[0].ids != on_cores[1].ids  # two melodies, each its own


def test_a_copy_that_fails_hangs_or_cannot_be_made_costs_time_never_the_answer(generator, monkeypatch):
    import os
    import time

    forked = _forkable(monkeypatch)
    config, plans = _two_plans(generator)
    expected = generator.decode_together(plans, config)
    parent = os.getpid()
    for trouble in ("fails", "hangs"):
        def one(plan, trouble=trouble):
            if os.getpid() != parent:  # only in the forked copy
                if trouble == "fails":
                    raise RuntimeError("the copy fails")
                time.sleep(60)
            return generator.decode_plans([plan], config)[0]

        monkeypatch.setattr(forked, "WAIT", 1.0)
        started = time.monotonic()
        got = forked.decode_forked(one, plans)
        assert [d.ids for d in got] == [d.ids for d in expected] and [d.scored for d in got] == [d.scored for d in expected]
        assert time.monotonic() - started < 30  # a hung copy is stopped, not waited for

    def no_fork():
        raise OSError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(forked.os, "fork", no_fork)  # no copy can be made: all decoded here
    got = forked.decode_forked(lambda plan: generator.decode_plans([plan], config)[0], plans)
    assert [d.ids for d in got] == [d.ids for d in expected] and [d.scored for d in got] == [d.scored for d in expected]
