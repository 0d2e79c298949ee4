"""The seed of the suite's fuzz and property tests: fixed, so a run is reproducible; `./dev fuzz` sets FUZZ_SEED=random."""

import os

from hypothesis import seed

SEED = os.environ.get("FUZZ_SEED", "20261129")
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "60"))


def seeded(test):
    """The suite's fixed seed, or none at all for a random campaign (Hypothesis then prints the seed of a failure)."""
    return test if SEED == "random" else seed(int(SEED))(test)
