"""A short random-mutation run of every fuzz harness (``tests/fuzz/``) on each ``make test``:
seeds mutated by flips, insertions, deletions, truncations and splices of values that broke
readers before (null, NaN, huge numbers, wrong types, bytes that are not UTF-8). Every input must
end in success or the project's own error. The long, coverage-guided runs use atheris
(``python -m tests.fuzz.run_atheris NAME``)."""

import random
from pathlib import Path

import pytest

from tests.fuzz.harnesses import HARNESSES, run_one

TOKENS = [b"null", b"NaN", b"-Infinity", b"1e999", b"9" * 5000, b"-1", b"0", b"[]", b"{}",
          b'"x"', b"true", b"\xff\xfe", b"\x00", b"~nosuchuser/x", b"2024-02-30", b"[[[[[[",
          b"{a: [1, 2", b"!!python/object:os.system", b"&a [*a, *a]", b": :", b"'", b"\n  - "]
RUNS = 300


def mutate(data: bytes, rng: random.Random) -> bytes:
    data = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(5)
        at = rng.randrange(len(data) + 1)
        if op == 0 and data:  # flip a byte
            data[min(at, len(data) - 1)] ^= 1 << rng.randrange(8)
        elif op == 1:  # splice in a token
            data[at:at] = rng.choice(TOKENS)
        elif op == 2:  # replace a span with a token
            data[at:at + rng.randrange(1, 12)] = rng.choice(TOKENS)
        elif op == 3:  # delete a span
            del data[at:at + rng.randrange(1, 32)]
        else:  # truncate
            del data[at:]
    return bytes(data)


@pytest.mark.parametrize("name", sorted(HARNESSES))
def test_random_mutations_end_in_success_or_our_own_error(name, tmp_path):
    seeds = HARNESSES[name][0]()
    rng = random.Random(f"motivnet-{name}")
    for seed in seeds:  # the seeds themselves are read without complaint, or with our error
        run_one(name, seed, tmp_path)
    for i in range(RUNS):
        data = mutate(rng.choice(seeds), rng)
        try:
            run_one(name, data, tmp_path)
        except Exception as exc:  # noqa: BLE001 (any other exception is the finding)
            pytest.fail(f"{name} input {i} ({data[:200]!r}...) raised "
                        f"{type(exc).__name__}: {exc}")


def test_the_mutation_run_would_catch_a_traceback(tmp_path):
    """A reader that raises something else than our error is reported, not passed."""
    from tests.fuzz import harnesses

    def broken(data, folder):
        int(data)  # ValueError on most inputs

    harnesses.HARNESSES["broken"] = (lambda: [b"1"], broken)
    try:
        with pytest.raises(ValueError):
            run_one("broken", b"x", tmp_path)
    finally:
        del harnesses.HARNESSES["broken"]


REGRESSIONS = sorted((Path(__file__).parent / "fuzz" / "regressions").iterdir())


@pytest.mark.parametrize("found", REGRESSIONS, ids=[p.name for p in REGRESSIONS])
def test_inputs_atheris_found_stay_fixed(found, tmp_path):
    """Each input a coverage-guided run once turned into a traceback (its harness is the file
    name's first word) now ends in success or our own error."""
    run_one(found.name.split("-")[0], found.read_bytes(), tmp_path)
