"""Val experiment: which cheap triage lets design return its best n of k*n generated structures?"""
# ruff: noqa: E402  (a run-once analysis: warnings are silenced before the heavy imports)

import json
import sys
import warnings
from pathlib import Path

import numpy as np

warnings.filterwarnings("ignore")
import torch

torch.set_num_threads(1)
from pymatgen.core import Structure
from pymatgen.io.ase import AseAtomsAdaptor

from xtalagent.tools.hull import formation_energy, load_element_refs
from xtalagent.tools.potentials import load_potential

root = Path(sys.argv[1])
n = int(sys.argv[2]) if len(sys.argv) > 2 else 5
bench = json.loads(Path(sys.argv[3]).read_text()) if len(sys.argv) > 3 else None
pot = load_potential("chgnet")
refs = load_element_refs()
targets = {r["id"]: r["target"] for r in bench["requests"]} if bench else {}
rows_out = []
for folder in sorted(p for p in root.iterdir() if (p / "summary.json").is_file()):
    summ = json.loads((folder / "summary.json").read_text())
    req = json.loads((folder / "request.json").read_text())
    target = targets.get(folder.name)
    if target is None:
        target = req["request"]["formation_energy"]["value"]
    rows = [r for r in summ["rows"] if r.get("design_rank") is not None]
    structs = {}
    for r in rows:
        cif = next((folder / "structures").glob(f"{r['id']}_*.cif"))
        structs[r["id"]] = Structure.from_file(cif)
    ids = list(structs)
    evs = pot.evaluate([AseAtomsAdaptor.get_atoms(structs[i]) for i in ids])
    sp = {i: formation_energy(structs[i].composition, ev.energy, refs) for i, ev in zip(ids, evs)}
    for r in rows:
        rows_out.append(
            {
                "req": folder.name,
                "id": r["id"],
                "slot": int(r["id"][1:]),
                "rank": r["design_rank"],
                "e_form": r["e_form"],
                "e_hull": r["e_hull"],
                "sp_e_form": sp[r["id"]],
                "dist": abs(r["e_form"] - target) if r["e_form"] is not None else 9.0,
                "sp_dist": abs(sp[r["id"]] - target),
                "target": target,
            }
        )
    print(folder.name, len(rows), flush=True)
Path(sys.argv[1], "triage_rows.json").write_text(json.dumps(rows_out))
import collections

by = collections.defaultdict(list)
for r in rows_out:
    by[r["req"]].append(r)


def share(pick):
    hits = [x["dist"] <= 0.05 for rs in by.values() for x in pick(rs)]
    h1 = [x["dist"] <= 0.1 for rs in by.values() for x in pick(rs)]
    return round(np.mean(hits), 3), round(np.mean(h1), 3), len(hits)


print("first n slots      ", share(lambda rs: sorted(rs, key=lambda x: x["slot"])[:n]))
print("top n design rank  ", share(lambda rs: sorted(rs, key=lambda x: x["rank"])[:n]))
print("top n single-point ", share(lambda rs: sorted(rs, key=lambda x: x["sp_e_form"])[:n]))
print("top n sp dist      ", share(lambda rs: sorted(rs, key=lambda x: x["sp_dist"])[:n]))
print("top n relaxed dist ", share(lambda rs: sorted(rs, key=lambda x: x["dist"])[:n]))
print("all                ", share(lambda rs: rs))
