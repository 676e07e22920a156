"""Defaults of the constraint stage: prediction, ``xtalagent finetune`` and its classifiers.

Kept apart from the modules that use them (and free of torch) so the CLI can show them as option
defaults without loading a model. The voters' *weights* are not here: they belong to a model
folder (:mod:`xtalagent.finetune.voters`).
"""

from __future__ import annotations

from dataclasses import dataclass

from xtalagent.errors import InputError

#: The stages ``xtalagent finetune`` can train, one LoRA adapter each.
STAGES: tuple[str, ...] = ("sg", "wyckoff")


@dataclass(frozen=True)
class ConstraintSettings:
    """How ``constraints predict`` / ``eval`` decode a request."""

    #: Candidates returned per request (space group + Wyckoff sites).
    top_k: int = 5
    #: 0: beam search (deterministic); above 0: sampling at this temperature.
    temperature: float = 0.0
    #: Random seed of the sampling.
    seed: int = 0


@dataclass(frozen=True)
class ClassifierSettings:
    """How ``xtalagent finetune`` trains the composition and ratio classifiers.

    Dropout 0.5 over 40 epochs was tried (one network alone it reads about 1 point higher on half A
    of MP val for ratio and elements requests,
    bench/experiments/2026-12-constraint-voters/bench_classifier_recipe.py). As an ensemble
    beside the language model and the prior it led by under a point on half A and tied on half B
    (formula 68.1 % both, ratio 52.9 against 53.4 %, elements 33.8 against 34.0 %;
    constraints_prior_clfw3_*.json), so the shipped classifier keeps 0.2 over 20.
    """

    #: Networks per ensemble.
    members: int = 3
    #: Training epochs per network.
    epochs: int = 20
    #: Width of the two hidden layers.
    hidden: int = 512
    #: Dropout, in [0, 1).
    dropout: float = 0.2
    #: The ratio classifier's vocabulary: reduced ratios seen at least this often in training.
    ratio_min_count: int = 2


@dataclass(frozen=True)
class FinetuneSettings:
    """Every option of ``xtalagent finetune`` (the CLI builds one from its options).

    The defaults train the compact embedded model on CPU; the shipped one used 6 epochs at 7e-4
    and 4 variants per record for its ``sg`` adapter (finetune/checkpoints/default/README.md).
    Invalid values raise :class:`InputError` when the settings are made.
    """

    #: Local path or hub id of a causal LM; None: pretrain the compact base first.
    base_model: str | None = None
    #: Adapters to train (a subset of :data:`STAGES`).
    stages: tuple[str, ...] = STAGES
    #: Epochs per adapter.
    epochs: float = 3.0
    #: Epochs of base pretraining (compact base only).
    base_epochs: float = 4.0
    learning_rate: float = 2e-3
    batch_size: int = 32
    #: LoRA rank (alpha is twice the rank).
    lora_r: int = 16
    #: Torch threads; None: torch's default.
    threads: int | None = None
    #: Train on the first N training crystals only.
    limit: int | None = None
    #: Size of the compact base LM: heads are 64 wide, as vLLM's CPU attention needs; the MLP is 3x
    #: the hidden size.
    base_hidden: int = 128
    base_layers: int = 4
    #: Training prompts per crystal: the full-formula prompt plus N-1 random (pattern, property) draws.
    variants_per_record: int = 2
    #: Epochs and dropout of the composition and ratio classifiers (:class:`ClassifierSettings`).
    classifier_epochs: int = ClassifierSettings.epochs
    classifier_dropout: float = ClassifierSettings.dropout

    def __post_init__(self) -> None:
        unknown = set(self.stages) - set(STAGES)
        if unknown:
            raise InputError(f"unknown stage(s): {', '.join(sorted(unknown))} (expected {', '.join(STAGES)})")
        if self.variants_per_record < 1:
            raise InputError(f"variants per record must be at least 1 (got {self.variants_per_record})")
        if self.classifier_epochs < 1:
            raise InputError(f"classifier epochs must be at least 1 (got {self.classifier_epochs})")
        if not 0.0 <= self.classifier_dropout < 1.0:
            raise InputError(f"classifier dropout must be in [0, 1) (got {self.classifier_dropout})")
