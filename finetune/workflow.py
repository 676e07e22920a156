"""``xtalagent finetune``: from a dataset to a ready constraint model folder.

The folder holds ``base/`` (or ``base.json`` naming a hub model), ``sg/`` and ``wyckoff/``, and
the stage-1 voters beside the language model: the neighbour prior (``neighbours.json.gz``), the
composition classifier (``group_classifier.pt``) and the ratio classifier of elements-only requests
(``ratio_classifier.pt``), with the weights they vote with (``voters.json``: neutral ones, written
once; tune them for the new model and edit the file).
Every step is skipped when its output exists and resumes from its last checkpoint otherwise, so
an interrupted run continues where it stopped. Only the ``train`` split is trained on; ``val``
gives the per-epoch metric; ``test`` is never read.
"""

from __future__ import annotations

import json
from pathlib import Path

from xtalagent.errors import InputError
from xtalagent.finetune.group_classifier import CLASSIFIER_FILE, GroupClassifier, train_group_classifier
from xtalagent.finetune.neighbour_prior import PRIOR_FILE, NeighbourPrior
from xtalagent.finetune.ratio_classifier import (
    RATIO_FILE,
    RatioClassifier,
    has_repeated_ratio,
    train_ratio_classifier,
)
from xtalagent.finetune.settings import FinetuneSettings
from xtalagent.finetune.train import BaseModelConfig, ConstraintTrainConfig, pretrain_base, set_threads, train_adapter
from xtalagent.finetune.voters import VOTERS_FILE, VoterWeights
from xtalagent.optional import require
from xtalagent.records import CrystalRecord


def load_training_records(dataset: Path, work_dir: Path) -> tuple[list[CrystalRecord], list[CrystalRecord]]:
    """(train, val) records of a labelled Parquet dataset, or of a CSV of CIFs labelled first."""
    from xtalagent.data import build_dataset, load_records

    dataset = Path(dataset)
    if not dataset.exists():
        raise InputError(f"{dataset}: no such file")
    if dataset.suffix != ".parquet":
        labelled = work_dir / "dataset.parquet"
        build_dataset([dataset], labelled)
        dataset = labelled
    train, val = load_records(dataset, "train"), load_records(dataset, "val")
    if not train:
        raise InputError(f"{dataset}: no rows in split 'train'")
    return train, val


def resolve_base(model_dir: Path) -> str:
    """The base model of a model folder: ``base/`` or the hub id/path in ``base.json``."""
    if (model_dir / "base").is_dir():
        return str(model_dir / "base")
    if (model_dir / "base.json").exists():
        return json.loads((model_dir / "base.json").read_text())["base_model"]
    raise InputError(f"{model_dir}: no base model (base/ or base.json)")


def run_finetune(
    dataset: Path,
    output: Path,
    *,
    settings: FinetuneSettings | None = None,
    base_config: BaseModelConfig | None = None,
) -> Path:
    """Train (or finish) the model folder ``output`` from ``dataset``; returns the folder.

    ``base_config`` overrides the compact base's shape (default: ``settings.base_hidden`` wide,
    ``settings.base_layers`` deep, 64-wide heads).
    """
    s = settings or FinetuneSettings()
    for module in ("trl", "accelerate", "datasets"):  # before any data is read
        require(module, extra="finetune", purpose="fine-tuning")
    if base_config is None:
        base_config = BaseModelConfig.sized(s.base_hidden, s.base_layers)
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    train, val = load_training_records(dataset, output)
    if s.limit:
        train = train[: s.limit]
    cfg = ConstraintTrainConfig(
        epochs=s.epochs,
        learning_rate=s.learning_rate,
        batch_size=s.batch_size,
        lora_r=s.lora_r,
        lora_alpha=2 * s.lora_r,
        threads=s.threads,
        variants_per_record=s.variants_per_record,
    )
    base_model = s.base_model
    if base_model is None:
        if not (output / "base").exists():
            base_cfg = ConstraintTrainConfig(
                epochs=s.base_epochs, learning_rate=s.learning_rate, batch_size=s.batch_size, threads=s.threads
            )
            pretrain_base(train, output, model_cfg=base_config, cfg=base_cfg, val=val[:500])
        base = str(output / "base")
    else:
        if Path(base_model).exists():  # a local folder: stored absolute, so the model folder works from anywhere
            base_model = str(Path(base_model).resolve())
        (output / "base.json").write_text(json.dumps({"base_model": base_model}) + "\n")
        base = base_model
    trained = False
    for stage in s.stages:
        if not (output / stage).exists():
            train_adapter(stage, base, train, output, cfg=cfg, val=val)
            trained = True
    # the neighbour prior: the crystals the adapters were trained on. Written with new adapters, or
    # when missing or from before it stored properties; a finished folder keeps its own (a re-run
    # with --limit or another dataset must not swap it for crystals the adapters never saw).
    prior_file = output / PRIOR_FILE
    if trained or not prior_file.exists() or not NeighbourPrior.load(prior_file).has_properties:
        NeighbourPrior.from_records(train).save(prior_file)
    # the composition classifier, on the same crystals and with the same rule
    # (also rebuilt when made for another version's input features)
    classifier_file = output / CLASSIFIER_FILE
    if trained or not classifier_file.exists() or not GroupClassifier.is_current(classifier_file):
        set_threads(s.threads)
        train_group_classifier(train, val=val[:500], epochs=s.classifier_epochs, dropout=s.classifier_dropout).save(
            classifier_file
        )
    # the same rule again; a dataset where no ratio repeats has nothing to learn (the vote stays off)
    ratio_file = output / RATIO_FILE
    if (trained or not ratio_file.exists() or not RatioClassifier.is_current(ratio_file)) and has_repeated_ratio(train):
        set_threads(s.threads)
        train_ratio_classifier(train, val=val[:500], epochs=s.classifier_epochs, dropout=s.classifier_dropout).save(
            ratio_file
        )
    # the voters' weights: this folder's own, never another model's tuning. Written once (neutral);
    # a file already there (tuned for these adapters, or edited by the user) is kept.
    if not (output / VOTERS_FILE).exists():
        VoterWeights.neutral().save(output)
    return output
