"""The lm-eval adapter: the same numbers as lm-eval's own command line on the same checkpoint
directory and small local tasks (multiple choice and a cloze with perplexity), cached per
checkpoint and task, with clear errors for unknown tasks and missing data."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pythia.evaluate import harness
from pythia.evaluate.harness import TaskError, evaluate_tasks, tidy
from pythia.runs import open_catalogue

LM_EVAL = shutil.which("lm_eval", path=str(Path(sys.executable).parent)) or "lm_eval"

MC = [
    {"question": "def main():", "choices": [" return 0", " import os", " pass"], "label": 0},
    {"question": "for i in range(10):", "choices": [" print(i)", " x = 1", " yield"], "label": 0},
    {"question": "Q: What is 2 plus 3? A:", "choices": ["5", "7", "9"], "label": 0},
    {"question": "class Foo(object):", "choices": [" pass", " def __init__(self):"], "label": 1},
    {"question": "import", "choices": [" os", " sys", " numpy", " re"], "label": 1},
    {"question": "Q: What is 4 times 2? A:", "choices": ["8", "6"], "label": 0},
]
CLOZE = [
    {"context": "def main():\n    return", "word": " 0"},
    {"context": "Q: What is 1 plus 1? A:", "word": "2"},
    {"context": "import os\nimport", "word": " sys"},
    {"context": "    if x is None:\n        return", "word": " None"},
]


def write_tasks(folder: Path) -> Path:
    """Two lm-eval YAML tasks with absolute data_files (as lm-eval resolves them)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, items in (("mc", MC), ("cloze", CLOZE)):
        (folder / f"{name}.jsonl").write_text("".join(json.dumps(x) + "\n" for x in items))
    common = "dataset_path: json\ntest_split: test\n"
    (folder / "tiny_mc.yaml").write_text(
        f"task: tiny_mc\n{common}dataset_kwargs:\n  data_files:\n    test: {folder / 'mc.jsonl'}\n"
        "output_type: multiple_choice\ndoc_to_text: '{{question}}'\ndoc_to_choice: '{{choices}}'\n"
        "doc_to_target: '{{label}}'\nmetric_list:\n  - metric: acc\n    aggregation: mean\n    higher_is_better: true\n"
        "  - metric: acc_norm\n    aggregation: mean\n    higher_is_better: true\n"
    )
    (folder / "tiny_cloze.yaml").write_text(
        f"task: tiny_cloze\n{common}dataset_kwargs:\n  data_files:\n    test: {folder / 'cloze.jsonl'}\n"
        "output_type: loglikelihood\ndoc_to_text: '{{context}}'\ndoc_to_target: '{{word}}'\nmetric_list:\n"
        "  - metric: perplexity\n    aggregation: perplexity\n    higher_is_better: false\n"
        "  - metric: acc\n    aggregation: mean\n    higher_is_better: true\n"
    )
    return folder


@pytest.fixture
def ckpt(smoke_run, monkeypatch):
    monkeypatch.setenv("PYTHIA_WORK", str(smoke_run))
    return open_catalogue("smoke").checkpoint("s1", "standard", 24)


def test_adapter_equals_the_lm_eval_cli(ckpt, tmp_path):
    tasks = write_tasks(tmp_path / "tasks")
    ours = evaluate_tasks(
        ckpt, ["tiny_mc", "tiny_cloze"], include_path=tasks, batch_size=4, root=tmp_path / "cache"
    )
    out = subprocess.run(
        [
            LM_EVAL,
            "--model",
            "hf",
            "--model_args",
            f"pretrained={ckpt.location}",
            "--tasks",
            "tiny_mc,tiny_cloze",
            "--include_path",
            str(tasks),
            "--device",
            "cpu",
            "--batch_size",
            "4",
            "--output_path",
            str(tmp_path / "cli"),
        ],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=tmp_path,
        env={**os.environ, "OMP_NUM_THREADS": "2"},
    )
    assert out.returncode == 0, out.stderr[-3000:]
    cli = json.loads(next((tmp_path / "cli").rglob("results_*.json")).read_text())["results"]
    for task in ("tiny_mc", "tiny_cloze"):
        mine = ours[task]["results"][task]
        metrics = [k for k in cli[task] if "," in k]
        assert {"acc,none", "acc_stderr,none"} <= set(metrics)
        for key in metrics:
            # accuracies exactly; perplexity to float32 rounding (see the adapter's loglikelihoods)
            assert mine[key] == pytest.approx(cli[task][key], rel=1e-6, abs=1e-9), (task, key)
    rows = tidy(ours)
    assert {(r["task"], r["metric"]) for r in rows} == {
        ("tiny_mc", "acc"),
        ("tiny_mc", "acc_norm"),
        ("tiny_cloze", "acc"),
        ("tiny_cloze", "perplexity"),
    }
    assert all(r["step"] == 24 and r["num_fewshot"] == 0 and r["filter"] == "none" for r in rows)


def test_rerun_evaluates_only_new_tasks(ckpt, tmp_path, monkeypatch):
    tasks = write_tasks(tmp_path / "tasks")
    root = tmp_path / "cache"
    asked: list[list[str]] = []

    import lm_eval

    real_eval = lm_eval.simple_evaluate

    def counting(*args, **kwargs):
        asked.append(list(kwargs["tasks"]))
        return real_eval(*args, **kwargs)

    monkeypatch.setattr(lm_eval, "simple_evaluate", counting)
    first = evaluate_tasks(ckpt, ["tiny_mc"], include_path=tasks, root=root, bootstrap_iters=100)
    monkeypatch.setattr(
        type(ckpt), "load_model", lambda *a, **k: pytest.fail("model loaded for cached tasks")
    )
    again = evaluate_tasks(ckpt, ["tiny_mc"], include_path=tasks, root=root, bootstrap_iters=100)
    assert again == first and asked == [["tiny_mc"]]
    monkeypatch.undo()
    monkeypatch.setattr(lm_eval, "simple_evaluate", counting)
    both = evaluate_tasks(
        ckpt, ["tiny_mc", "tiny_cloze"], include_path=tasks, root=root, bootstrap_iters=100
    )
    assert asked == [["tiny_mc"], ["tiny_cloze"]] and both["tiny_mc"] == first["tiny_mc"]
    # editing a task's data evaluates it again
    (tasks / "mc.jsonl").write_text("".join(json.dumps(x) + "\n" for x in MC[:3]))
    evaluate_tasks(
        ckpt, ["tiny_mc", "tiny_cloze"], include_path=tasks, root=root, bootstrap_iters=100
    )
    assert asked[-1] == ["tiny_mc"]


def test_unknown_task_and_missing_data_fail_clearly(ckpt, tmp_path):
    tasks = write_tasks(tmp_path / "tasks")
    with pytest.raises(TaskError, match="unknown lm-eval task 'tiny_mcq' \\(similar: tiny_mc,"):
        harness.task_digest("tiny_mcq", tasks)
    (tasks / "cloze.jsonl").unlink()
    with pytest.raises(
        TaskError, match=r"data file .*cloze.jsonl of task 'tiny_cloze' .* is missing"
    ):
        evaluate_tasks(ckpt, ["tiny_cloze"], include_path=tasks, root=tmp_path / "cache")


def test_lm_eval_environment_is_collected_once_per_process(monkeypatch):
    from lm_eval import evaluator

    from pythia.evaluate.harness import _env_info_once

    calls = []

    def collect(storage):
        calls.append(1)
        storage.update({"pretty_env_info": "slow", "lm_eval_version": "0.4"})

    monkeypatch.setattr(evaluator, "add_env_info", collect)
    _env_info_once()
    _env_info_once()  # already wrapped: stays one wrapper
    first, second = {}, {"results": 1}
    evaluator.add_env_info(first)
    evaluator.add_env_info(second)
    assert len(calls) == 1 and first == {"pretty_env_info": "slow", "lm_eval_version": "0.4"}
    assert second == {"results": 1, **first}


def test_request_cache_is_pointed_before_lm_eval_is_imported(tmp_path):
    """``request_cache`` names lm-eval's request-cache folder after its key and must run before
    lm-eval is imported (lm-eval reads the path once); afterwards it says so with None."""
    code = (
        "import json, sys\n"
        "from pythia.evaluate.harness import request_cache\n"
        "assert 'lm_eval' not in sys.modules\n"
        "a = request_cache('smoke', {'tasks': 'x', 'shots': 2})\n"
        "b = request_cache('smoke', {'tasks': 'y', 'shots': 2})\n"
        "import lm_eval.caching.cache as c\n"
        "print(json.dumps([str(a), str(b), c.PATH, request_cache('smoke', {'tasks': 'x'})]))\n"
    )
    env = {**os.environ, "PYTHIA_WORK": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    a, b, path, after = json.loads(out.stdout.strip().splitlines()[-1])
    assert a != b and path == b and after is None
    assert Path(a).is_dir() and Path(a).parent == tmp_path / "smoke" / "cache" / "lm_eval_requests"
    # lm-eval's version keys the folder too: another lm-eval never reads these requests
    from importlib.metadata import version

    from pythia.config import config_digest

    assert Path(a).name == config_digest(
        {"key": {"tasks": "x", "shots": 2}, "lm_eval": version("lm_eval")}
    )


def test_request_cache_key_changes_with_any_task_file(tmp_path):
    """lm-eval names its cached requests by task and shot count only; the folder digest that keys
    them (sections 05 and 06) covers every written task file, not a write in progress."""
    for name in ("tt_x.yaml", "x.jsonl"):
        (tmp_path / name).write_text("a\n")
    before = harness.folder_digest(tmp_path)
    (tmp_path / ".x.jsonl.abc.tmp").write_text("partial")
    assert harness.folder_digest(tmp_path) == before
    (tmp_path / "x.jsonl").write_text("b\n")
    assert harness.folder_digest(tmp_path) != before


def test_templates_compile_once_and_render_as_lm_eval(monkeypatch):
    """lm-eval recompiles a task's Jinja template for every document; the adapter keeps each
    compiled template, and renders exactly what lm-eval's own function does."""
    from lm_eval import utils

    original = getattr(utils.apply_template, "original", utils.apply_template)  # lm-eval's own
    monkeypatch.setattr(utils, "apply_template", original)
    docs = [
        {"q": "2 + 3", "a": 5, "choices": ["x", "y"]},
        {"q": "what?\n", "a": 0, "choices": ["z"]},
        {"q": "", "a": -1, "choices": []},
    ]
    templates = ["Q: {{q}}\nA:", "{{a}}", "{{choices}}", "{{q | regex_replace('[0-9]', '#')}}"]
    want = [original(t, d) for t in templates for d in docs]
    harness._compiled_templates_once()
    assert utils.apply_template is not original and utils.apply_template.original is original
    info = utils.apply_template.compiled.cache_info
    before = info()
    assert [utils.apply_template(t, d) for t in templates for d in docs] == want
    after = info()
    assert after.misses - before.misses <= len(templates)  # one compilation per template at most
    assert after.hits - before.hits >= len(templates) * (len(docs) - 1)
    with pytest.raises(Exception, match="undefined"):
        utils.apply_template("{{missing}}", docs[0])  # lm-eval's StrictUndefined still applies


def test_bench_compares_with_the_cli_on_a_relative_task_folder(ckpt, tmp_path, monkeypatch):
    """`pythia benchmarks bench` names the suite's task folder and a trained checkpoint relative to
    the project; the CLI it times runs in a scratch directory, so both must reach it as absolute
    paths."""
    import dataclasses

    from pythia.evaluate.benchmarks import bench_adapter_vs_cli

    write_tasks(tmp_path / "tasks")
    monkeypatch.chdir(tmp_path)
    ckpt = dataclasses.replace(ckpt, location=os.path.relpath(ckpt.location, tmp_path))
    res = bench_adapter_vs_cli(ckpt, ["tiny_mc"], "tasks", batch_size=8, rounds=1)
    assert res["identical_values"] and res["tokens"] > 0 and res["ratio_adapter_over_cli"] > 0


def test_adapter_scores_only_continuations_with_lm_evals_answers(ckpt):
    """The adapter's loglikelihoods are lm-eval's own ``HFLM``'s (to float32 rounding): contexts
    cut from the left when too long, one-token choices sharing an input, rows of different lengths
    in a batch; the model is asked for logits only at continuation positions."""
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
    kept = []
    hook = model.register_forward_pre_hook(
        lambda m, args, kwargs: kept.append(kwargs.get("logits_to_keep")), with_kwargs=True
    )
    try:
        got = mine._loglikelihood_tokens(requests, disable_tqdm=True)
    finally:
        hook.remove()
    want = stock._loglikelihood_tokens(requests, disable_tqdm=True)
    # the vocabulary projection of fewer rows may round a logit's last bit differently
    assert [g for _, g in got] == [g for _, g in want]
    assert [x for x, _ in got] == pytest.approx([x for x, _ in want], rel=1e-6, abs=1e-6)
    # five distinct inputs in two batches; logits at 2 + 3 + 1 + 7 + 2 positions
    assert len(kept) == 2 and sum(int(k.sum()) for k in kept) == 15
    with pytest.raises(ValueError, match="both must be non-empty"):
        mine._loglikelihood_tokens([(("", "x"), [], ids[:2])], disable_tqdm=True)
