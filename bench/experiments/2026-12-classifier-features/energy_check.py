"""Can a potential's energy of each candidate group's prototype transplant re-rank stage 1? (issue #22)

For seeded val formula requests: the shipped predictor's (eval variant) first K candidates (best
site list of each of the first K groups), each built on its closest train-only known prototype
(structure_gen/prototypes.py), then CHGNet energy per atom: single point, and after a short
symmetry-kept relaxation. Writes energy_<prop>.json.gz for analysis. `test` is never read.
"""

from __future__ import annotations

import argparse
import gzip
import json
import time
from pathlib import Path

from pymatgen.io.ase import AseAtomsAdaptor

from xtalagent.data import load_records
from xtalagent.eval.benchmarks.subsets import half
from xtalagent.eval.constraints import request_for, sample_records
from xtalagent.finetune.predictor import load_predictor
from xtalagent.records import SiteSpec, SymmetryConstraint
from xtalagent.structure_gen.prototypes import shipped_library
from xtalagent.tools.potentials import load_potential
from xtalagent.tools.relax import relax_batch

HERE = Path(__file__).resolve().parent


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--property", default="formation_energy")
    p.add_argument("--limit", type=int, default=400)
    p.add_argument("--k", type=int, default=3)
    p.add_argument("--steps", type=int, default=40)
    a = p.parse_args()
    import torch

    torch.set_num_threads(2)
    predictor = load_predictor(variant="eval")
    library = shipped_library("eval")
    potential = load_potential("chgnet")
    records = sample_records(load_records("datasets/mp_structures.parquet", "val"), a.limit)
    out_path = HERE / f"energy_{a.property}_{a.limit}.json.gz"
    rows = []
    t0 = time.time()
    for n, record in enumerate(records):
        req = request_for(record, "formula", a.property)
        if req is None:
            continue
        cands = predictor.predict(req, top_k=a.k)
        entry = {
            "id": record.id,
            "half": half(record.id),
            "truth": record.spacegroup,
            "groups": [],
            "templates": [],
            "e0": [],
            "e1": [],
        }
        structures, where = [], []
        for c in cands:
            entry["groups"].append(c.spacegroup)
            constraint = SymmetryConstraint(
                spacegroup=c.spacegroup, sites=[SiteSpec(element=s.element, wyckoff=s.wyckoff) for s in c.sites]
            )
            templates = library.templates(constraint)
            entry["templates"].append(templates[0].crystal.id if templates else None)
            if templates:
                try:
                    st = library.transplant(constraint, templates[0])
                    structures.append(AseAtomsAdaptor.get_atoms(st))
                    where.append(len(entry["groups"]) - 1)
                except Exception as exc:  # noqa: BLE001 - an experiment: record and go on
                    entry.setdefault("errors", []).append(str(exc)[:100])
        e0 = [None] * len(cands)
        e1 = [None] * len(cands)
        if structures:
            for i, ev in zip(where, potential.evaluate(structures)):
                e0[i] = float(ev.energy) / len(structures[where.index(i)]) if ev.finite else None
            if a.steps:
                for i, res in zip(where, relax_batch(structures, potential, max_steps=a.steps)):
                    try:
                        e1[i] = float(res.energy_per_atom)
                    except Exception:  # noqa: BLE001
                        e1[i] = None
        entry["e0"], entry["e1"] = e0, e1
        rows.append(entry)
        if n % 20 == 0:
            print(f"{n}/{len(records)} {time.time() - t0:.0f} s", flush=True)
            json.dump(rows, gzip.open(out_path, "wt"))
    json.dump(rows, gzip.open(out_path, "wt"))
    print(f"done {len(rows)} in {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
