"""What the band-gap trainer writes beside the weights: the checkpoint READMEs, the release
model's borrowed figures, and the release sanity check (kept apart from the training code in
:mod:`xtalagent.tools.band_gap_train`)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pymatgen.core import Structure

from xtalagent.tools import band_gap as bg

if TYPE_CHECKING:
    from xtalagent.tools.band_gap_train import BandGapTrainConfig

logger = logging.getLogger(__name__)

#: Measured from-scratch rebuild time (2026-12-05, 2 shared cores, other jobs running).
REBUILD_MINUTES = 14
NAME = "xtalagent band-gap v1 (CHGNet features + composition prior + MLP ensemble)"
#: Measured release build (2026-12-05, same machine, 809 s): features of the 8,123 rows the eval build
#: lacks 4 min (the eval rows' features reused from the cache), prior 2.5 min, head 7 min.
RELEASE_MINUTES = 14
RELEASE_WARNING = (
    "release variant: trained on every split (MP train+val+test, Matbench with MP test formulas kept); "
    "never use it for a reported test figure (use the eval variant, tools/checkpoints/band_gap)"
)


def release_metrics(eval_meta_: dict) -> dict:
    """The eval model's measured test figures, labelled as such (a release model has no held-out figure)."""
    m = dict(eval_meta_.get("metrics") or {})
    if not m:
        return {}
    return m | {
        "measured_on": f"eval variant (train only), seeded {m.get('n')} MP {m.get('split', 'test')}",
        "measured_model": eval_meta_.get("name"),
        "note": "this release model trained on those crystals; it has no held-out figure of its own",
    }


def readme(meta: dict) -> str:
    if meta.get("variant") == "release":
        return release_readme(meta)
    t = meta["training"]
    v = meta["val_metrics"]
    m = meta.get("metrics") or {}
    test = (
        f"MP test (seeded {m.get('n')}, as given): MAE {m['mae']:.3f} eV, metal/non-metal accuracy "
        f"{100 * m['metal_accuracy']:.1f} % (xtalagent bench band-gap)."
        if m.get("mae") is not None
        else "MP test: not measured yet (run xtalagent bench band-gap)."
    )
    return f"""# Band-gap model ({meta["name"]})

PBE band gap with an uncertainty, used by `xtalagent properties` and the screening stage
(`xtalagent.tools.band_gap.BandGapModel`). Metal: gap < {meta["metal_gap_eV"]} eV.

- Head: {meta["architecture"]["members"]} MLPs ({meta["architecture"]["layers"]}x{meta["architecture"]["hidden"]}),
  mode `{meta["mode"]}`, inputs {meta["architecture"]["inputs"]}, trained on MP `{"+".join(t["head_splits"])}`
  ({t["head_rows"]} crystals with a gap), tuned on `val`.
- Composition prior: {meta["architecture"]["prior_folds"]} fold networks on {t["matbench_rows"]} Matbench
  `mp_gap` rows.
- Removed from all training data: the {t["excluded_test_formulas"]} reduced formulas of the MP `test` split.
- Val: MAE {v["mae"]:.3f} eV, RMSE {v["rmse"]:.3f} eV, metal/non-metal accuracy {100 * v["metal_accuracy"]:.1f} %,
  {100 * v["within_2std"]:.0f} % of errors within 2 std (std scale {meta["std_scale"]}).
- {test}
- Known miss: TiO2 (rutile, anatase) is predicted metallic with a ~2.5 eV spread; every TiO2 crystal
  is in MP `test`, so the formula is kept out of training and the only Ti-O binaries seen are metallic
  suboxides. The release variant for users (`checkpoints/band_gap_release/`, all splits) has seen
  them. Variant comparison on val: `bench/results/band_gap_variants_val.json`.

Rebuild from scratch: about {REBUILD_MINUTES} min on 2 shared CPU cores with 1 torch thread (CHGNet features of
8,472 crystals 5 min, prior 3 min, head 5 min); the last run took {t["seconds"] / 60:.0f} min, reusing
what was cached in `runs/band_gap/`. The test figures come from `xtalagent bench band-gap --record`.

    python -m xtalagent.tools.band_gap_train --data ../shared/data/mp/structures.csv.gz \\
        --matbench ../shared/data/matbench/mp_gap.csv.gz -o tools/checkpoints/band_gap
"""


def release_readme(meta: dict) -> str:
    t = meta["training"]
    m = meta.get("metrics") or {}
    measured = (
        f"Measured error to quote, of the **{m['measured_on']}**: MAE "
        f"{m['mae']:.3f} eV, metal/non-metal accuracy {100 * m['metal_accuracy']:.1f} % "
        "(xtalagent bench band-gap). This model has no held-out figure of its own."
        if m.get("mae") is not None
        else "No measured error: the eval variant has not been benchmarked yet."
    )
    sanity = meta.get("sanity_check") or {}
    lines = ""
    if sanity.get("rows"):
        lines = "\n".join(
            f"| {r['id']} | {r['spacegroup']} | {r['mp_band_gap']:.2f} | {r['release']:.2f} ± {r['release_std']:.2f} "
            f"| {r['eval']:.2f} ± {r['eval_std']:.2f} |"
            for r in sanity["rows"]
        )
        lines = f"""
## Sanity check (training-set crystals, not a held-out figure)

{sanity["note"]}

| MP id | space group | MP PBE gap (eV) | release (eV) | eval (eV) |
|---|---|---|---|---|
{lines}
"""
        if sanity.get("rutile"):
            r = sanity["rutile"]
            lines += (
                f"\nRutile ({r['source']}; not one of the data set's crystals, but its formula was trained on; "
                f"PBE about 1.8 eV): release {r['release']:.2f} ± {r['release_std']:.2f} eV, "
                f"eval {r['eval']:.2f} ± {r['eval_std']:.2f} eV.\n"
            )
    minutes = f"about {RELEASE_MINUTES} min; the last run took {t['seconds'] / 60:.0f} min"
    return f"""# Band-gap model, release variant ({meta["name"]})

**{meta["warning"]}.**

For what users get (`design`, `chat`): load it with `default_band_gap_model(variant="release")`;
the library default is the eval variant (`checkpoints/band_gap/`). Same architecture, features and
settings as the eval variant (chosen on val there); only the training data differ:

- Head: {meta["architecture"]["members"]} MLPs ({meta["architecture"]["layers"]}x{meta["architecture"]["hidden"]}),
  mode `{meta["mode"]}`, inputs {meta["architecture"]["inputs"]}, trained on MP `{"+".join(t["head_splits"])}`
  ({t["head_rows"]} crystals with a gap; nothing removed).
- Composition prior: {meta["architecture"]["prior_folds"]} fold networks on {t["matbench_rows"]} Matbench
  `mp_gap` rows (MP test formulas kept).
- Std scale {meta["std_scale"]}: {meta["std_scale_source"]} (no held-out data is left to fit it on).
- {measured}
{lines}
Rebuild ({minutes} on 2 shared CPU cores with 1 torch thread, reusing the eval rows' cached CHGNet
features in `runs/band_gap/`; from scratch add the eval build's 5 min of features). Needs the eval
model in `checkpoints/band_gap/` first (its std scale and measured figures):

    python -m xtalagent.tools.band_gap_train --release --data ../shared/data/mp/structures.csv.gz \\
        --matbench ../shared/data/matbench/mp_gap.csv.gz -o tools/checkpoints/band_gap_release
"""


def sanity_check(out: Path, cfg: BandGapTrainConfig, formula: str = "TiO2") -> dict:
    """Release and eval predictions for the known ``formula`` phases of the shipped reference set (the
    release model trained on these crystals: a check that it learnt them, not a held-out figure)."""
    from xtalagent.tools.reference_set import with_formula

    release = bg.BandGapModel.load(out)
    evaluated = bg.BandGapModel.load(cfg.eval_model, chgnet=release.chgnet)
    every = with_formula(formula, variant="release")
    known = [k for k in every if k.band_gap is not None]
    structures = [k.structure() for k in known]
    rutile = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "cifs" / "rutile_TiO2.cif"
    extra = [Structure.from_file(rutile)] if formula == "TiO2" and rutile.is_file() else []
    rel, ev = release.predict(structures + extra), evaluated.predict(structures + extra)
    rows = [
        {
            "id": k.id,
            "spacegroup": k.spacegroup,
            "split": k.split,
            "mp_band_gap": k.band_gap,
            "release": round(r.band_gap, 3),
            "release_std": round(r.band_gap_std, 3),
            "eval": round(e.band_gap, 3),
            "eval_std": round(e.band_gap_std, 3),
        }
        for k, r, e in zip(known, rel, ev)
    ]
    for row in rows:
        logger.info("sanity %s", json.dumps(row))
    splits = sorted({str(k.split) for k in known})
    note = (
        f"The {len(rows)} {formula} phases with an MP gap in the shipped reference set ({len(every) - len(rows)} "
        f"more have none; MP split: {', '.join(splits)}), rebuilt from their asymmetric units, as given (no "
        "relaxation). The release model trained on them, so this only shows it learnt them; the eval model "
        "never saw the formula."
    )
    result: dict[str, Any] = {"formula": formula, "note": note, "rows": rows}
    if extra:
        r, e = rel[-1], ev[-1]
        result["rutile"] = {
            "source": "tests/fixtures/cifs/rutile_TiO2.cif",
            "release": round(r.band_gap, 3),
            "release_std": round(r.band_gap_std, 3),
            "eval": round(e.band_gap, 3),
            "eval_std": round(e.band_gap_std, 3),
        }
    return result
