"""The copy guard: generation never copies more than ``max_copy`` notes of a training song,
judged by an independent brute-force search on the decoded melodies, on a corpus built to
tempt it (one tune, over and over) and against fake models that want nothing but to copy it."""

import random

import pytest
import numpy as np
import torch

from tunesmith.encoding import Vocabulary, decode_tokens, encode_notes
from tunesmith.errors import TunesmithError
from tunesmith.generate.controls import Control, StepContext
from tunesmith.generate.copyguard import CopyGuard, copy_cell, describe_copy
from tunesmith.originality import OriginalityIndex, build_entry, index_from_entry, note_codes, note_symbols, with_entry
from tunesmith.originality.automaton import FrozenAutomaton, SuffixAutomaton, array_codes
from tunesmith.song import Note, Song

TUNE = [(67, 4), (64, 2), (64, 2), (65, 4), (62, 2), (62, 2), (60, 2), (62, 2), (64, 2), (65, 2),
        (67, 4), (67, 4), (67, 8), (None, 4), (60, 4)]  # fmt: skip
VOCAB = Vocabulary.build([[str(p) for p in range(55, 80)]])


def song(pairs, title="", bar_starts=None):
    notes = [Note(p, s) for p, s in pairs]
    total = sum(s for _, s in pairs)
    return Song(notes=notes, bar_starts=bar_starts or list(range(0, total, 16)), title=title)


def shifted(pairs, semitones):
    return [(None if p is None else p + semitones, s) for p, s in pairs]


def longest_shared(melody: Song, corpus: list[Song]) -> int:
    """Brute force, independent of any automaton: most consecutive symbols of ``melody`` found
    consecutively in one corpus song."""
    mine, best = note_symbols(melody.notes), 0
    for other in corpus:
        theirs = note_symbols(other.notes)
        for i in range(len(mine)):
            for j in range(len(theirs)):
                k = 0
                while i + k < len(mine) and j + k < len(theirs) and mine[i + k] == theirs[j + k]:
                    k += 1
                best = max(best, k)
    return best


def run(guard, want, rows, total, prefix=(), seed=0, noise=1.0):
    """A model-free decoding loop: ``want(step, previous)`` gives logits [rows, V]; structure rules
    as in generation (no ``</s>`` off a bar line or before a note, no ``_`` after ``<s>``)."""
    generator = torch.Generator().manual_seed(seed)
    prefix = VOCAB.ids(prefix)
    if guard:
        guard.start(rows, prefix)
    rows_tokens = [list(prefix) for _ in range(rows)]
    previous = torch.full((rows,), prefix[-1] if prefix else VOCAB.start)
    finished = torch.zeros(rows, dtype=torch.bool)
    for step in range(len(prefix), total):
        allowed = torch.ones(rows, len(VOCAB), dtype=torch.bool)
        allowed[:, [VOCAB.pad, VOCAB.start]] = False
        allowed[:, VOCAB.end] = step % 16 == 0 and step > 0
        allowed[:, VOCAB.hold] = previous != VOCAB.start
        if guard:
            ctx = StepContext(step, step % 16, step // 16, step % 16 == 0, total, rows, torch.device("cpu"), VOCAB, previous)
            extra = guard.allowed(ctx)
            if extra is not None:
                allowed &= extra
        assert allowed.any(dim=1).all()
        logits = want(step, previous) + noise * torch.randn(rows, len(VOCAB), generator=generator)
        chosen = logits.masked_fill(~allowed, float("-inf")).argmax(dim=1)
        chosen = torch.where(finished, torch.full_like(chosen, VOCAB.end), chosen)
        finished |= chosen == VOCAB.end
        if guard:
            guard.advance(chosen)
        for r, token in enumerate(chosen.tolist()):
            if VOCAB.end not in rows_tokens[r][len(prefix):] or not rows_tokens[r]:
                rows_tokens[r].append(token)
        previous = chosen
    melodies = []
    for ids in rows_tokens:
        tokens = VOCAB.tokens_of(ids)
        body = tokens[: tokens.index("</s>")] if "</s>" in tokens else tokens
        melodies.append(Song(notes=decode_tokens(body)))
    return melodies


def copycat(tune_tokens, strength=6.0):
    """A fake model that wants the tune's next token at every step (any key: ``tune_tokens``)."""
    ids = VOCAB.ids(tune_tokens)

    def want(step, previous):
        logits = torch.zeros(previous.shape[0], len(VOCAB))
        logits[:, ids[step % len(ids)]] = strength
        return logits

    return want


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    """The frozen automata these tests build go to a temporary cache."""
    monkeypatch.setenv("TUNESMITH_CACHE", str(tmp_path / "cache"))


CORPUS = [song(TUNE * 3, "Der Kuckuck"), song(shifted(TUNE, -5) * 2, "Kuckuck in F")]
INDEX = OriginalityIndex(CORPUS)


@pytest.mark.parametrize("max_copy", [1, 3, 6, 10])
def test_copycat_model_overruns_without_the_guard_and_never_with_it(max_copy):
    want = copycat(encode_notes([Note(p, s) for p, s in TUNE]) * 4)
    free = run(None, want, rows=4, total=128)
    assert min(longest_shared(m, CORPUS) for m in free) > 20  # left alone it copies the tune whole
    guard = CopyGuard(INDEX, max_copy, VOCAB)
    assert isinstance(guard, Control)
    guarded = run(guard, want, rows=12, total=128, seed=max_copy)
    lengths = [longest_shared(m, CORPUS) for m in guarded]
    assert max(lengths) <= max_copy and guard.fallbacks == 0
    assert max(lengths) == max_copy  # it copies right up to the limit, no further
    assert [INDEX.longest_match(m).notes for m in guarded] == lengths  # the a-posteriori index agrees


def test_guard_sees_through_transposition():
    want = copycat(encode_notes([Note(p, s) for p, s in shifted(TUNE, 3)]) * 4)
    frozen = index_from_entry(build_entry(CORPUS, CORPUS))  # the guard as it runs on a shipped index
    guarded = run(CopyGuard(frozen, 5, VOCAB), want, rows=8, total=96, seed=1)
    assert max(longest_shared(m, CORPUS) for m in guarded) == 5
    free = run(None, want, rows=2, total=96)
    assert min(longest_shared(m, CORPUS) for m in free) > 20


def test_random_walk_on_a_tiny_alphabet_never_overruns():
    # Three pitches and two lengths: every short stretch is in the corpus, so the guard works at every step.
    rng = random.Random(5)
    corpus = [song([(rng.choice([60, 62, 64]), rng.choice([1, 2])) for _ in range(50)], f"t{n}") for n in range(10)]
    index = OriginalityIndex(corpus)
    pitches = VOCAB.ids(["60", "62", "64", "_"])

    def want(step, previous):
        logits = torch.full((previous.shape[0], len(VOCAB)), -5.0)
        logits[:, pitches] = 0.0
        return logits

    free = run(None, want, rows=16, total=64, seed=3, noise=2.0)
    assert max(longest_shared(m, corpus) for m in free) > 3
    guard = CopyGuard(index, 3, VOCAB)
    guarded = run(guard, want, rows=16, total=64, seed=3, noise=2.0)
    assert max(longest_shared(m, corpus) for m in guarded) <= 3 and guard.fallbacks == 0


def test_beam_reorder_keeps_each_rows_state():
    guard = CopyGuard(INDEX, 3, VOCAB)
    guard.start(2, VOCAB.ids(encode_notes([Note(p, s) for p, s in TUNE[:3]])))
    guard.advance(torch.tensor(VOCAB.ids(["_", "60"])))
    before = (guard.steps[:], guard.last[:])
    guard.reorder(torch.tensor([1, 1, 0]))
    assert guard.rows == 3 and guard.steps == [before[0][1], before[0][1], before[0][0]]
    assert guard.last == [60, 60, 64]


def test_a_primer_that_already_copies_too_much_is_a_clear_error():
    primer = VOCAB.ids(encode_notes([Note(p, s) for p, s in TUNE[:9]]))
    with pytest.raises(TunesmithError, match="primer already shares 8 notes with the training tune 'Der Kuckuck'"):
        CopyGuard(INDEX, 6, VOCAB).start(3, primer)
    with pytest.raises(TunesmithError, match="--max-copy must be >= 1"):
        CopyGuard(INDEX, 0, VOCAB)


def test_describe_names_the_tune_and_the_bars():
    # notes 4-8 of the tune (steps 12..23: bars 1-2), transposed, after 10 steps of something else
    stretch = TUNE[3:9]
    melody = song([(72, 8), (71, 2)] + shifted(stretch, 2) + [(50, 16)])  # the copy spans steps 14..23
    found = describe_copy(INDEX, melody, max_copy=4)
    assert found["notes"] == len(stretch) - 1  # the first note arrives by another interval
    assert found["tune"] == "Der Kuckuck" and found["tune_bars"] == [1, 2]
    assert found["melody_bars"] == [1, 2] and found["steps"] == 10 and found["exceeds"] is True
    assert copy_cell(found) == "5 notes · Der Kuckuck (bars 1-2)"
    assert describe_copy(INDEX, song([(60, 3), (80, 5)]))["tune"] is None


def test_shipped_entry_round_trips_through_a_weights_only_checkpoint(tmp_path):
    held_out = [song(TUNE[:8], "held out"), song(shifted(TUNE[4:], 7), "another")]
    entry = build_entry(CORPUS, held_out)
    assert entry["held_out"]["max_copy"] == INDEX.longest_match(held_out[1]).notes  # the larger of two = 95th pct
    path = tmp_path / "model.pt"
    torch.save(with_entry({"format": "tunesmith-checkpoint", "extra": {"other": 1}}, entry), path)
    loaded = torch.load(path, weights_only=True)
    assert loaded["extra"]["other"] == 1
    probe = song([(72, 8)] + shifted(TUNE * 2, 4))
    for attempt in ("built", "read from the cache"):
        rebuilt = index_from_entry(loaded["extra"]["originality"])
        assert isinstance(rebuilt.automaton, FrozenAutomaton), attempt
        assert rebuilt.describe(probe) == INDEX.describe(probe), attempt
        assert rebuilt.titles == ["Der Kuckuck", "Kuckuck in F"] and rebuilt.bar_starts == INDEX.bar_starts
    cached = next((tmp_path / "cache" / "originality").glob("*.npz"))
    with np.load(cached) as stored:  # a cache file of another layout (no edge offsets) is built again
        np.savez(cached, **{name: stored[name] for name in stored.files if name != "edge_offsets"})
    assert index_from_entry(loaded["extra"]["originality"]).describe(probe) == INDEX.describe(probe)
    with np.load(cached) as stored:
        assert "edge_offsets" in stored.files
    # one vectorised pass over all songs gives each song's own codes: no interval reaches into the song before
    entry_codes = array_codes(entry["pitches"].numpy(), entry["steps"].numpy(), entry["offsets"].numpy()).tolist()
    assert entry_codes == [c for s in CORPUS for c in note_codes(s.notes)]


def test_frozen_automaton_matches_like_the_one_it_was_built_from():
    rng = random.Random(2)
    automaton = SuffixAutomaton()
    automaton.extend_all([rng.randrange(5) for _ in range(300)] + [-1] + [rng.randrange(5) for _ in range(200)])
    frozen = FrozenAutomaton(automaton.freeze())
    probe = [rng.randrange(6) for _ in range(400)]
    assert frozen.match(probe)[0].tolist() == automaton.match(probe)[0].tolist()
    assert frozen.match(probe)[1] == automaton.match(probe)[1]
    assert all(sorted(frozen.out(s)) == sorted(c for c in automaton.next[s] if c >= 0) for s in range(len(frozen.length)))


def test_add_index_command_writes_a_loadable_entry(tiny_checkpoint, tmp_path):
    from synthetic_songs import synthetic_dataset

    from tunesmith.checkpoint import Checkpoint
    from tunesmith.generate.copyguard import load_index
    from tunesmith.originality.__main__ import add_index, main

    dataset = synthetic_dataset(tmp_path / "data")
    out = tmp_path / "with_index.pt"
    entry = add_index(tiny_checkpoint, out, dataset=dataset, progress=False)
    checkpoint = Checkpoint.load(out)  # weights_only: the entry is plain data
    index, max_copy = load_index(checkpoint)
    train = [e.song for e in dataset.split("train")]
    assert index.titles == [s.title for s in train] and max_copy == entry["held_out"]["max_copy"] >= 1
    assert index.describe(train[3])["notes"] == len(train[3].notes)  # a training song is all copy
    assert main([str(tmp_path / "missing.pt"), "--quiet"]) == 2


class _Mask:
    """A control with a fixed mask (``yields`` as given), no bias."""

    def __init__(self, mask, yields=False):
        self.mask, self.yields = torch.tensor(mask), yields

    def allowed(self, ctx):
        return self.mask

    def bias(self, ctx):
        return None


def test_the_guard_steps_aside_where_the_other_controls_leave_a_row_nothing():
    from tunesmith.generate.controls import control_scores

    logits = torch.zeros(2, 3)  # tokens: hold, note, rest
    no_hold = _Mask([False, True, True])  # a phrase starts here (the form)
    guard = _Mask([[True, False, False], [True, True, False]], yields=True)  # row 0: only a hold copies nothing
    scores = control_scores([no_hold, guard], None, logits)
    assert torch.isinf(scores[0]).tolist() == [True, False, False]  # row 0: the guard yields, the form holds
    assert torch.isinf(scores[1]).tolist() == [True, False, True]  # row 1: both apply
    strict = control_scores([no_hold, _Mask([[True, False, False], [True, True, False]])], None, logits)
    assert bool(torch.isinf(strict[0]).all())  # two masks that do not yield: nothing left (the caller says why)


def test_a_default_request_the_guard_and_form_once_contradicted_composes():
    from tunesmith.generate import GenerationConfig, Generator, default_model_path

    if not default_model_path().is_file():
        pytest.skip("needs the shipped models/erk.pt")
    generator = Generator.from_checkpoint(None, "cpu")
    # seed 1000017 once drew a form that restated a phrase where the guard allowed only a hold at
    # the phrase's start, and the request was refused; which seed meets that depends on the shipped
    # model, so default 2/4 requests around it must all compose their 14 bars (and a pickup)
    for seed in range(1000010, 1000026):
        melody = generator.generate(GenerationConfig(bars=14, meter="2/4", seed=seed))[0]
        assert round(melody.bars) == 14 and melody.params["form"], (seed, melody.params)


def test_a_damaged_essen_title_is_named_as_a_musician_reads_it():
    # music21's Essen edition spells "erk" as "F[ERK" + a digit in a few titles; the split still
    # groups by the title as read, only what the user sees is repaired
    from tunesmith.corpus.split import normalise_title, readable_title

    damaged = "MARSCHIEREN WIR IN DAS TUF[ERK1ISCHE LAND"
    index = OriginalityIndex([song(TUNE, title=damaged)])
    found = describe_copy(index, song(shifted(TUNE[:9], 2)), max_copy=4)
    assert found["tune"] == "MARSCHIEREN WIR IN DAS TUERKISCHE LAND"
    assert copy_cell(found) == "9 notes · MARSCHIEREN WIR IN DAS TUERKISCHE LAND (bars 1-2)"
    assert index.titles == [damaged] and normalise_title(damaged) == "marschieren wir in das tuf erk1ische land"
    assert readable_title("blind geboren war,CNR[und ihr Vater") == "blind geboren war, und ihr Vater"
    assert readable_title("Der Kuckuck") == "Der Kuckuck"
