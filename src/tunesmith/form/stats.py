"""Form over a corpus: one song's analysis, corpus statistics, and the forms to draw from."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass

from tunesmith.errors import TunesmithError
from tunesmith.form.labels import FormPhrase, form_string, label_phrases, parse_form, repetition
from tunesmith.form.phrases import Phrase, song_phrases
from tunesmith.song import Song

TOP = 5  # forms listed per meter in the report


@dataclass
class SongForm:
    """A song's phrases, their letters, the form string ("A A' B A") and its repetition share."""

    phrases: list[Phrase]
    labels: list[str]
    source: str
    repetition: float

    @property
    def form(self) -> str:
        return form_string(self.labels)

    @property
    def form_with_bars(self) -> str:
        return form_string(self.labels, self.phrases)

    def to_dict(self) -> dict:
        return {
            "form": self.form, "form_with_bars": self.form_with_bars, "phrase_source": self.source,
            "repetition": round(self.repetition, 4),
            "phrases": [
                {"label": label, "start": p.start, "steps": p.steps, "bars": p.bars,
                 "final_pitch": p.final_pitch, "final_degree": p.final_degree, "final_steps": p.final_steps}
                for label, p in zip(self.labels, self.phrases)
            ],
        }  # fmt: skip


def analyse(song: Song) -> SongForm:
    """Phrases, form letters and repetition of one song."""
    phrases = song_phrases(song)
    source = getattr(song, "phrase_source", "") if getattr(song, "phrase_starts", None) else "rule"
    return SongForm(phrases, label_phrases(song, phrases), source or "rule", repetition(song))


def form_statistics(songs: list[Song], top: int = TOP) -> dict:
    """Corpus form statistics for the prepare report (plain JSON types).

    ``forms_by_meter``: the ``top`` most common form strings per meter with their counts;
    ``phrase_bars``: phrases by length in bars; ``final_degrees``: phrase-final scale degrees
    (all phrases but the last) and ``song_final_degrees`` (last phrases); ``phrase_sources``:
    songs by how their phrases were found; ``phrases_per_song`` and mean ``repetition``.
    """
    by_meter: dict[str, Counter] = {}
    bars, finals, song_finals, sources, counts = Counter(), Counter(), Counter(), Counter(), Counter()
    repeats = []
    for song in songs:
        result = analyse(song)
        by_meter.setdefault(song.meter, Counter())[result.form] += 1
        bars.update(p.bars for p in result.phrases)
        finals.update(p.final_degree for p in result.phrases[:-1] if p.final_degree)
        if result.phrases and result.phrases[-1].final_degree:
            song_finals[result.phrases[-1].final_degree] += 1
        sources[result.source] += 1
        counts[len(result.phrases)] += 1
        repeats.append(result.repetition)
    meters = sorted(by_meter, key=lambda m: -sum(by_meter[m].values()))
    return {
        "songs": len(songs),
        "phrase_sources": dict(sources.most_common()),
        "forms_by_meter": {m: {"songs": sum(by_meter[m].values()), "top": by_meter[m].most_common(top)} for m in meters},
        "distinct_forms": sum(len(c) for c in by_meter.values()),
        "phrases_per_song": dict(sorted(counts.items())),
        "phrase_bars": dict(sorted(bars.items())),
        "final_degrees": dict(finals.most_common()),
        "song_final_degrees": dict(song_finals.most_common()),
        "repetition": round(sum(repeats) / len(repeats), 4) if repeats else 0.0,
    }


def form_distribution(songs: list[Song]) -> dict[tuple[str, str], Counter]:
    """Forms with their phrase lengths ("A4 A4 B4 A4") counted per ``(meter, mode)``."""
    distribution: dict[tuple[str, str], Counter] = {}
    for song in songs:
        distribution.setdefault((song.meter, song.mode), Counter())[analyse(song).form_with_bars] += 1
    return distribution


def draw_form(distribution: dict[tuple[str, str], Counter], meter: str, mode: str,
              rng: random.Random | None = None) -> list[FormPhrase]:  # fmt: skip
    """A form drawn from the corpus's own forms for ``meter`` and ``mode`` (weighted by count).

    Falls back to the meter's forms in any mode; raises TunesmithError when the corpus has no
    song in that meter.
    """
    rng = rng or random.Random()
    counter = distribution.get((meter, mode))
    if not counter:
        counter = sum((c for (m, _), c in distribution.items() if m == meter), Counter())
    if not counter:
        known = ", ".join(sorted({m for m, _ in distribution})) or "none"
        raise TunesmithError(f"the corpus has no song in {meter} to draw a form from (meters: {known})")
    forms = sorted(counter)
    chosen = rng.choices(forms, weights=[counter[f] for f in forms])[0]
    return parse_form(chosen)
