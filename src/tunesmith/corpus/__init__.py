"""Corpus stage: sources → music21 → Songs → tokens, vocabulary, split, report (cached)."""

from tunesmith.corpus.dataset import Dataset, Example, prepare

__all__ = ["Dataset", "Example", "prepare"]
