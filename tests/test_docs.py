"""The README documents every environment variable the package reads and the layout it describes;
the guide to adding a section (docs/sections.md) names only rules, commands, options, functions
and outputs that exist."""

import argparse
import importlib
import re
from pathlib import Path

import pytest

from pythia import sections
from pythia.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
# os.environ.get("X"), os.environ["X"], os.environ.setdefault("X", ...), os.getenv("X"), and any
# "PYTHIA_*" literal (pythia.paths reads its roots through a helper taking the name)
READ = re.compile(
    r"""(?:environ(?:\.get|\.setdefault|\.pop)?\(|environ\[|getenv\()\s*["']([A-Z][A-Z0-9_]*)["']"""
)
OURS = re.compile(r"""["'](PYTHIA_[A-Z0-9_]+)["']""")


def _variables() -> set[str]:
    found = set()
    for path in (ROOT / "pythia").rglob("*.py"):
        text = path.read_text()
        found |= set(READ.findall(text)) | set(OURS.findall(text))
    return found


def test_every_environment_variable_is_documented():
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("## Environment variables") :]
    variables = _variables()
    assert {
        "PYTHIA_WORK",
        "PYTHIA_RESULTS",
        "PYTHIA_CACHE",
        "PYTHIA_PROJECT",
        "PYTHIA_SUITE_PATH",
    } <= variables
    missing = sorted(v for v in variables if f"`{v}`" not in table)
    assert not missing, f"document these in README.md, section 'Environment variables': {missing}"


def test_readme_and_guide_name_files_that_exist():
    for doc in ("README.md", "docs/sections.md"):
        text = (ROOT / doc).read_text()
        for ref in re.findall(
            r"`((?:pythia|rules|notebooks|config|docs|report)/[\w./-]+\.(?:py|smk|ipynb|yaml|md|rst))`",
            text,
        ):
            if "<" in ref or "NN_" in ref:
                continue  # patterns (`rules/<stem>.smk`, `notebooks/NN_<stem>.ipynb`)
            assert (ROOT / ref).exists(), f"{doc} names {ref}, which does not exist"


GUIDE = ROOT / "docs" / "sections.md"


def _guide_code() -> str:
    return "\n".join(re.findall(r"```python\n(.*?)```", GUIDE.read_text(), re.S))


def _rule_names() -> set[str]:
    return {
        m
        for f in (ROOT / "rules").glob("*.smk")
        for m in re.findall(r"^rule (\w+):", f.read_text(), re.M)
    }


def test_the_guide_names_real_rules():
    named = set(re.findall(r"^rule (\w+):", _guide_code(), re.M))
    named |= set(re.findall(r"rules\.(\w+)\.output", _guide_code()))
    assert {"memorization_scan", "memorization_notebook"} <= named  # the worked example
    assert not named - _rule_names(), (
        f"docs/sections.md names rules that do not exist: {named - _rule_names()}"
    )


def test_the_guide_names_real_rule_helpers():
    common = (ROOT / "rules" / "common.smk").read_text()
    defined = set(re.findall(r"^def (\w+)\(", common, re.M)) | set(
        re.findall(r"^([A-Z_]+) =", common, re.M)
    )
    used = set(re.findall(r"\b([a-z_]+)\(", _guide_code())) & {
        "checkpoint_inputs",
        "checkpoint_args",
        "job_digest",
        "section_outputs",
        "section_params",
        "section_log",
        "notebook",
        "register_targets",
    }
    assert len(used) == 8
    assert not used - defined, used - defined


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _command(words: list[str]) -> tuple[argparse.ArgumentParser, list[str]]:
    """The innermost parser of ``pythia <words...>`` and the words left after it."""
    parser: argparse.ArgumentParser = build_parser(words[0])
    while words and words[0] in _subparsers(parser):
        parser, words = _subparsers(parser)[words[0]], words[1:]
    return parser, words


def _invocations() -> list[str]:
    """``pythia ...`` command lines of the guide: in its code (a rule's shell string, joined
    across its lines) and in backticks in its text."""
    code = _guide_code()
    shell = [
        " ".join(re.findall(r'"([^"]*)"', block))
        for block in re.findall(r"shell:\n((?:\s+\".*\"\n)+)", code)
    ]
    text = re.findall(r"`(pythia [a-z][^`]*)`", GUIDE.read_text())
    return [c for c in shell + text if c.startswith("pythia ")]


def test_the_guide_names_real_commands_and_options():
    lines = _invocations()
    assert any(line.startswith("pythia memorization scan") for line in lines), lines
    for line in lines:
        words = line.split()[1:]
        parser, rest = _command(words)
        assert parser.prog != "pythia", f"docs/sections.md: unknown command in `{line}`"
        known = {o for a in parser._actions for o in a.option_strings}
        assert not _subparsers(parser), f"docs/sections.md: `{line}` stops before a subcommand"
        options = [w for w in rest if w.startswith("--")]
        unknown = [o for o in options if o not in known]
        assert not unknown, f"docs/sections.md: `{line}`: {parser.prog} has no {unknown}"


MODULE_ALIASES = {
    "memorization": "pythia.analysis.memorization",
    "mem": "pythia.analysis.memorization",
    "paths": "pythia.paths",
    "sections": "pythia.sections",
}


def test_the_guide_names_real_functions():
    text = GUIDE.read_text()
    named = set(re.findall(r"\b(memorization|mem|paths|sections)\.([a-z_]\w*)", text))
    assert ("memorization", "scan_digest") in named
    missing = [
        f"{alias}.{attr}"
        for alias, attr in sorted(named)
        if not hasattr(importlib.import_module(MODULE_ALIASES[alias]), attr)
        and attr not in ("smk", "ipynb", "py")  # file names: memorization.smk, paths.py
    ]
    assert not missing, f"docs/sections.md names what does not exist: {missing}"


@pytest.mark.parametrize("kind", ["figure", "table"])
def test_the_guide_saves_outputs_its_section_declares(kind):
    names = re.findall(rf'out\.{kind}\("(\w+)"', _guide_code())
    assert names
    declared = {o.name for o in getattr(sections.get("memorization"), f"{kind}s")}
    assert set(names) <= declared, set(names) - declared


def _readme_commands() -> list[str]:
    """``pythia ...`` command lines of the README's shell blocks (continuations joined, comments
    dropped)."""
    text = (ROOT / "README.md").read_text()
    lines = []
    for block in re.findall(r"```(?:bash|sh)\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #")[0].strip()
            line = re.sub(r"^(?:\S+=\S+ )*(?:\.venv/bin/)?", "", line)  # VAR=value, .venv/bin/
            if line.startswith("pythia "):
                lines.append(line)
    return lines


def test_the_readme_names_real_commands_and_options():
    lines = _readme_commands()
    assert len(lines) > 20 and any(line.startswith("pythia memorization scan") for line in lines)
    for line in lines:
        words = [w.strip("[]") for w in line.split()[1:]]
        parser, rest = _command(words)
        runs = not _subparsers(parser) or "func" in parser._defaults  # `pythia checkpoints` lists
        assert parser.prog != "pythia" and runs, f"README.md: `{line}`"
        if parser._defaults.get("passthrough"):
            continue  # `workflow run|check-cluster`: every option is Snakemake's
        known = {o for a in parser._actions for o in a.option_strings}
        unknown = [
            w.split("=")[0] for w in rest if w.startswith("--") and w.split("=")[0] not in known
        ]
        assert not unknown, f"README.md: `{line}`: {parser.prog} has no {unknown}"


def test_the_design_map_names_every_module():
    """docs/design.md's module map lists every module of the package (a new one must be added)."""
    design = (ROOT / "docs" / "design.md").read_text()
    missing = sorted(
        str(p.relative_to(ROOT))
        for p in (ROOT / "pythia").rglob("*.py")
        if p.name not in ("__init__.py", "__main__.py") and f"`{p.name}`" not in design
    )
    assert not missing, f"add these to docs/design.md's module map: {missing}"
