"""Phrases recovered while reading (kern marks, Essen ABC lines, parts, repeats), ``analyze``,
the prepare report's form block, and the two Essen editions agreeing where both are present."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tunesmith.cli import main
from tunesmith.config import CorpusConfig, EncodingConfig
from tunesmith.corpus import prepare
from tunesmith.corpus.reader import make_jobs, read_job
from tunesmith.corpus.sources import SourceFile, essen_folder
from tunesmith.encoding import encode_notes
from tunesmith.form import analyse
from tunesmith.song import Song

DATA = Path(__file__).parent / "data"
SETTINGS = {"steps_per_quarter": 4, "accepted_durations": [0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0]}
KERN_ERK = Path(__file__).resolve().parents[2] / "shared" / "data" / "essen-deutschl-kern" / "erk"


def songs_of(name: str) -> list[Song]:
    path = DATA / name
    results = [read_job(job, SETTINGS) for job in make_jobs(SourceFile(path, str(path)))]
    assert all("song" in r for r in results), results
    return [Song.from_dict(r["song"]) for r in results]


def test_kern_phrase_marks_are_kept_beside_music21():
    (song,) = songs_of("phrase_marks.krn")
    # {g | c d e~e | g r} {g | c d e c | c}: the tie inside phrase 1 does not shift phrase 2
    assert (song.phrase_source, song.phrase_starts) == ("kern marks", [0, 32])
    phrases = analyse(song).phrases
    assert [(p.final_pitch, p.final_degree) for p in phrases] == [(67, "5"), (60, "1")]


def test_essen_abc_lines_are_phrases_with_their_pickups():
    (song,) = songs_of("phrase_lines_essen.abc")
    assert song.phrase_source == "abc lines"
    assert song.phrase_starts == [0, 24, 48, 72]  # each line: a one-beat pickup and two bars
    assert analyse(song).form_with_bars == "A2 B2 C2 A'2"


def test_abc_parts_are_phrases_but_their_lines_are_not():
    (song,) = songs_of("parts.abc")
    assert (song.phrase_source, song.phrase_starts) == ("parts", [0, 64])


def test_repeats_are_written_out_and_each_pass_is_a_phrase():
    (song,) = songs_of("repeats.abc")
    assert song.phrase_source == "repeats" and song.total_steps == 128  # 2 × 4 bars, twice
    assert song.phrase_starts == [0, 32, 64, 96]
    tokens = encode_notes(song.notes)
    assert tokens[24:32] == ["72"] + ["_"] * 7  # first ending: d4
    assert tokens[56:64] == ["72", "_", "_", "_", "67", "_", "_", "_"]  # second ending: d2 A2
    assert analyse(song).form == "A A' B B"


def test_songs_without_marks_get_rule_phrases():
    (song,) = songs_of("tie.krn")
    assert song.phrase_source == "rule" and song.phrase_starts == [0]


def test_tied_top_note_over_a_changing_chord_is_not_restruck():
    (song,) = songs_of("chord_tie.krn")
    # c | c-e-[g | d-f-g] c : the top g sounds for two beats
    assert " ".join(encode_notes(song.notes)) == "60 _ _ _ 67 _ _ _ _ _ _ _ 60 _ _ _"


def test_analyze_prints_the_form(capsys):
    assert main(["analyze", str(DATA / "repeats.abc")]) == 0
    out = capsys.readouterr().out
    assert "form: A A' B B" in out and "phrases: repeats" in out
    assert main(["analyze", str(DATA / "two_tunes.abc"), "--index", "2", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["title"] == "Second Tune" and result["phrase_source"] == "rule"
    assert [p["label"] for p in result["phrases"]] == ["A"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["two_tunes.abc", "--index", "3"], "--index 3 is out of range: two_tunes.abc has 2 tune(s)"),
        (["missing.krn"], "no such file"),
        (["triplet.krn"], "cannot read triplet.krn: unaccepted duration"),
    ],
)
def test_analyze_errors_are_one_line(args, message, capsys):
    assert main(["analyze", str(DATA / args[0]), *args[1:]]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err


def test_prepare_report_has_form_statistics(tmp_path, capsys):
    corpus = CorpusConfig(sources=[str(DATA / n) for n in ("repeats.abc", "parts.abc", "phrase_marks.krn")],
                          cache_dir=str(tmp_path), workers=1)  # fmt: skip
    form = prepare(corpus, EncodingConfig(), progress=False).report["form"]
    assert form["songs"] == 3
    assert form["phrase_sources"] == {"repeats": 1, "parts": 1, "kern marks": 1}
    assert form["forms_by_meter"]["2/4"]["top"] == [["A A' B B", 1]] or form["forms_by_meter"]["2/4"]["top"] == [("A A' B B", 1)]
    assert sum(form["phrase_bars"].values()) == 4 + 2 + 2
    monkey_cache = tmp_path / "cli"
    assert main(["prepare", "--corpus", str(DATA / "repeats.abc"), "--no-progress",
                 "--set", f"corpus.cache_dir={monkey_cache}"]) == 0  # fmt: skip
    assert "forms in 2/4 (1 songs)" in capsys.readouterr().out


@pytest.mark.skipif(not KERN_ERK.is_dir(), reason="../shared/data/essen-deutschl-kern/erk is not present")
def test_kern_and_abc_editions_agree_on_phrases():
    import re

    kern = {}
    for path in sorted(KERN_ERK.glob("deut05*.krn"))[:10]:
        text = path.read_text(encoding="latin-1")
        (result,) = [read_job(j, SETTINGS) for j in make_jobs(SourceFile(path, str(path)))]
        if "song" in result:
            kern[re.search(r"!!!SCT:\s*(\S+)", text).group(1)] = Song.from_dict(result["song"])
    path = essen_folder() / "erk10.abc"
    agree = shared = 0
    for job in make_jobs(SourceFile(path, str(path)))[:12]:
        signature = re.search(r"^N:\s*(\S+)", job.text, re.MULTILINE).group(1)
        result = read_job(job, SETTINGS)
        if signature in kern and "song" in result:
            shared += 1
            agree += Song.from_dict(result["song"]).phrase_starts == kern[signature].phrase_starts
    assert shared >= 5 and agree >= shared - 1
