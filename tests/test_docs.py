"""The README documents every environment variable the package reads, and the layout it describes."""

import re
from pathlib import Path

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
            if "<" in ref or "NN_" in ref or "memorization" in ref:
                continue  # patterns and the guide's example section
            assert (ROOT / ref).exists(), f"{doc} names {ref}, which does not exist"
