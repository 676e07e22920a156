"""How many val crystals without a same-letter template find one under the group's alternative
Wyckoff labellings (Euclidean normalizer cosets, pyxtal Group.get_alternatives)?"""

import re
from functools import cache

from pyxtal.symmetry import Group

from xtalagent.records import SymmetryConstraint
from xtalagent.structure_gen.evaluate import select_records
from xtalagent.structure_gen.prototypes import shipped_library
from xtalagent.structure_gen.routing import site_pattern


@cache
def perms(sg):
    alt = Group(sg).get_alternatives()
    base = alt["Transformed WP"][0].split()
    return [dict(zip(base, t.split())) for t in alt["Transformed WP"][1:]]


lib = shipped_library("eval")
recs = select_records("/work/main/datasets/mp_structures.parquet", "val", 500, 0)
none = found = 0
for r in recs:
    c = r.constraint()
    if lib.index.get(site_pattern(c)):
        continue
    none += 1
    for p in perms(r.spacegroup):
        sites = []
        for s in c.sites:
            m = re.match(r"(\d+)([a-zA-Z]+)", s.wyckoff)
            sites.append({"element": s.element, "wyckoff": m.group(1) + p.get(m.group(2), m.group(2))})
        try:
            alt = SymmetryConstraint.model_validate({"spacegroup": c.spacegroup, "sites": sites})
        except Exception:
            continue
        if lib.index.get(site_pattern(alt)):
            found += 1
            break
print(f"without a same-letter template: {none}; found under an alternative labelling: {found}")
