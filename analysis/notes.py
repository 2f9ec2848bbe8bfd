"""Sentences every report that needs them shares: how steps are counted, and model deviations."""

from __future__ import annotations

import json

ITERATION_NOTE = (
    "Counting: one iteration (the `step` column) is one discriminator update followed by the generator's "
    "update(s) (`generator_steps`, default 1), i.e. two of the paper's steps, which its appendices count as "
    "'one step consists of either G or D updating'. The `paper` profiles' 25,000 iterations follow the authors' "
    "demo notebook, which updates D and G once each per iteration; the paper prints no iteration count of its own."
)


def classifier_note(metrics) -> str:
    """Which classifier labelled the sweep's samples: one, named by its hash, or a warning naming each."""
    hashes = {json.loads(a).get("classifier") for a in metrics.get("artifacts_json", ["{}"])}
    accuracy = metrics["classifier_accuracy"].dropna()
    accuracies = sorted({round(a, 4) for a in accuracy}) or ["unknown"]
    if len(hashes) == 1 and None not in hashes:
        return (
            f"One MNIST classifier labelled every sample of the sweep, on every node: the one the driver "
            f"published (sha256 {next(iter(hashes))[:12]}…), test accuracy {accuracies[0]}."
        )
    named = ", ".join(sorted(h[:12] if h else "not recorded" for h in hashes))
    return f"Classifier(s) used: {named}; test accuracies {', '.join(map(str, accuracies))}."


def batchnorm_note(config_json) -> str:
    """D's batch norm and the networks' initialisation, stated from the trials' own configs (`config_json`: the rows'
    column, or one config): one sentence when every trial shares them, one per setting when the sweep varies them."""
    if isinstance(config_json, dict):
        return _batchnorm_sentence(config_json)
    sentences = list(dict.fromkeys(_batchnorm_sentence(json.loads(text)) for text in config_json))
    if len(sentences) == 1:
        return sentences[0]
    return "This sweep varies the discriminator or the initialisation (see 'By setting'): " + " / ".join(
        sentence.removeprefix("Discriminator: ") for sentence in sentences
    )


def _batchnorm_sentence(config: dict) -> str:
    # Fields missing from configs written before they existed take the values of that time.
    init = config.get("weight_init", "pytorch")
    init_text = ("DCGAN's initialisation (weights N(0, 0.02), biases 0; Radford et al. 2015)" if init == "dcgan"
                 else "PyTorch's default initialisation")  # fmt: skip
    if not config.get("d_batchnorm", True):
        return (
            f"Discriminator: **no batch norm** (`d_batchnorm=false`), a deviation from the paper's Appendices C "
            f"and D; {init_text}."
        )
    if config.get("d_batchnorm_first", True):
        where = (
            "after every layer, its input layer included (PacGAN's re-implementation); with PyTorch's default "
            "initialisation this setting collapsed every Stacked MNIST seed tried here to one mode "
            "(docs/results.md, 'Batch norm in the discriminator')"
        )
    else:
        where = "after every layer but the input layer, as DCGAN (Radford et al. 2015) prescribes"
    return f"Discriminator: batch norm (the paper's Appendices C and D) {where}; {init_text}."
