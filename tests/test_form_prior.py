"""The form prior (tunesmith.form.prior): a proper code over forms, fitted on training songs."""

from __future__ import annotations

import math

import pytest

from tunesmith.form import prior as fp
from tunesmith.song import Note, Song

# a tiny hand-made "training corpus" of forms: 4/4 at 4 steps per quarter (bar = 16 steps)
TRAIN = [
    fp.FormCode(16, 0, (32, 32, 32, 32), ("A", "A", "B", "A")),
    fp.FormCode(16, 0, (32, 32, 32, 32), ("A", "B", "C", "D")),
    fp.FormCode(16, 4, (36, 32, 32, 28), ("A", "B", "A", "B'")),
    fp.FormCode(12, 0, (24, 24, 24), ("A", "A'", "B")),
    fp.FormCode(12, 2, (26, 24, 22), ("A", "B", "C")),
]


def label_strings(n: int) -> list[tuple[str, ...]]:
    """Every label string of n phrases the labeller can produce (the choice model's tree)."""
    strings = [()]
    for _ in range(n):
        strings = [s + (label,) for s in strings for label, _ in fp.choices(s)]
    return sorted(set(strings))


@pytest.fixture(scope="module")
def prior():
    return fp.fit_prior(TRAIN)


def test_phrase_counts_sum_to_one_for_seen_and_unseen_meters(prior):
    for bar in (16, 12, 24):  # 24 (6/8) was never seen: pooled counts, then 1/(n(n+1))
        total = sum(fp.count_probability(prior, n, bar) for n in range(1, 20_001))
        assert total == pytest.approx(1.0, abs=1e-4)  # the tail beyond 20,000 holds < 1e-4
        assert fp.count_probability(prior, 4, bar) > fp.count_probability(prior, 9, bar) > 0


def test_label_strings_of_each_length_sum_to_one(prior):
    for n in (1, 2, 3, 4, 5):
        strings = label_strings(n)
        assert len(strings) == len(set(strings))
        assert sum(fp.labels_probability(prior, s) for s in strings) == pytest.approx(1.0, abs=1e-12)
        assert sum(fp.sequential_probability(prior, s) for s in strings) == pytest.approx(1.0, abs=1e-12)
    assert fp.labels_probability(prior, ("A",)) == 1.0  # one phrase can only be A
    # a seen form is likelier than an unseen one of the same length
    assert fp.labels_probability(prior, ("A", "A", "B", "A")) > fp.labels_probability(prior, ("A", "B", "B", "A"))


def test_a_label_no_form_can_have_is_refused(prior):
    with pytest.raises(ValueError, match="not a form"):
        fp.labels_probability(prior, ("A", "C"))  # C before B


def test_phrase_lengths_sum_to_one_with_and_without_a_reference(prior):
    # lengths 1..20,000 steps hold every (bars, upbeat) pair up to 20,000 / bar bars; the bars'
    # last back-off 1 / ((k + 1)(k + 2)) leaves under bar / 20,000 beyond: a 2-step "bar" checks
    # the sum to 1e-4, the real bars check it within their tails and never above 1
    cases = [(TRAIN[0], 0), (TRAIN[0], 3), (TRAIN[2], 3), (fp.FormCode(24, 3, (48, 50), ("A", "B")), 1),
             (fp.FormCode(2, 1, (5, 4, 8), ("A", "A", "B")), 1), (fp.FormCode(2, 1, (5, 4, 8), ("A", "A", "B")), 2)]
    for code, index in cases:
        total = 0.0
        for d in range(1, 20_001):
            lengths = code.lengths[:index] + (d,) + code.lengths[index + 1:]
            total += fp.length_probability(prior, fp.FormCode(code.bar, code.pickup, lengths, code.labels), index)
        assert 1.0 - max(code.bar, 2) / 20_000 < total <= 1.0 + 1e-9


def test_phrase_boundaries_on_the_grid():
    # 2/4 with a 2-step pickup: bar lines at 2, 10, 18…; phrases of 18 and 14 steps, then 16
    code = fp.FormCode(8, 2, (18, 14, 16), ("A", "B", "A"))
    assert fp.grid_points(code) == [(0, 2), (2, 0), (4, 2), (6, 2)]
    assert fp.phrase_bars(code) == [2, 2, 2]
    assert fp.grid_points(fp.FormCode(16, 0, (32, 30), ("A", "B"))) == [(0, 0), (2, 0), (4, 2)]


def test_unseen_forms_get_a_finite_cost_and_seen_ones_less(prior):
    seen = fp.form_bits(prior, TRAIN[0])["total"]
    odd = fp.form_bits(prior, fp.FormCode(24, 5, (53, 7, 101, 48, 48), ("A", "B", "A'", "C", "C")))
    assert all(math.isfinite(v) and v > 0 for v in odd.values())
    assert 0 < seen < odd["total"]


def test_a_songs_code_length_is_the_sum_of_its_parts(prior):
    code = TRAIN[2]
    bits = fp.form_bits(prior, code)
    assert bits["count"] == pytest.approx(-math.log2(fp.count_probability(prior, 4, 16)))
    assert bits["labels"] == pytest.approx(-math.log2(fp.labels_probability(prior, code.labels)))
    assert bits["lengths"] == pytest.approx(-sum(math.log2(fp.length_probability(prior, code, i)) for i in range(4)))
    assert bits["total"] == pytest.approx(bits["count"] + bits["labels"] + bits["lengths"])


def test_a_song_is_coded_by_the_form_its_inputs_come_from():
    notes = [Note(60, 4), Note(62, 4), Note(64, 4), Note(60, 4)] * 2 + [Note(67, 4), Note(65, 4), Note(64, 8)] * 2
    song = Song(notes=notes, meter="4/4", mode="major", steps_per_quarter=4,
                bar_starts=list(range(0, 64, 16)), phrase_starts=[0, 16, 32, 48], phrase_source="kern marks")
    code = fp.song_form_code(song)
    assert code == fp.FormCode(16, 0, (16, 16, 16, 16), ("A", "A", "B", "B"))
    bits = fp.songs_prior_bits([song], [song])
    assert len(bits) == 1 and 0 < bits[0] < fp.form_bits(fp.fit_prior([]), code)["total"]


def test_two_stage_figures_add_the_prior_bits():
    metrics = {"bits_per_step": 1.0, "pitch_bits_per_note": 2.0, "steps": 100, "notes": 40, "songs": 2}
    result = fp.two_stage(metrics, 20.0)
    assert result == {"prior_bits_per_song": 10.0, "two_stage_bits_per_step": 1.2,
                      "two_stage_pitch_bits_per_note": 2.5}  # fmt: skip


def test_validation_reports_form_given_two_stage_and_form_hidden(tmp_path):
    import torch

    from synthetic_songs import synthetic_dataset, tiny_config
    from tunesmith.model import MelodyLSTM
    from tunesmith.training.data import condition_vocabularies
    from tunesmith.training.validation import prior_bits, validation_metrics

    dataset = synthetic_dataset(tmp_path / "data")
    train, val = dataset.split("train"), dataset.split("val")
    config = tiny_config()
    config.model.form_inputs = True
    modes, meters = condition_vocabularies(train)
    torch.manual_seed(0)
    model = MelodyLSTM(config.model, len(dataset.vocab), len(modes), len(meters))
    bits = prior_bits(train, val)
    assert bits == pytest.approx(sum(fp.songs_prior_bits([e.song for e in train], [e.song for e in val])))
    m = validation_metrics(model, val, dataset.vocab, modes, meters, dataset.steps_per_quarter, "cpu", bits)
    assert m["prior_bits_per_song"] == pytest.approx(bits / len(val)) and bits > 0
    # the two-stage total is the conditional total plus the prior's bits
    assert m["two_stage_bits_per_step"] * m["steps"] == pytest.approx(m["bits_per_step"] * m["steps"] + bits)
    assert m["two_stage_pitch_bits_per_note"] * m["notes"] == pytest.approx(m["pitch_bits_per_note"] * m["notes"] + bits)
    assert m["hidden_bits_per_step"] != m["bits_per_step"]  # another input: another figure
    config.model.form_inputs = False  # a model without form inputs gets the plain figures only
    plain = MelodyLSTM(config.model, len(dataset.vocab), len(modes), len(meters))
    assert "hidden_bits_per_step" not in validation_metrics(plain, val, dataset.vocab, modes, meters, 4, "cpu", bits)
