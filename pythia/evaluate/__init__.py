"""Evaluating checkpoints: the heavy work of each section, and the scoring it shares.

    scoring.py        score(model, tokens, positions=None, ...): per-token log-probs and greedy tokens
    cache.py          cached_score(checkpoint, tokens, ...): the same, cached on disk per checkpoint
    harness.py        evaluate_tasks(checkpoint, tasks, ...): lm-eval tasks on a loaded checkpoint,
                      cached; tidy(records): lm-eval results as rows (task, metric, value, stderr)
    lm_eval_adapter.py  lm-eval's HFLM over an already loaded model (imports lm-eval)
    <stem>.py         one section's heavy work: benchmarks, gender_intervention (bias.py: its
                      measures), memorization (memorization_kernels.py: one batch's scan;
                      memorization_files.py: its outputs), term_frequencies, training_trajectories

Checkpoints come from :mod:`pythia.runs` (our runs, a local copy of the released suite, or the hub).
The package imports none of its modules: importing a light one (``memorization_files``) does not
load torch.
"""
