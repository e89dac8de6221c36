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
        check=False,
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


def test_sweep_gives_simple_evaluates_records_checkpoint_after_checkpoint(ckpt, tmp_path):
    """A run's checkpoints through one :class:`harness.Sweep` (lm-eval's task objects and model
    wrapper built once) get the records ``simple_evaluate`` gives each on its own, few-shot
    contexts included (the samplers start again for every checkpoint)."""
    tasks = write_tasks(tmp_path / "tasks")
    cat = open_catalogue("smoke")
    steps = cat.steps("s1", "standard")[-2:]
    sweep = harness.Sweep()
    for shots in (0, 2):
        for step in steps:
            c = cat.checkpoint("s1", "standard", step)
            kw = {"include_path": tasks, "batch_size": 4, "num_fewshot": shots, "log_samples": True}
            swept = evaluate_tasks(
                c, ["tiny_mc", "tiny_cloze"], root=tmp_path / "swept", sweep=sweep, **kw
            )
            alone = evaluate_tasks(c, ["tiny_mc", "tiny_cloze"], root=tmp_path / "alone", **kw)
            for task in ("tiny_mc", "tiny_cloze"):
                assert swept[task]["results"] == alone[task]["results"], (shots, step, task)
                assert swept[task]["samples"] == alone[task]["samples"], (shots, step, task)
                assert swept[task]["n_samples"] == alone[task]["n_samples"]
    assert len(sweep._inner._tasks) == 2  # one set of task objects per shot count
