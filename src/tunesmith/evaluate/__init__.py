"""Evaluate stage: prediction vs an n-gram baseline, generated-vs-real statistics (Yang & Lerch),
structure (repetition, self-similarity, endings, form compliance), originality against the
training corpus, dry-out on long outputs and a human-or-not classifier."""

from tunesmith.evaluate.pipeline import EvaluateConfig, evaluate
from tunesmith.evaluate.report import write_report

__all__ = ["EvaluateConfig", "evaluate", "write_report"]
