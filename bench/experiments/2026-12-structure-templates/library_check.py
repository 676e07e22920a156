"""The shipped-library sampler (eval variant) on seeded val crystals: match@1 and volume error."""

import json
import sys
import time

import numpy as np

from xtalagent.structure_gen.evaluate import crystal_system, select_records
from xtalagent.structure_gen.matching import matcher, rms_distance
from xtalagent.structure_gen.prototypes import shipped_library

n = int(sys.argv[1]) if len(sys.argv) > 1 else 500
t0 = time.time()
lib = shipped_library("eval")
print("library", lib.size, f"{time.time() - t0:.1f} s")
recs = select_records("/work/main/datasets/mp_structures.parquet", "val", n, 0)
sm = matcher()
rows = []
for r in recs:
    c = r.constraint()
    ts = lib.templates(c)
    row = {"id": r.id, "system": crystal_system(r.spacegroup), "n_templates": len(ts), "rms": None, "vol_ratio": None}
    if ts:
        s = lib.transplant(c, ts[0])
        truth = r.structure()
        row["rms"] = rms_distance(s, truth, sm)
        row["vol_ratio"] = s.volume / truth.volume
        row["template"] = ts[0].crystal.id
    rows.append(row)
m = sum(x["rms"] is not None for x in rows)
print(f"{n} val: template {sum(x['n_templates'] > 0 for x in rows)}, match@1 {m / n:.1%}, {time.time() - t0:.0f} s")
v = np.array([x["vol_ratio"] for x in rows if x["vol_ratio"]])
print("volume ratio median |log|", np.median(np.abs(np.log(v))), "within 10%", np.mean(np.abs(v - 1) < 0.1))
json.dump(rows, open(f"library_val{n}.json", "w"), indent=1)
