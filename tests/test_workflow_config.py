"""The workflow's configuration from the command line: Snakemake passes nested ``--config``
values as strings, typed before validation (pythia/workflow_config.py), so the README's own
examples run and the rules see ints, numbers, booleans and None."""

from pathlib import Path

import jsonschema
import pytest
import yaml

from pythia.workflow_config import load_schema, typed_config, typed_scalar, typed_value
from tests.test_workflow import _snakemake

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "config" / "schema.yaml"


def _shell_lines(text: str, command: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(f"Shell command: {command}")]


def test_the_readmes_nested_config_examples_run(tmp_path):
    # exactly the README's and config/config.yaml's forms, through Snakemake's own parsing: the
    # benchmarks mapping, the whole checkpoints mapping and a memorization mapping (a dry run)
    local = tmp_path / "released"
    local.mkdir()
    out = _snakemake(
        "-n",
        "-p",
        "--directory",
        str(tmp_path),
        "--config",
        "suite=smoke",
        "sections=[benchmarks, memorization]",
        "benchmarks={tasks: [paper], num_fewshot: [0, 5], examples: 100}",
        f"checkpoints={{source: local, path: {local}, steps: [0, 24]}}",
        "memorization={prompt: 16, continuation: 8, score_stride: 0, windows: [4, 8], "
        "data_stride: 2, bench_rows: 8, device: cpu}",
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    evaluate = _shell_lines(out.stdout, "pythia benchmarks evaluate")
    assert evaluate and all("--num-fewshot 0 5 " in line for line in evaluate)
    assert all(
        f"--checkpoints-source local --checkpoints-path {local} --steps 0 24 " in line
        for line in evaluate
    )
    assert "--examples 100 " in _shell_lines(out.stdout, "pythia benchmarks tasks")[0]
    scans = _shell_lines(out.stdout, "pythia memorization scan")
    assert scans and all(
        "--prompt 16 --continuation 8 --score-stride 0 --data-stride 2 " in s for s in scans
    )


def test_a_null_given_on_the_command_line_is_none(tmp_path):
    # examples: null takes the suite's analysis.benchmarks_examples (10 for smoke), not 'null';
    # without `validation` sections 03 and 06 read the suite's split (no --validation)
    out = _snakemake(
        "-n",
        "-p",
        "--directory",
        str(tmp_path),
        "--config",
        "suite=smoke",
        "sections=[benchmarks, gender_intervention, training_trajectories]",
        "benchmarks={examples: null}",
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "--examples 10 " in _shell_lines(out.stdout, "pythia benchmarks tasks")[0]
    evaluate = _shell_lines(out.stdout, "pythia gender-intervention evaluate")
    evaluate += _shell_lines(out.stdout, "pythia training-trajectories evaluate")
    assert len(evaluate) == 2 + 4 and not any("--validation" in line for line in evaluate)


def test_the_validation_key_reaches_the_evaluate_commands(tmp_path):
    # config `validation`: sections 03 and 06's evaluate jobs read the file (it is their input)
    # and get --validation FILE; an unknown format stops before any job
    val = tmp_path / "val.npy"
    val.write_bytes(b"")
    out = _snakemake(
        "-n",
        "-p",
        "--directory",
        str(tmp_path),
        "--config",
        "suite=smoke",
        "sections=[gender_intervention, training_trajectories]",
        f"validation={val}",
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    gi = _shell_lines(out.stdout, "pythia gender-intervention evaluate")
    tt = _shell_lines(out.stdout, "pythia training-trajectories evaluate")
    # smoke: s1's baseline and intervened run (03); 2 sizes x 2 datasets (06)
    assert len(gi) == 2 and len(tt) == 4
    assert all(f" --validation {val} " in line for line in gi + tt)
    bad = _snakemake(
        "-n",
        "--directory",
        str(tmp_path),
        "--config",
        "suite=smoke",
        f"validation={tmp_path}/v.txt",
    )
    assert (
        bad.returncode != 0
        and "unknown format '.txt'; give a .bin/.idx pair" in bad.stdout + bad.stderr
    )


def test_a_value_of_the_wrong_kind_still_fails_validation(tmp_path):
    out = _snakemake(
        "-n",
        "--directory",
        str(tmp_path),
        "--config",
        "suite=smoke",
        "benchmarks={num_fewshot: [five]}",
    )
    assert out.returncode != 0 and "'five' is not of type 'integer'" in out.stdout + out.stderr


@pytest.mark.parametrize(
    ("value", "types", "expected"),
    [
        ("5", {"integer"}, 5),
        ("-3", {"integer"}, -3),
        ("0.25", {"number"}, 0.25),
        ("7", {"number"}, 7),
        ("1e-3", {"number"}, 0.001),
        ("true", {"boolean"}, True),
        ("False", {"boolean"}, False),
        ("null", {"integer", "null"}, None),
        ("~", {"null"}, None),
        ("", {"integer", "null"}, None),
        ("12", {"integer", "null"}, 12),
        ("5", {"string"}, "5"),  # a string field keeps its string
        ("null", {"string", "null"}, "null"),
        ("five", {"integer"}, "five"),  # left for the validation to name
        ("1.5", {"integer"}, "1.5"),
        ("yes", {"boolean"}, "yes"),
    ],
)
def test_typed_scalar(value, types, expected):
    got = typed_scalar(value, types)
    assert got == expected and type(got) is type(expected)


def test_typed_value_walks_objects_arrays_and_unions():
    schema = {
        "type": "object",
        "properties": {
            "n": {"type": "integer"},
            "xs": {"type": "array", "items": {"anyOf": [{"type": "integer"}, {"type": "null"}]}},
            "inner": {
                "type": "object",
                "properties": {"flag": {"type": "boolean"}, "name": {"type": "string"}},
            },
        },
    }
    value = {"n": "3", "xs": ["1", "null"], "inner": {"flag": "true", "name": "7"}, "other": "8"}
    assert typed_value(value, schema) == {
        "n": 3,
        "xs": [1, None],
        "inner": {"flag": True, "name": "7"},
        "other": "8",  # not in the schema: left for the validation to reject
    }


def _typed_leaves(schema: dict, path: tuple = ()):
    """(path, subschema, sample) of every field of the schema whose type is not a string,
    the sample a value it accepts (its default, or an item of it)."""
    types = schema.get("type")
    if types == "object":
        for key, sub in schema.get("properties", {}).items():
            yield from _typed_leaves(sub, (*path, key))
    elif types == "array":
        items = schema["items"]
        if items.get("type") not in ("string", "object", "array"):
            sample = (schema.get("default") or [items.get("minimum", 0)])[0]
            yield (*path, 0), items, sample
    elif types != "string":
        yield path, schema, schema["default"]


def test_every_typed_field_of_the_schema_takes_its_string_form():
    schema = load_schema(SCHEMA)
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    leaves = list(_typed_leaves(schema))
    names = {p[:2] for p, _, _ in leaves}
    # the schema's typed fields, so that a new one is seen here
    assert {("train_threads",), ("benchmarks", "num_fewshot"), ("benchmarks", "examples")} <= names
    assert ("memorization", "prompt") in names and ("checkpoints", "steps") in names
    for path, _sub, sample in leaves:
        for value in [sample, None] if "null" in str(_sub.get("type")) else [sample]:
            given = yaml.safe_load(yaml.safe_dump(config))
            node = given
            for key in path[:-1]:
                node = node[key]
            if isinstance(node, list):
                node[:] = [""]
            node[path[-1]] = "null" if value is None else str(value).lower()
            typed = typed_config(given, SCHEMA)
            jsonschema.validate(typed, schema)  # would raise "'..' is not of type .."
            got = typed
            for key in path:
                got = got[key]
            assert got == value and type(got) is type(value), path
