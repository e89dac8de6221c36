"""Suite configuration: the shipped suites load, and bad input fails naming the problem."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pythia.config import (
    ConfigError,
    available_suites,
    checkpoint_steps,
    load_suite,
    reference_markdown,
)

SUITES = Path(__file__).resolve().parents[1] / "pythia" / "suites"


def _write(tmp_path, mutate):
    raw = yaml.safe_load((SUITES / "smoke.yaml").read_text())
    mutate(raw)
    path = tmp_path / "smoke.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_shipped_suites_load():
    assert {"pythia", "micro", "smoke"} <= set(available_suites())
    for name in ("pythia", "micro", "smoke"):
        suite = load_suite(name)
        assert suite.name == name
        assert list(suite.models) == [m.name for m in suite.models.values()]


def test_pythia_suite_matches_the_paper():
    s = load_suite("pythia")
    assert list(s.models) == [
        "14M",
        "31M",
        "70M",
        "160M",
        "410M",
        "1B",
        "1.4B",
        "2.8B",
        "6.9B",
        "12B",
    ]
    t = s.training
    assert (t.seq_len, t.global_batch, t.train_iters) == (2048, 1024, 143000)
    assert t.tokens_per_step * t.train_iters == 299_892_736_000
    assert t.warmup_iters == 1430
    assert (t.adam_beta1, t.adam_beta2, t.adam_eps, t.weight_decay, t.grad_clip) == (
        0.9,
        0.95,
        1e-8,
        0.1,
        1.0,
    )
    assert (
        s.models["6.9B"].init.value == "neox_default"
        and s.models["12B"].init.value == "neox_default"
    )
    assert s.models["2.8B"].init.value == "small_init"
    assert (s.models["6.9B"].tensor_parallel, s.models["12B"].tensor_parallel) == (2, 4)
    assert s.tokenizer.padded_vocab_size == 50304
    assert (s.vocab_rows(s.models["6.9B"]), s.vocab_rows(s.models["12B"])) == (50432, 50688)
    for m in s.models.values():
        assert m.min_lr == pytest.approx(0.1 * m.peak_lr)


# Pythia's configs (EleutherAI/pythia models/*/pythia-*.yml, all with an "fp16" block) and README:
# every model trained in fp16 except the standard 1B, which trained in bf16; 1B deduplicated was
# fp16 (pythia issue #171).
PYTHIA_BF16 = {("1B", "standard")}


@pytest.mark.parametrize("dataset", ["standard", "deduped"])
@pytest.mark.parametrize(
    "model", ["14M", "31M", "70M", "160M", "410M", "1B", "1.4B", "2.8B", "6.9B", "12B"]
)
def test_precision_of_all_twenty_pythia_models(model, dataset):
    from pythia.train.deepspeed_config import deepspeed_config
    from pythia.train.precision import training_precision

    spec = load_suite("pythia").model(model)
    want = "bf16" if (model, dataset) in PYTHIA_BF16 else "fp16"
    assert spec.precision_for(dataset).value == want
    assert training_precision(spec, dataset, "cuda").value == want
    assert training_precision(spec, dataset, "cpu").value == "fp32"  # CPU training is always fp32
    cfg = deepspeed_config(load_suite("pythia"), model, world_size=64, dataset=dataset)
    assert (cfg["bf16"]["enabled"], cfg["fp16"]["enabled"]) == (want == "bf16", want == "fp16")


def test_precision_by_dataset_is_validated(tmp_path):
    path = _write(
        tmp_path, lambda r: r["models"]["s1"].update(precision_by_dataset={"dedupd": "bf16"})
    )
    with pytest.raises(
        ConfigError,
        match=r"models\.s1.*precision_by_dataset names unknown datasets: dedupd; datasets: standard, deduped",
    ):
        load_suite(path)
    path = _write(
        tmp_path, lambda r: r["models"]["s1"].update(precision_by_dataset={"deduped": "fp8"})
    )
    with pytest.raises(
        ConfigError, match=r"models\.s1\.precision_by_dataset\.deduped.*fp32.*fp16.*bf16"
    ):
        load_suite(path)
    with pytest.raises(ConfigError, match="unknown dataset 'pile'"):
        load_suite("pythia").model("1B").precision_for("pile")


def test_warmup_is_kept_fractional_as_gpt_neox_does():
    # GPT-NeoX v1.0: warmup_iter = neox_args.warmup * num_iters, a float
    assert load_suite("pythia").training.warmup_iters == 0.01 * 143000 == 1430.0
    assert load_suite("micro").training.warmup_iters == 0.01 * 640 == pytest.approx(6.4, abs=0)
    assert load_suite("smoke").training.warmup_iters == 0.1 * 24


def test_pythia_checkpoint_schedule_has_154_steps():
    steps = load_suite("pythia").checkpoint_steps()
    assert len(steps) == 154
    assert steps[:11] == [0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512]
    assert steps[11:] == list(range(1000, 143001, 1000))
    assert load_suite("pythia").state_steps() == [113000, 133000, 143000]


def test_micro_suite_shape():
    s = load_suite("micro")
    non_emb = [m.non_embedding_params() for m in s.models.values()]
    assert len(non_emb) >= 5 and non_emb == sorted(non_emb)
    assert non_emb[-1] / non_emb[0] >= 100
    steps = s.checkpoint_steps()
    assert steps[0] == 0 and steps[-1] == s.training.train_iters
    # 16-shot arithmetic prompts (~12 tokens a shot) fit in a sequence
    assert s.training.seq_len >= 17 * 12


def test_checkpoint_steps_small():
    assert checkpoint_steps(24, 4, 8) == [0, 1, 2, 4, 8, 16, 24]
    assert checkpoint_steps(3, 512, 1000) == [0, 1, 2, 3]


def test_misspelled_key_is_named(tmp_path):
    path = _write(tmp_path, lambda r: r["training"].update(trian_iters=5))
    with pytest.raises(ConfigError, match=r"training\.trian_iters: unknown key"):
        load_suite(path)


def test_wrong_type_is_named(tmp_path):
    path = _write(tmp_path, lambda r: r["models"]["s1"].update(num_layers="two"))
    with pytest.raises(ConfigError, match=r"models\.s1\.num_layers"):
        load_suite(path)
    path = _write(tmp_path, lambda r: r["training"].update(seq_len="64"))  # no silent str -> int
    with pytest.raises(ConfigError, match=r"training\.seq_len"):
        load_suite(path)


def test_wrong_enum_lists_allowed_values(tmp_path):
    path = _write(tmp_path, lambda r: r["models"]["s1"].update(init="xavier"))
    with pytest.raises(ConfigError, match=r"models\.s1\.init.*small_init.*neox_default"):
        load_suite(path)


def test_unknown_suite_and_model():
    with pytest.raises(
        ConfigError, match=r"unknown suite 'nosuch'; suites: .*micro.*pythia.*smoke"
    ):
        load_suite("nosuch")
    with pytest.raises(
        ConfigError, match=r"unknown model '99B' in suite 'pythia'; models: 14M, 31M"
    ):
        load_suite("pythia").model("99B")


def test_heads_must_divide_hidden(tmp_path):
    path = _write(tmp_path, lambda r: r["models"]["s1"].update(num_heads=3))
    with pytest.raises(ConfigError, match="not divisible"):
        load_suite(path)


def test_cli_unknown_suite_exits_nonzero_and_lists_suites():
    out = subprocess.run(
        [sys.executable, "-m", "pythia.cli", "suite", "nosuch"], capture_output=True, text=True
    )
    assert out.returncode != 0
    assert (
        "unknown suite 'nosuch'" in out.stderr and "micro" in out.stderr and "pythia" in out.stderr
    )


def test_cli_suite_table(tmp_path):
    csv = tmp_path / "t.csv"
    out = subprocess.run(
        [sys.executable, "-m", "pythia.cli", "suite", "pythia", "--csv", str(csv)],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    assert "70,426,624" in out.stdout and "11,846,072,320" in out.stdout
    assert csv.exists() and (tmp_path / "t.csv.provenance.json").exists()


def test_reference_documents_every_field():
    page = reference_markdown()
    for key in ("train_iters", "log_spaced_until", "threshold", "peak_lr", "padded_vocab_size"):
        assert f"`{key}`" in page
    assert "| `train_iters` | int | required | Optimizer steps. |" in page


def test_digest_changes_with_config(tmp_path):
    a = load_suite("smoke")
    b = load_suite(_write(tmp_path, lambda r: r["training"].update(train_iters=25)))
    assert a.digest != b.digest and a.digest == load_suite("smoke").digest


def test_generated_reference_page_is_current():
    page = (Path(__file__).resolve().parents[1] / "docs" / "config-reference.md").read_text()
    assert page.strip() == reference_markdown().strip(), (
        "regenerate: pythia config-reference > docs/config-reference.md"
    )


def test_source_caps(tmp_path):
    micro = load_suite("micro")
    assert (
        micro.data.cap("shakespeare") > micro.data.cap("stdlib") == micro.data.max_bytes_per_source
    )
    path = _write(tmp_path, lambda r: r["data"].update(source_max_bytes={"shakespeer": 10}))
    with pytest.raises(ConfigError, match="shakespeer.*sources: arithmetic, stdlib"):
        load_suite(path)


def test_analysis_steps(tmp_path):
    micro = load_suite("micro")
    assert micro.analysis_steps() == micro.checkpoint_steps()  # micro analyses every checkpoint
    pythia = load_suite("pythia")
    steps = pythia.analysis_steps()
    assert 20 < len(steps) < 154 and set(steps) <= set(pythia.checkpoint_steps())
    assert {0, 512, 13000, 39000, 65000, 91000, 113000, 117000, 133000, 143000} <= set(steps)
    path = _write(tmp_path, lambda r: r.update(analysis={"steps": [0, 5]}))
    with pytest.raises(
        ConfigError,
        match=r"analysis.steps: 5 is not a checkpoint step of suite 'smoke' \(nearest: 2, 4;",
    ):
        load_suite(path)
    # which checkpoints are analysed never changes what is trained: same digest
    path = _write(tmp_path, lambda r: r.update(analysis={"steps": [0, 24]}))
    assert (
        load_suite(path).analysis_steps() == [0, 24]
        and load_suite(path).digest == load_suite("smoke").digest
    )


SEEDS = {"models": ["138K", "288K"], "seeds": [1, 2], "vary": ["both"]}


def test_seed_runs_are_named_and_seeded_like_polypythias():
    base = load_suite("micro", {"seeds": {}})  # micro without seed runs
    s = load_suite("micro", {"seeds": SEEDS})
    assert base.seed_runs() == [] and s.digest == base.digest  # the baselines do not change
    assert s.seed_runs(["standard"]) == [
        ("standard-seed1", "138K"),
        ("standard-seed1", "288K"),
        ("standard-seed2", "138K"),
        ("standard-seed2", "288K"),
    ]
    assert len(s.seed_runs()) == 8  # both datasets
    t, d = s.training.seed, s.data.seed
    assert (s.run_seeds("deduped").init_seed, s.run_seeds("deduped").data_seed) == (t, d)
    assert s.run_seeds("deduped").seed == 0
    both = s.run_seeds("standard-seed2")
    assert (both.seed, both.vary.value, both.init_seed, both.data_seed) == (2, "both", 2, 2)
    data = s.run_seeds("standard-data-seed3")
    assert (data.vary.value, data.init_seed, data.data_seed) == ("data", t, 3)
    weight = s.run_seeds("deduped-weight-seed1")
    assert (weight.vary.value, weight.init_seed, weight.data_seed) == ("weight", 1, d)
    with pytest.raises(ValueError, match="unknown run 'standard-seed0'"):
        s.run_seeds("standard-seed0")
    with pytest.raises(ConfigError, match="'standard-data-seed1234' would repeat the baseline"):
        s.run_seeds("standard-data-seed1234")
    mixed = load_suite("micro", {"seeds": {**SEEDS, "vary": ["data", "weight"]}})
    assert [r for r, m in mixed.seed_runs(["deduped"]) if m == "138K"] == [
        "deduped-data-seed1",
        "deduped-data-seed2",
        "deduped-weight-seed1",
        "deduped-weight-seed2",
    ]
    assert load_suite("smoke").seed_runs() == []  # no seeds key: no seed runs
    micro = load_suite("micro")  # the shipped micro: seeds 1, 2 of the two smallest sizes
    assert micro.seed_runs() == s.seed_runs() and micro.digest == base.digest


@pytest.mark.parametrize(
    "seeds, message",
    [
        ({"models": ["1K"], "seeds": [1]}, "seeds.models names unknown models: 1K; models: 138K"),
        (
            {"models": ["138K"], "seeds": [0]},
            "seeds.seeds.0: Input should be greater than or equal to 1",
        ),
        ({"models": ["138K"], "seeds": [1234]}, "seeds.seeds: 1234 is a baseline seed"),
        ({"models": ["138K"], "seeds": [1, 1]}, r"seeds.seeds lists a value twice: \[1, 1\]"),
        (
            {"models": ["138K"], "seeds": [1], "vary": ["bot"]},
            "seeds.vary.0: Input should be 'both', 'data' or 'weight'",
        ),
        ({"models": ["138K"], "seeds": []}, "seeds.models is set but seeds.seeds is empty"),
        ({"models": ["138K"], "seed": [1]}, "seeds.seed: unknown key"),
    ],
)
def test_bad_seeds_key_is_one_clear_line(seeds, message):
    with pytest.raises(ConfigError) as err:
        load_suite("micro", {"seeds": seeds})
    lines = str(err.value).splitlines()
    assert len(lines) == 2 and lines[0].startswith("invalid suite configuration")
    assert re.search(message, lines[1]), lines[1]
