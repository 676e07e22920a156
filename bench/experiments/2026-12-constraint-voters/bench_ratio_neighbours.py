"""Choose how the nearest known crystals re-weigh the ratio classifier's ratios, on half A of MP `val`.

An elements-only request (``Sc-Ni`` + a property) hides its stoichiometry; the ratio classifier
(finetune/ratio_classifier.py) proposes ratios from element properties. The prior's ``ratios`` part
(``voters.json``: ``prior["elements"]["ratios"]``, ``ConstraintPredictor.likely_ratios``) weighs
each of the classifier's ``ratio_pool`` likeliest ratios by its share among the
``k`` chemically closest training crystals with as many elements (Pettifor distance, plus the
distance to the requested property). Its settings are chosen on half A (the halves of
bench_constraint_prior.py), pooled over the properties shown (band gap, formation energy, none),
by how often the first ratio is the crystal's; half B, which played no part in the choice, and the
whole split are reported, with the classifier alone beside. `test` is never read.

    V=bench/experiments/2026-12-constraint-voters   # from the repository root
    python $V/bench_ratio_neighbours.py -> constraints_ratio_neighbours.json (beside this script)
"""

from __future__ import annotations

import argparse
import itertools
import json
import shlex
import sys
import time
from pathlib import Path

from bench_ratio_vote import PROPERTIES, by_half
from rich.progress import track

from xtalagent.data import load_records
from xtalagent.eval.benchmarks.paths import dataset_file
from xtalagent.eval.benchmarks.subsets import half
from xtalagent.eval.constraints import request_for
from xtalagent.finetune.neighbour_prior import PriorPart
from xtalagent.finetune.predictor import load_predictor, weigh_ratios
from xtalagent.finetune.ratio_classifier import ratio_key
from xtalagent.finetune.requests import ConstraintRequest
from xtalagent.io import atomic_path

RESULTS = Path(__file__).resolve().parent  # results live beside the script and its README
GRID = {
    "weight": (0.0, 1.0, 2.0, 3.0, 4.0),
    "k": (5, 10, 20, 40),
    "scale": (1.0, 2.0, 5.0),
    "floor": (0.01, 0.05),
    "band_gap_weight": (3.0, 10.0, 30.0),
    "formation_energy_weight": (10.0, 30.0, 100.0),
}
TOP = (1, 3, 5)


def rows_for(predictor, val, prop: str) -> list[dict]:
    """Per request: the classifier's ratio pool, the crystal's ratio and the prior's neighbour pool."""
    prior, ratios = predictor.prior, predictor.ratios
    rows = []
    for record in track(val, description=f"elements + {prop}"):
        request = request_for(record, "elements", prop)
        if request is None:
            continue
        ctx = predictor.context(ConstraintRequest.model_validate(request))
        pool = ratios.ratios(
            ctx.elements, ctx.band_gap, ctx.formation_energy, request["max_atoms"], predictor.weights.ratio_pool
        )
        rows.append(
            {
                "half": half(record.id),
                "ctx": ctx,
                "pool": pool,
                "keys": [ratio_key(dict(zip(ctx.elements, counts))) for counts, _ in pool],
                "truth": ratio_key(record.cell_counts),
                "neighbours": prior.pool("prototype", "elements", tuple(ctx.elements), None),
            }
        )
    return rows


def ranks(predictor, rows: list[dict], part: PriorPart) -> list[int | None]:
    """The rank of each crystal's ratio after re-weighing (None: not among the pool)."""
    out = []
    for row in rows:
        if part.weight:
            ctx = row["ctx"]
            share = predictor.prior.ratio_shares(
                ctx.elements, part, ctx.band_gap, ctx.formation_energy, pool=row["neighbours"]
            )
            known = [share.get(key, 0.0) for key in row["keys"]]
            by_key = [(key, p) for key, (_, p) in zip(row["keys"], row["pool"])]
            order = [key for key, _ in weigh_ratios(by_key, known, part.weight, part.floor)]
        else:
            order = row["keys"]
        out.append(order.index(row["truth"]) if row["truth"] in order else None)
    return out


def top(found: list[int | None], n: int) -> float:
    return sum(r is not None and r < n for r in found) / max(1, len(found))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, default=None, help="default: datasets/mp_structures.parquet")
    args = parser.parse_args()
    args.dataset = dataset_file(args.dataset)
    start = time.perf_counter()
    predictor = load_predictor()
    if predictor.ratios is None or predictor.prior is None:
        raise SystemExit("the embedded model needs ratio_classifier.pt and neighbours.json.gz")
    val = load_records(args.dataset, "val")
    rows = {prop: rows_for(predictor, val, prop) for prop in PROPERTIES}
    tune = [r for rs in rows.values() for r in rs if r["half"] == "A"]
    names = list(GRID)
    settings = [dict(zip(names, values)) for values in itertools.product(*GRID.values())]
    settings = [s for s in settings if s["weight"] or s == settings[0]]  # weight 0: one setting suffices
    grid = {}
    for setting in track(settings, description="settings on half A"):
        grid[json.dumps(setting)] = top(ranks(predictor, tune, PriorPart(**setting)), 1)
    chosen = json.loads(max(grid, key=grid.get))
    shipped = predictor.weights.prior["elements"]["ratios"]
    out: dict = {
        "what": __doc__.splitlines()[0],
        "command": shlex.join(["python", *sys.argv]),
        "pool": predictor.weights.ratio_pool,
        "half_A_ratio_top1_by_setting": {k: round(v, 4) for k, v in sorted(grid.items(), key=lambda kv: -kv[1])[:40]},
        "chosen_on_half_A": chosen,
        "shipped": shipped,
        "properties": {},
    }
    for prop, rs in rows.items():
        report = {}
        for name, sel in by_half(rs):
            alone = ranks(predictor, sel, PriorPart(weight=0.0, k=1, scale=1.0, floor=1.0))
            with_chosen = ranks(predictor, sel, PriorPart(**chosen))
            with_shipped = ranks(predictor, sel, PriorPart(**shipped))
            report[name] = {"n": len(sel)}
            for label, found in (("classifier", alone), ("chosen", with_chosen), ("shipped", with_shipped)):
                report[name].update({f"{label}_ratio_top{n}": round(top(found, n), 4) for n in TOP})
        out["properties"][prop] = report
        print(prop, json.dumps(report), flush=True)
    out["seconds"] = round(time.perf_counter() - start, 1)
    RESULTS.mkdir(parents=True, exist_ok=True)
    with atomic_path(RESULTS / "constraints_ratio_neighbours.json") as tmp:
        tmp.write_text(json.dumps(out, indent=2) + "\n")
    print(f"chosen {chosen} (shipped {shipped}) -> {RESULTS / 'constraints_ratio_neighbours.json'}")


if __name__ == "__main__":
    main()
