"""How strongly the voters beside the language model speak: settings that belong to one model folder.

Stage 1 of the constraint predictor adds to each space group's language-model log-probability the
votes of the neighbour prior (:mod:`~xtalagent.finetune.neighbour_prior`), the composition
classifier (:mod:`~xtalagent.finetune.group_classifier`) and, for elements-only requests, the ratio
classifier (:mod:`~xtalagent.finetune.ratio_classifier`); stage 2 adds the prior's ``sites`` part.
How much each voter counts was tuned against one particular language model and one particular set
of known crystals, so these weights travel with the model folder they were tuned for
(``voters.json``, as a checkpoint carries its hyperparameters), never through global settings: a
user's own fine-tuned model does not inherit the shipped model's tuning.

* The shipped model's file (``finetune/checkpoints/default/voters.json``) holds the weights chosen
  on half A of MP ``val`` and reported on half B (the figures and commands are in that folder's
  README.md).
* A folder without the file gets :meth:`VoterWeights.neutral`: nothing tuned, every voter speaks as
  loudly as the language model. ``xtalagent finetune`` writes those neutral weights into the folder
  it trains, so the folder states what it runs with and can be re-tuned in place.
"""

from __future__ import annotations

import logging
from dataclasses import fields
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from xtalagent.errors import InputError, validation_message
from xtalagent.finetune.neighbour_prior import SILENT, PriorPart, PriorSettings
from xtalagent.io import write_text_atomic

logger = logging.getLogger(__name__)

#: The voter weights of a model folder, beside its adapters.
VOTERS_FILE = "voters.json"

PatternName = Literal["formula", "composition", "elements"]
PartName = Literal["elements", "prototype", "sites", "ratios"]


class VoterWeights(BaseModel):
    """The voters' weights for one model folder, per request pattern (see the module docstring).

    ``prior``: the neighbour prior's parts per pattern (a missing part is silent); ``classifier``:
    the composition classifier's ``weight`` in ``weight * log p(group)`` per pattern (missing: 0);
    the ratio vote of elements-only requests: the classifier's ``ratio_pool`` likeliest ratios are
    re-weighed by the prior's ``ratios`` part, the first ``ratio_candidates`` are each ranked as a
    ratio request, and their averaged shares vote ``ratio_weight * log(share + ratio_floor)``.
    ``source`` says where the numbers were measured.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    prior: dict[PatternName, dict[PartName, PriorPart]]
    classifier: dict[PatternName, float]
    ratio_weight: float = Field(ge=0)
    ratio_candidates: int = Field(ge=1)
    ratio_pool: int = Field(ge=1)
    ratio_floor: float = Field(gt=0)
    source: str = ""

    @classmethod
    def neutral(cls) -> VoterWeights:
        """Untuned weights for a model folder that has no ``voters.json``.

        Every voter counts as much as the language model (weight 1: a plain product of the voters'
        probabilities). Each prior part hears its 10 nearest known crystals with a floor of 0.05
        on the shares; distances are in each part's own units, so the scales are typical sizes of
        those units rather than tuned values: 1 for the L1 distance of element fractions (at most 2),
        5 for Pettifor-number distances, 2 for the ratio part's Pettifor distances over crystals
        with as many elements, 20 neighbours there. The target properties do not move neighbours
        (their weights are 0) and the substitution distance is off: both need tuning against a
        model's own validation crystals
        (``bench/experiments/2026-12-constraint-voters/bench_constraint_prior.py`` does it). The ratio
        vote ranks the 3 likeliest of the classifier's 60 ratios, as the shipped model does.
        """
        elements = PriorPart(weight=1.0, k=10, scale=1.0, floor=0.05)
        prototype = PriorPart(weight=1.0, k=10, scale=5.0, floor=0.05)
        sites = PriorPart(weight=1.0, k=10, scale=5.0, floor=0.05)
        ratios = PriorPart(weight=1.0, k=20, scale=2.0, floor=0.05)
        parts = {"elements": elements, "prototype": prototype, "sites": sites}
        return cls(
            prior={"formula": parts, "composition": parts, "elements": parts | {"ratios": ratios}},
            classifier={"formula": 1.0, "composition": 1.0, "elements": 1.0},
            ratio_weight=1.0,
            ratio_candidates=3,
            ratio_pool=60,
            ratio_floor=1e-6,
            source="neutral defaults (xtalagent.finetune.voters.VoterWeights.neutral), not tuned for this model",
        )

    @classmethod
    def load(cls, model_dir: str | Path | None) -> VoterWeights:
        """The weights stored in ``model_dir/voters.json``, else :meth:`neutral` (also for no folder).

        A file that is not valid is one :class:`InputError` line, never a silent fallback.
        """
        path = Path(model_dir) / VOTERS_FILE if model_dir is not None else None
        if path is None or not path.is_file():
            logger.info("no %s in %s: neutral voter weights", VOTERS_FILE, model_dir)
            return cls.neutral()
        try:
            return cls.model_validate_json(path.read_text(encoding="utf-8"))
        except ValidationError as exc:
            raise InputError(f"{path}: {validation_message(exc)}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"{path}: cannot read ({exc})") from None

    def save(self, model_dir: str | Path) -> Path:
        """Write ``model_dir/voters.json`` (atomically) and return its path."""
        path = Path(model_dir) / VOTERS_FILE
        write_text_atomic(path, self.model_dump_json(indent=2) + "\n")
        return path

    def prior_settings(self) -> dict[str, PriorSettings]:
        """The prior's parts per pattern, as :class:`~xtalagent.finetune.neighbour_prior.NeighbourPrior` reads them."""
        return {
            pattern: PriorSettings(**{f.name: parts.get(f.name, SILENT) for f in fields(PriorSettings)})  # type: ignore[call-overload]
            for pattern, parts in self.prior.items()
        }

    def prior_speaks(self, pattern: str) -> bool:
        """Whether some part of the prior has a weight for ``pattern`` requests."""
        return any(part.weight for part in self.prior.get(pattern, {}).values())  # type: ignore[call-overload]

    def classifier_weight(self, pattern: str) -> float:
        """The composition classifier's weight for ``pattern`` requests (0: it does not vote)."""
        return self.classifier.get(pattern, 0.0)  # type: ignore[call-overload]  # any str; unknown: 0
