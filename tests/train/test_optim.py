"""AdamW settings and Pythia's weight-decay groups."""

import torch

from pythia.config import load_suite
from pythia.model import build_model
from pythia.train.optim import build_optimizer, no_decay_names


def test_weight_decay_excludes_layernorm_and_biases():
    suite = load_suite("smoke")
    model = build_model(suite, "s2", device="cpu")
    opt = build_optimizer(model, suite.training)
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    ln_params = {
        id(p) for m in model.modules() if isinstance(m, torch.nn.LayerNorm) for p in m.parameters()
    }
    biases = {id(p) for n, p in model.named_parameters() if n.endswith(".bias")}
    assert ln_params and biases
    assert {id(p) for p in no_decay["params"]} == ln_params | biases
    assert not ({id(p) for p in decay["params"]} & (ln_params | biases))
    # every parameter is in exactly one group; embeddings and the output layer decay
    names = set(decay["names"]) | set(no_decay["names"])
    assert names == {n for n, _ in model.named_parameters()}
    assert (
        "gpt_neox.embed_in.weight" in decay["names"] and "embed_out.weight" in decay["names"]
    ) or "lm_head.weight" in decay["names"]
    assert all(
        "layernorm" in n or "layer_norm" in n or n.endswith(".bias") for n in no_decay_names(model)
    )


def test_adamw_hyperparameters():
    suite = load_suite("pythia")
    model = build_model(suite.model_copy(update={}), "14M", device="meta")
    opt = build_optimizer(model, suite.training, fused=False)
    g = opt.param_groups[0]
    assert g["betas"] == (0.9, 0.95) and g["eps"] == 1e-8 and isinstance(opt, torch.optim.AdamW)
