"""Evaluating checkpoints: teacher-forced scoring, lm-evaluation-harness, and their caches.

    score(model, tokens, positions=None, ...)         per-token log-probs and greedy tokens (scoring.py)
    cached_score(checkpoint, tokens, ...)              the same, cached per checkpoint on disk (cache.py)
    evaluate_tasks(checkpoint, tasks, ...)             lm-eval tasks on a loaded model, cached (harness.py)
"""

from pythia.evaluate.scoring import Scores, score

__all__ = ["Scores", "score"]
