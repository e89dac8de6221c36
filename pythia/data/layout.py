"""Where a suite's data products live, and reading the document lists.

Shared by the build stages (:mod:`pythia.data.build`) and the data card
(:mod:`pythia.data.card`), which reads what the stages wrote; neither imports the other's
internals through this module. The layout is described in ``docs/design.md``.
"""

from __future__ import annotations

import json
from pathlib import Path

from pythia import paths


class Layout:
    """Where a suite's data products live (see docs/design.md)."""

    def __init__(self, suite: str) -> None:
        self.suite = suite
        self.root = paths.data_dir(suite)
        self.documents = self.root / "documents"
        self.tokenizer = self.root / "tokenizer"
        self.stamps = self.root / ".stamps"

    def split_file(self, split: str) -> Path:
        return self.documents / f"{split}.jsonl"

    def text_prefix(self, split: str, dataset: str = "standard") -> Path:
        if split == "train":
            return paths.dataset_dir(self.suite, dataset) / "train_text_document"
        return self.root / f"{split}_text_document"

    def dataset(self, dataset: str) -> Path:
        return self.root / paths.check_dataset(dataset)


def read_jsonl(path: Path) -> list[dict]:
    """The records of a document list (``documents/<split>.jsonl``)."""
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist; run the `documents` stage first")
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
