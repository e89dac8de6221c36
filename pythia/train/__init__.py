"""Training: Pythia's optimizer and schedule, the step-indexed training loop, checkpoints
with exact resume, data-parallel (torchrun / DeepSpeed) scale-out.

    schedule.py          lr_at(step, ...) -- GPT-NeoX v1.0 AnnealingLR (warmup + cosine, floor)
    optim.py             AdamW with Pythia's weight-decay groups
    checkpoint.py        HF model dirs at checkpoint steps, training state (safetensors + JSON)
    loop.py              the trainer: batch s at step s from pythia.data.batches.get_batch
    distributed.py       torch.distributed context (gloo / nccl), rank slicing, DDP
    deepspeed_config.py  the DeepSpeed config of a suite
    precision.py         precision per model and dataset; fp16 loss scaling and its skipped steps
    cli.py               ``pythia train``, ``pythia deepspeed-config``
"""
