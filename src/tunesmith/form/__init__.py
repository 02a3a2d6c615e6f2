"""Musical form: phrases, the letters that say which phrase restates which, corpus statistics.

Pure functions over :class:`~tunesmith.song.Song` (no music21, no torch); the corpus reader
records each song's phrases, this package analyses them. See ``phrases`` (recovery rule,
``Phrase``), ``labels`` (similarity, ``parse_form``, ``compliance``, ``repetition``) and
``stats`` (``analyse``, ``form_statistics``, ``form_distribution``, ``draw_form``).
"""

from tunesmith.form.labels import (
    Compliance,
    FormPhrase,
    compliance,
    distance,
    form_string,
    label_phrases,
    parse_form,
    relation,
    repetition,
)
from tunesmith.form.phrases import SOURCES, Phrase, rule_phrase_starts, scale_degree, song_phrases
from tunesmith.form.stats import SongForm, analyse, draw_form, form_distribution, form_statistics

__all__ = [
    "SOURCES", "Compliance", "FormPhrase", "Phrase", "SongForm", "analyse", "compliance", "distance",
    "draw_form", "form_distribution", "form_statistics", "form_string", "label_phrases", "parse_form",
    "relation", "repetition", "rule_phrase_starts", "scale_degree", "song_phrases",
]  # fmt: skip
