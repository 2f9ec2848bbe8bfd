"""What labelling generated digits costs: the MNIST classifier as trained against its labelling copy.

    python -m bench.labelling [--digits 10000] [--repeats 5] [--variant full|quick] [--json]

Stacked MNIST counts modes by labelling every channel of its evaluation samples (25,600 x 3 digits in the
`paper` profile), which took more of a K = 0 trial's wall time than its training. This labels the real MNIST
test digits, on one torch thread (a trial's), with the classifier's own forward (batch norm from its running
statistics) and with ``trainables.mnist_classifier.predict``, which labels through ``labeller`` (batch norm
folded into the convolutions, channels-last), interleaved, and prints the median milliseconds per 1,000 digits
and whether the labels agree.
The classifier is the cached one (trained first, once, if the cache has none).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from bench.devices import describe
from trainables.data.mnist import load_mnist
from trainables.mnist_classifier import CLASSIFIERS, as_input, load_or_train, predict


def measure(digits: int, repeats: int, variant: str, batch: int = 2_000) -> list[dict]:
    torch.set_num_threads(1)
    model, _ = load_or_train(variant=variant)
    images = as_input(load_mnist(None).test_images[:digits])

    @torch.no_grad()
    def as_trained() -> torch.Tensor:
        return torch.cat([model.eval()(images[i : i + batch]).argmax(1) for i in range(0, len(images), batch)])

    # The labeller as a trial pays for it: through predict, its folded copy built at every call.
    paths = {"as trained": as_trained, "labeller": lambda: predict(model, images, batch)}

    def labels(name: str) -> torch.Tensor:
        return paths[name]()

    seconds = {name: [] for name in paths}
    reference = labels("as trained")  # and a warm-up
    same = {name: int((labels(name) == reference).sum()) for name in paths}
    for _ in range(repeats):
        for name in paths:
            start = time.perf_counter()
            labels(name)
            seconds[name].append(time.perf_counter() - start)
    base = statistics.median(seconds["as trained"])
    return [
        {
            "path": name,
            "ms_per_1000_digits": 1e3 * statistics.median(times) / (len(images) / 1e3),
            "speedup": base / statistics.median(times),
            "same_labels": same[name],
            "digits": len(images),
        }
        for name, times in seconds.items()
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.labelling", description=__doc__.split("\n\n")[0])
    parser.add_argument("--digits", type=int, default=10_000, help="test digits labelled per repeat (at most 10,000)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--variant", default="full", choices=sorted(CLASSIFIERS), help="which cached classifier")
    parser.add_argument("--json", action="store_true", help="one JSON document on stdout, nothing else")
    args = parser.parse_args(argv)
    if not 1 <= args.digits <= 10_000 or args.repeats < 1:
        parser.error("--digits must be 1 to 10,000 and --repeats at least 1")
    rows = measure(args.digits, args.repeats, args.variant)
    if args.json:
        print(json.dumps(rows))
        return 0
    print(f"labelling {rows[0]['digits']:,} MNIST test digits, one thread, {describe(torch.device('cpu'))}")
    print("| path | ms / 1,000 digits | speedup | same labels |")
    print("|---|---|---|---|")
    for row in rows:
        print(f"| {row['path']} | {row['ms_per_1000_digits']:.0f} | {row['speedup']:.2f}x | "
              f"{row['same_labels']:,} of {row['digits']:,} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
