"""Training: Pythia's optimizer and schedule, the step-indexed training loop, checkpoints
with exact resume, data-parallel (torchrun / DeepSpeed) scale-out.

    schedule.py          lr_at(step, ...) -- GPT-NeoX v1.0 AnnealingLR (warmup + cosine, floor)
    optim.py             AdamW with Pythia's weight-decay groups
    checkpoint.py        HF model dirs at checkpoint steps, training state (safetensors + JSON)
    loop.py              the trainer: batch s at step s from pythia.data.batches.get_batch
                         (Trainer.train_step: one update; Trainer.run: the loop, its log)
    loss.py              the loss a step minimises (output layer and cross-entropy fused on CPU)
    engine.py            the model, optimizer and loss scaler in the run's precision, wrapped
                         for DDP or DeepSpeed; the process's seeds, threads, determinism
    state.py             the training state: save and load for exact resume (ZeRO gathered)
    rundir.py            the run directory: claim it, where a run resumes, its log
    distributed.py       torch.distributed context (gloo / nccl), rank slicing, DDP
    deepspeed_config.py  the DeepSpeed config of a suite
    precision.py         precision per model and dataset; fp16 loss scaling and its skipped steps
    intervened_runs.py   the gender intervention's runs (which, from where); intervention.py
                         their trainer

The command line (``pythia train``, ``pythia deepspeed-config``) is :mod:`pythia.cli.train`.
"""
