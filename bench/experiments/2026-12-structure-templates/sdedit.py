"""Does a short diffusion from the transplanted prototype (SDEdit: noise it to step t0, denoise with
mp_20.pt) match more val crystals than the transplant itself?

Usage: python sdedit.py N START [START ...]   (START: training step t0 of 1000, steps = t0 // 2)
"""

import json
import sys
import time

import numpy as np
import torch

from xtalagent.structure_gen.checks import check_structure
from xtalagent.structure_gen.evaluate import select_records
from xtalagent.structure_gen.featurize import collate, example_from_constraint, lattice_from_vector, lattice_vector
from xtalagent.structure_gen.freeparams import build_structure
from xtalagent.structure_gen.matching import matcher, rms_distance
from xtalagent.structure_gen.prototypes import _carry_back, shipped_library
from xtalagent.structure_gen.train import load_model

torch.set_num_threads(1)
n = int(sys.argv[1])
starts = [int(x) for x in sys.argv[2:]]
lib = shipped_library("eval")
model = load_model("/work/main/structure_gen/checkpoints/mp_20.pt")
model.eval()
recs = select_records("/work/main/datasets/mp_structures.parquet", "val", n, 0)
items = []
for r in recs:
    c = r.constraint()
    ts = lib.templates(c)
    if ts:
        items.append((r, c, ts[0], *lib.geometry(c, ts[0])))
sm = matcher()


def score(structs):
    hits = 0
    per = []
    for (r, *_), s in zip(items, structs):
        ok = s is not None and rms_distance(s, r.structure(), sm) is not None
        hits += ok
        per.append(ok)
    return hits, per


base = []
for _r, c, t, lab, lat, coords in items:
    s = build_structure(lab, lat, coords)
    if t.relabelled:
        s = _carry_back(s, t.relabelled[1], c)
    base.append(s)
h0, p0 = score(base)
print(f"{len(items)} val crystals with a template (of {n}); transplant matches {h0}", flush=True)
out = {"n": n, "with_template": len(items), "transplant": h0}
for start in starts:
    t0 = time.time()
    exs = []
    for _r, _c, _t, lab, lat, coords in items:
        ex = example_from_constraint(lab)
        free = np.zeros((len(coords), 3))
        for i, v in enumerate(coords):
            free[i, : len(v)] = np.mod(v, 1.0)
        ex.free = free
        ex.lattice = lattice_vector(lab.spacegroup, lat, ex.natoms)
        exs.append(ex)
    gen = torch.Generator().manual_seed(0)
    made = []
    for i in range(0, len(exs), 64):
        chunk = exs[i : i + 64]
        la, fr = model.sample(collate(chunk), generator=gen, steps=max(start // 2, 1), temperature=0.5, start=start)
        la, fr = la.numpy(), fr.numpy()
        off = 0
        for j, ex in enumerate(chunk):
            k = len(ex.orbit_dof)
            coords = [fr[off + q, : ex.orbit_dof[q]] for q in range(k)]
            off += k
            r, c, t, lab, *_ = items[i + j]
            try:
                s = build_structure(lab, lattice_from_vector(lab.spacegroup, la[j], ex.natoms), coords)
                if t.relabelled:
                    s = _carry_back(s, t.relabelled[1], c)
                if not check_structure(s, c).ok:
                    s = None
            except Exception:
                s = None
            made.append(s)
    h, p = score(made)
    gained = sum(b and not a for a, b in zip(p0, p))
    lost = sum(a and not b for a, b in zip(p0, p))
    print(f"start {start}: matches {h} (gained {gained}, lost {lost}), {time.time() - t0:.0f} s", flush=True)
    out[f"start_{start}"] = {"matches": h, "gained": gained, "lost": lost}
json.dump(out, open(f"sdedit_val{n}.json", "w"), indent=1)
