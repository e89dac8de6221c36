"""Evaluating checkpoints: teacher-forced scoring, lm-evaluation-harness, and their caches.

    score(model, tokens, positions=None, ...)      per-token log-probs and greedy tokens (scoring.py)
    cached_score(checkpoint, tokens, ...)           the same, cached on disk per checkpoint (cache.py)
    evaluate_tasks(checkpoint, tasks, ...)          lm-eval tasks on a loaded checkpoint, cached (harness.py)
    tidy(records)                                   lm-eval results as rows (task, metric, value, stderr)

Checkpoints come from :mod:`pythia.runs` (our runs, a local copy of the released suite, or the hub).
"""

from pythia.evaluate.cache import cached_score
from pythia.evaluate.harness import evaluate_tasks, tidy
from pythia.evaluate.scoring import Scores, score

__all__ = ["Scores", "cached_score", "evaluate_tasks", "score", "tidy"]
