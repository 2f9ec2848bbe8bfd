"""The classifier that labels generated digits: at least 99.0% on the real MNIST test split."""

import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow


def test_classifier_reaches_99_percent_on_the_real_test_split():
    # Trains (about 2-3 minutes on 2 cores) unless a cached copy exists; either way the accuracy
    # printed is measured now on the 10,000 real test digits.
    done = subprocess.run(
        [sys.executable, "-m", "trainables.mnist_classifier"], capture_output=True, text=True, timeout=1200, check=True
    )
    last = done.stdout.strip().splitlines()[-1]
    assert last.startswith("test_accuracy=")
    assert float(last.split("=")[1]) >= 0.990
