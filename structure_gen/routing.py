"""Route each constraint to the shipped diffusion model that knows it.

The general MP model is weak where a specialist is strong: on Perov-5 test constraints it matched
60 % against the Perov-5 model's 100 %. A user asking for a perovskite should not have to know to
pass ``--checkpoint perov_5.pt``, so the default sampler sends a constraint to a specialist when the
constraint lies inside the specialist's *training domain*, and to the general model otherwise.

The domain is data, not code: ``<checkpoint>.domain.json`` beside a specialist's weights lists the
cell sizes, elements and site patterns (space group + Wyckoff labels per element, elements
anonymised) of the crystals it was trained on, built by :func:`build_domain` from its training
rows. A constraint is inside when its size, every element and its site pattern were all seen. The
file also says which property targets the specialist may be conditioned on: Perov-5's
``heat_ref`` and GLLB-SC gaps are not the Materials Project's formation energy and PBE band gap,
so a routed constraint loses its targets rather than feeding the specialist numbers in the wrong
units.

Rebuild the Perov-5 domain (seconds)::

    python -m xtalagent.structure_gen.routing datasets/perov_5_val.parquet \\
        structure_gen/checkpoints/perov_5.pt --conditioning none
"""

from __future__ import annotations

import argparse
import json
import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from xtalagent.records import SymmetryConstraint

if TYPE_CHECKING:
    from xtalagent.structure_gen.samplers import DiffusionSampler

logger = logging.getLogger(__name__)

#: File name suffix of a specialist's domain, beside its checkpoint (``perov_5.pt`` -> ``perov_5.domain.json``).
DOMAIN_SUFFIX: str = ".domain.json"
#: Property targets a constraint may carry (``SymmetryConstraint`` fields).
TARGETS: tuple[str, ...] = ("band_gap", "formation_energy")

SitePattern = tuple[int, tuple[tuple[str, ...], ...]]


def labels_by_element(sites: Iterable[tuple[str, str]]) -> dict[str, tuple[str, ...]]:
    """Each element's Wyckoff labels, sorted, from (element, label) pairs."""
    by_element: dict[str, list[str]] = {}
    for element, label in sites:
        by_element.setdefault(element, []).append(label)
    return {element: tuple(sorted(labels)) for element, labels in by_element.items()}


def pattern_of_sites(spacegroup: int, sites: Iterable[tuple[str, str]]) -> SitePattern:
    """(space group, sorted Wyckoff labels of each element, sorted) from (element, label) pairs."""
    return spacegroup, tuple(sorted(labels_by_element(sites).values()))


def site_pattern(constraint: SymmetryConstraint) -> SitePattern:
    """(space group, sorted Wyckoff labels of each element, sorted): the arrangement without the
    chemistry, so CaTiO3 and SrTiO3 in the same cubic cell share one pattern."""
    return pattern_of_sites(constraint.spacegroup, ((s.element, s.wyckoff) for s in constraint.sites))


def domain_path(checkpoint: str | Path) -> Path:
    path = Path(checkpoint)
    return path.with_name(path.stem + DOMAIN_SUFFIX)


@dataclass(frozen=True)
class ModelDomain:
    """What a specialist checkpoint was trained on, and whether a constraint falls inside it."""

    checkpoint: Path
    natoms: frozenset[int]
    elements: frozenset[str]
    patterns: frozenset[SitePattern]
    conditioning: tuple[str, ...]

    def contains(self, constraint: SymmetryConstraint) -> bool:
        return (
            sum(constraint.counts.values()) in self.natoms
            and set(constraint.counts) <= self.elements
            and site_pattern(constraint) in self.patterns
        )

    def adapt(self, constraint: SymmetryConstraint) -> SymmetryConstraint:
        """The constraint without the property targets this model cannot read."""
        dropped = {name: None for name in TARGETS if name not in self.conditioning}
        return constraint.model_copy(update=dropped) if dropped else constraint

    @classmethod
    def load(cls, path: str | Path) -> ModelDomain:
        path = Path(path)
        data = json.loads(path.read_text())
        return cls(
            checkpoint=path.with_name(data["checkpoint"]),
            natoms=frozenset(data["natoms"]),
            elements=frozenset(data["elements"]),
            patterns=frozenset(
                (p["spacegroup"], tuple(tuple(labels) for labels in p["sites"])) for p in data["patterns"]
            ),
            conditioning=tuple(data["conditioning"]),
        )


def build_domain(
    records: Iterable,
    checkpoint: str | Path,
    *,
    conditioning: tuple[str, ...],
    source: str,
) -> dict:
    """The domain JSON of ``checkpoint`` from the records it was trained on (counts kept, so a
    reader sees how often each pattern was seen)."""
    records = list(records)
    patterns = Counter(site_pattern(r.constraint()) for r in records)
    unknown = set(conditioning) - set(TARGETS)
    if unknown:
        raise ValueError(f"unknown conditioning target(s) {sorted(unknown)}; choose from {TARGETS}")
    return {
        "checkpoint": Path(checkpoint).name,
        "source": source,
        "n_crystals": len(records),
        "natoms": sorted({r.natoms for r in records}),
        "elements": sorted({el for r in records for el in r.elements}),
        "conditioning": list(conditioning),
        "patterns": [
            {"spacegroup": group, "sites": [list(labels) for labels in sites], "count": count}
            for (group, sites), count in patterns.most_common()
        ],
    }


def domain_json(domain: dict) -> str:
    """The domain as JSON with one key, and one site pattern, per line (readable in a diff)."""
    lines = [f"  {json.dumps(key)}: {json.dumps(value)}" for key, value in domain.items() if key != "patterns"]
    patterns = ",\n".join(f"    {json.dumps(p)}" for p in domain["patterns"])
    return "{\n" + ",\n".join(lines) + ',\n  "patterns": [\n' + patterns + "\n  ]\n}\n"


def shipped_domains(checkpoint_dir: Path | None = None) -> list[ModelDomain]:
    """Every specialist in the checkpoint folder that ships its domain and its weights (sorted by name)."""
    from xtalagent.structure_gen.samplers import CHECKPOINT_DIR

    folder = checkpoint_dir or CHECKPOINT_DIR
    domains = [ModelDomain.load(p) for p in sorted(folder.glob("*" + DOMAIN_SUFFIX))]
    return [d for d in domains if d.checkpoint.exists()]


class RoutedDiffusionSampler:
    """Diffusion with a model per constraint: the first specialist whose domain holds the
    constraint, else the general model. Models load on first use, so a run that needs no
    specialist never reads one."""

    name = "diffusion"

    def __init__(self, general: Path, domains: list[ModelDomain], **options: Any) -> None:
        self.general = Path(general)
        self.domains = domains
        self.options = options
        self._samplers: dict[Path, DiffusionSampler] = {}

    def route(self, constraint: SymmetryConstraint) -> ModelDomain | None:
        """The specialist domain holding ``constraint``, or None for the general model."""
        return next((d for d in self.domains if d.contains(constraint)), None)

    def checkpoint_for(self, constraint: SymmetryConstraint) -> Path:
        domain = self.route(constraint)
        return domain.checkpoint if domain else self.general

    def _sampler(self, checkpoint: Path) -> DiffusionSampler:
        from xtalagent.structure_gen.samplers import DiffusionSampler

        if checkpoint not in self._samplers:
            self._samplers[checkpoint] = DiffusionSampler(checkpoint=checkpoint, **self.options)
        return self._samplers[checkpoint]

    def propose(self, constraints: list[SymmetryConstraint]) -> list:
        groups: dict[Path, list[int]] = {}
        adapted = list(constraints)
        for i, constraint in enumerate(constraints):
            domain = self.route(constraint)
            if domain is not None:
                adapted[i] = domain.adapt(constraint)
            groups.setdefault(domain.checkpoint if domain else self.general, []).append(i)
        out: list = [None] * len(constraints)
        for checkpoint, idx in groups.items():
            logger.info("%d constraint(s) to %s", len(idx), checkpoint.name)
            proposals = self._sampler(checkpoint).propose([adapted[i] for i in idx])
            for i, structure in zip(idx, proposals):
                out[i] = structure
        return out


def shipped_router(**options: Any) -> RoutedDiffusionSampler | None:
    """The router over the shipped checkpoints, or None when there is nothing to route (no
    general model, or no specialist with a domain file): the caller then uses one checkpoint."""
    from xtalagent.structure_gen.samplers import default_checkpoint

    general = default_checkpoint()
    domains = [d for d in shipped_domains() if d.checkpoint != general]
    if not general.exists() or not domains:
        return None
    return RoutedDiffusionSampler(general, domains, **options)


def main(argv: list[str] | None = None) -> None:
    """Write ``<checkpoint>.domain.json`` from the dataset the checkpoint was trained on."""
    from xtalagent.structure_gen.settings import DiffusionTrainConfig
    from xtalagent.structure_gen.train import load_examples

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", type=Path, help="the Parquet the checkpoint was trained on")
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--train-split", default=None, help="the training split (default: every row)")
    parser.add_argument(
        "--conditioning",
        default="none",
        help="comma-separated targets the model may read (band_gap,formation_energy) or 'none'",
    )
    args = parser.parse_args(argv)
    conditioning = () if args.conditioning == "none" else tuple(args.conditioning.split(","))
    # the training rows exactly as the trainer chose them (its id-hashed held-out share removed)
    cfg = DiffusionTrainConfig(data=str(args.dataset), train_split=args.train_split)
    _, _, train_records = load_examples(cfg)
    source = (
        f"{args.dataset}"
        + (f" split {args.train_split}" if args.train_split else "")
        + (f", minus the trainer's {cfg.val_fraction:.0%} id-hashed validation share")
    )
    domain = build_domain(train_records, args.checkpoint, conditioning=conditioning, source=source)
    out = domain_path(args.checkpoint)
    out.write_text(domain_json(domain))
    print(f"{out}: {domain['n_crystals']} crystals, {len(domain['patterns'])} site patterns")


if __name__ == "__main__":
    main()
