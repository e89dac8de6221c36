"""The lm-eval adapter: the same loglikelihoods as lm-eval's own ``HFLM`` from logits at the
continuations only; lm-eval's environment record and Jinja templates made once per process.
(The adapter module imports lm-eval: each test imports it, so collecting stays light.)"""

from __future__ import annotations

import pytest

from pythia.evaluate import harness
from pythia.runs import open_catalogue


@pytest.fixture
def ckpt(smoke_run, monkeypatch):
    monkeypatch.setenv("PYTHIA_WORK", str(smoke_run))
    return open_catalogue("smoke").checkpoint("s1", "standard", 24)


def test_adapter_scores_packed_requests_with_lm_evals_answers(ckpt):
    """The adapter's loglikelihoods are lm-eval's own ``HFLM``'s (to float32 rounding): contexts
    cut from the left when too long, one-token choices sharing an input, rows of different lengths;
    the requests are scored by :mod:`pythia.evaluate.packed`, shared contexts once, many to a row,
    and the cache hook gets every keyed answer."""
    from lm_eval.models.huggingface import HFLM

    model, tok = ckpt.load_model(), ckpt.load_tokenizer()
    mine = harness.lm_eval_model(model, tok, batch_size=3)
    stock = HFLM(pretrained=model, tokenizer=tok, backend="causal", batch_size=3)
    window = mine.max_length
    ids = [int(x) for x in tok("def main():\n    return 0\n" * 80)["input_ids"]]
    assert len(ids) > window + 10
    requests = [
        (("long", " 0"), ids[:-2], ids[-2:]),  # cut from the left
        (("long+1", ""), ids[: window + 1], ids[window + 1 : window + 4]),
        (("a", " b"), ids[:5], [ids[5]]),
        (("a", " c"), ids[:5], [ids[7]]),  # one input, two choices
        (("short", ""), ids[:2], ids[2:9]),
        ((None, None), ids[:1], ids[1:3]),
    ]
    fed, hooked = [], []
    hook = model.base_model.register_forward_pre_hook(
        lambda m, args, kwargs: fed.append(kwargs["input_ids"].shape), with_kwargs=True
    )
    mine.cache_hook = type("Hook", (), {"add_partial": lambda s, *a: hooked.append(a)})()
    try:
        got = mine._loglikelihood_tokens(requests, disable_tqdm=True)
    finally:
        hook.remove()
    want = stock._loglikelihood_tokens(requests, disable_tqdm=True)
    # the same products summed in another order may round the last bits differently
    assert [g for _, g in got] == [g for _, g in want]
    assert [x for x, _ in got] == pytest.approx([x for x, _ in want], rel=1e-5, abs=1e-5)
    # five distinct prefixes packed into rows; one forward pass holds them all
    assert len(fed) == 1
    assert [a[1] for a in hooked] == [r[0] for r in requests if r[0] is not None]
    with pytest.raises(ValueError, match="both must be non-empty"):
        mine._loglikelihood_tokens([(("", "x"), [], ids[:2])], disable_tqdm=True)


def test_lm_eval_environment_is_collected_once_per_process(monkeypatch):
    from lm_eval import evaluator

    from pythia.evaluate import lm_eval_adapter

    calls = []

    def collect(storage):
        calls.append(1)
        storage.update({"pretty_env_info": "slow", "lm_eval_version": "0.4"})

    monkeypatch.setattr(evaluator, "add_env_info", collect)
    lm_eval_adapter.collect_env_info_once()
    lm_eval_adapter.collect_env_info_once()  # already wrapped: stays one wrapper
    first, second = {}, {"results": 1}
    evaluator.add_env_info(first)
    evaluator.add_env_info(second)
    assert len(calls) == 1 and first == {"pretty_env_info": "slow", "lm_eval_version": "0.4"}
    assert second == {"results": 1, **first}


def test_templates_compile_once_and_render_as_lm_eval(monkeypatch):
    """lm-eval recompiles a task's Jinja template for every document; the adapter keeps each
    compiled template, and renders exactly what lm-eval's own function does."""
    from lm_eval import utils

    from pythia.evaluate import lm_eval_adapter

    original = getattr(utils.apply_template, "original", utils.apply_template)  # lm-eval's own
    monkeypatch.setattr(utils, "apply_template", original)
    docs = [
        {"q": "2 + 3", "a": 5, "choices": ["x", "y"]},
        {"q": "what?\n", "a": 0, "choices": ["z"]},
        {"q": "", "a": -1, "choices": []},
    ]
    templates = ["Q: {{q}}\nA:", "{{a}}", "{{choices}}", "{{q | regex_replace('[0-9]', '#')}}"]
    want = [original(t, d) for t in templates for d in docs]
    lm_eval_adapter.compile_templates_once()
    assert utils.apply_template is not original and utils.apply_template.original is original
    info = utils.apply_template.compiled.cache_info
    before = info()
    assert [utils.apply_template(t, d) for t in templates for d in docs] == want
    after = info()
    assert after.misses - before.misses <= len(templates)  # one compilation per template at most
    assert after.hits - before.hits >= len(templates) * (len(docs) - 1)
    with pytest.raises(Exception, match="undefined"):
        utils.apply_template("{{missing}}", docs[0])  # lm-eval's StrictUndefined still applies
