"""Phrases and form on the real corpora (issue 10): do the two Essen editions agree, and what
forms do the songs have?

Run: .venv/bin/python benchmarks/check_form.py [--kern DIR] [--nottingham DIR] [--out FILE]

* Edition agreement: the erk songs of music21's bundled Essen ABC (phrases = lines) and of the
  kern edition in ../shared/data/essen-deutschl-kern/erk (phrases = ``{ }`` marks), matched by
  their Essen signature (ABC ``N: E0001`` = kern ``!!!SCT: E0001``). Compared on the songs both
  editions keep: identical melodies, identical phrase starts, and phrase-boundary recall.
* Form statistics of each corpus as ``tunesmith prepare`` reports them.
Results go to benchmarks/results/form.md (use --out to write elsewhere).
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import time
from pathlib import Path

from tunesmith.config import CorpusConfig, EncodingConfig
from tunesmith.corpus import prepare
from tunesmith.corpus.reader import make_jobs
from tunesmith.corpus.sources import resolve_sources

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


def load(source: str, cache: str | None) -> tuple[dict, float]:
    started = time.perf_counter()
    dataset = prepare(CorpusConfig(sources=[source], cache_dir=cache or ""), EncodingConfig(), progress=False)
    return dataset, time.perf_counter() - started


def signatures(source: str, pattern: str) -> dict[str, str]:
    """Job label → Essen signature found by ``pattern`` in its text."""
    found = {}
    for src in resolve_sources([source]):
        for job in make_jobs(src):
            match = re.search(pattern, job.text or "", re.MULTILINE)
            if match:
                found[job.label] = match.group(1)
    return found


def agreement(abc, kern) -> dict:
    abc_ids = signatures("essen/erk", r"^N:\s*(\S+)")
    kern_ids = signatures(kern.report["sources"][0], r"^!!!SCT:\s*(\S+)")
    abc_by = {abc_ids[e.song.source]: e for e in abc.examples if e.song.source in abc_ids}
    kern_by = {kern_ids[e.song.source]: e for e in kern.examples if e.song.source in kern_ids}
    shared = sorted(set(abc_by) & set(kern_by))
    same_melody = same_starts = same_count = 0
    found = marked = 0
    for sig in shared:
        a, k = abc_by[sig], kern_by[sig]
        melody = a.tokens == k.tokens
        same_melody += melody
        same_count += len(a.song.phrase_starts) == len(k.song.phrase_starts)
        same_starts += a.song.phrase_starts == k.song.phrase_starts
        if melody:
            kb, ab = set(k.song.phrase_starts[1:]), set(a.song.phrase_starts[1:])
            marked += len(kb)
            found += len(kb & ab)
    sources_abc = {e.song.phrase_source for e in abc.examples}
    return {"shared": len(shared), "same_melody": same_melody, "same_count": same_count,
            "same_starts": same_starts, "boundary_recall": found / marked if marked else 0.0,
            "abc_sources": sources_abc, "abc_only": len(set(abc_by) - set(kern_by)),
            "kern_only": len(set(kern_by) - set(abc_by))}  # fmt: skip


def stats_lines(name: str, dataset, seconds: float) -> list[str]:
    form = dataset.report["form"]
    lines = [f"### {name}", "", f"{form['songs']} songs (prepare {seconds:.0f} s); phrases found by: "
             + ", ".join(f"{k} {v}" for k, v in form["phrase_sources"].items()), ""]  # fmt: skip
    lines += ["| meter | songs | most common forms |", "|---|---|---|"]
    for meter, info in list(form["forms_by_meter"].items())[:6]:
        lines.append(f"| {meter} | {info['songs']} | " + ", ".join(f"`{f}` ({n})" for f, n in info["top"]) + " |")
    total = sum(form["phrase_bars"].values()) or 1
    lines += ["", f"- distinct forms: {form['distinct_forms']}",
              "- phrases per song: " + ", ".join(f"{k}: {v}" for k, v in form["phrases_per_song"].items()),
              "- phrase length in bars: " + ", ".join(f"{k}: {v / total:.1%}" for k, v in
                                                      sorted(form["phrase_bars"].items(), key=lambda kv: -kv[1])[:6]),
              "- phrase-final degrees (all but the last phrase): " + _shares(form["final_degrees"]),
              "- song-final degrees: " + _shares(form["song_final_degrees"]),
              f"- repeated 4-note interval+duration patterns: {form['repetition']:.1%} of a song's patterns (mean)",
              ""]  # fmt: skip
    return lines


def _shares(counts: dict) -> str:
    total = sum(counts.values()) or 1
    return ", ".join(f"{k}: {v / total:.1%}" for k, v in list(counts.items())[:7])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kern", default=str(SHARED / "essen-deutschl-kern" / "erk"))
    parser.add_argument("--nottingham", default=str(SHARED / "nottingham-abc"))
    parser.add_argument("--cache", default=None, help="cache folder (default: TUNESMITH_CACHE)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "form.md"))
    args = parser.parse_args()
    out = ["# Phrases and form on the real corpora (issue 10)", "",
           "Command: `.venv/bin/python benchmarks/check_form.py` (prepare times are cold unless the",
           f"cache already held the corpus). Machine: {os.cpu_count()} cores, {platform.processor() or platform.machine()};",
           f"date {time.strftime('%Y-%m-%d')}.", ""]  # fmt: skip
    abc, abc_s = load("essen/erk", args.cache)
    sections = stats_lines("essen/erk (music21's Essen ABC, phrases = lines)", abc, abc_s)
    if Path(args.kern).is_dir():
        kern, kern_s = load(args.kern, args.cache)
        a = agreement(abc, kern)
        out += ["## The two Essen editions agree", "",
                f"{a['shared']} erk songs kept by both editions (matched by Essen signature; {a['abc_only']} only in "
                f"the ABC, {a['kern_only']} only in kern).", "",
                "| figure | songs | share |", "|---|---|---|",
                f"| identical melody (tokens) | {a['same_melody']} | {a['same_melody'] / a['shared']:.1%} |",
                f"| same number of phrases | {a['same_count']} | {a['same_count'] / a['shared']:.1%} |",
                f"| identical phrase starts (ABC lines = kern marks) | {a['same_starts']} | {a['same_starts'] / a['shared']:.1%} |",
                "", f"Kern phrase boundaries found by the ABC lines, over identical melodies: {a['boundary_recall']:.1%}.",
                ""]  # fmt: skip
        sections += stats_lines("kern erk (../shared/data, phrases = { } marks)", kern, kern_s)
    else:
        out += [f"Edition agreement skipped: {args.kern} is absent.", ""]
    if Path(args.nottingham).is_dir():
        nott, nott_s = load(args.nottingham, args.cache)
        sections += stats_lines("Nottingham (repeats expanded, phrases = sections / parts)", nott, nott_s)
        rejected = nott.report["rejected_by_reason"]
        sections += [f"Nottingham: {nott.report['songs_kept']} of {nott.report['songs_read']} tunes kept; rejected: {rejected}", ""]
    out += ["## Form statistics", ""] + sections
    Path(args.out).write_text("\n".join(out), encoding="utf-8")
    print("\n".join(out))


if __name__ == "__main__":
    main()
