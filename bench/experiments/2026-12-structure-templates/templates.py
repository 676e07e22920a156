"""How far does a known prototype go? Transplant the lattice shape and free coordinates of the
chemically closest `train` crystal with the same group and anonymised Wyckoff pattern.

Usage: python templates.py [--split val] [--n 500] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from xtalagent.data import load_records
from xtalagent.finetune.group_classifier import element_descriptor
from xtalagent.structure_gen.evaluate import crystal_system, select_records
from xtalagent.structure_gen.freeparams import build_structure, free_to_lattice, free_variables_of_record
from xtalagent.structure_gen.matching import matcher, rms_distance

DATA = Path("/work/main/datasets/mp_structures.parquet")


def roles(record_or_constraint) -> dict[str, tuple[str, ...]]:
    out: dict[str, list[str]] = defaultdict(list)
    for s in record_or_constraint.sites:
        out[s.element].append(s.wyckoff)
    return {el: tuple(sorted(v)) for el, v in out.items()}


def key(sg: int, r: dict[str, tuple[str, ...]]) -> tuple:
    return (sg, tuple(sorted(r.values())))


def mendeleev(el: str) -> float:
    return float(element_descriptor(el)[0])


def mapping(q: dict[str, tuple[str, ...]], t: dict[str, tuple[str, ...]]) -> dict[str, str]:
    """Query element -> template element: same letters, ranks matched by Mendeleev number."""
    by_q: dict[tuple, list[str]] = defaultdict(list)
    by_t: dict[tuple, list[str]] = defaultdict(list)
    for el, v in q.items():
        by_q[v].append(el)
    for el, v in t.items():
        by_t[v].append(el)
    out = {}
    for v, els in by_q.items():
        a = sorted(els, key=mendeleev)
        b = sorted(by_t[v], key=mendeleev)
        out.update(zip(a, b))
    return out


def distance(m: dict[str, str]) -> float:
    return sum(abs(mendeleev(a) - mendeleev(b)) for a, b in m.items())


def transplant(query, template, m: dict[str, str]):
    lat_free, coords = free_variables_of_record(template)
    pool: dict[tuple[str, str], list[np.ndarray]] = defaultdict(list)
    for site, c in zip(template.sites, coords):
        pool[(site.element, site.wyckoff)].append(c)
    used: dict[tuple[str, str], int] = defaultdict(int)
    free = []
    for site in query.sites:
        k = (m[site.element], site.wyckoff)
        free.append(pool[k][used[k]])
        used[k] += 1
    lattice = free_to_lattice(template.spacegroup, lat_free)
    return build_structure(query.constraint(), lattice, free)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--split", default="val")
    p.add_argument("--n", type=int, default=500)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--top", type=int, default=1, help="templates tried (oracle match@top)")
    args = p.parse_args()
    t0 = time.time()
    train = load_records(DATA, split="train")
    index: dict[tuple, list] = defaultdict(list)
    for r in train:
        index[key(r.spacegroup, roles(r))].append(r)
    queries = select_records(DATA, args.split, args.n, args.seed)
    sm = matcher()
    rows = []
    for q in queries:
        qr = roles(q)
        cands = index.get(key(q.spacegroup, qr), [])
        ranked = sorted(((distance(mapping(qr, roles(t))), i, t) for i, t in enumerate(cands)), key=lambda x: x[:2])
        rms = []
        for _, _, t in ranked[: args.top]:
            try:
                s = transplant(q, t, mapping(qr, roles(t)))
                rms.append(rms_distance(s, q.structure(), sm))
            except Exception as exc:  # noqa: BLE001
                rms.append(None)
                print("fail", q.id, exc)
        rows.append(
            {
                "id": q.id,
                "spacegroup": q.spacegroup,
                "system": crystal_system(q.spacegroup),
                "n_templates": len(cands),
                "rms": rms,
            }
        )
    n = len(rows)
    has = sum(r["n_templates"] > 0 for r in rows)
    m1 = sum(bool(r["rms"]) and r["rms"][0] is not None for r in rows)
    mk = sum(any(x is not None for x in r["rms"]) for r in rows)
    print(
        f"{n} {args.split} crystals; with a template {has} ({has / n:.1%}); "
        f"match@1 {m1 / n:.1%}; oracle@{args.top} {mk / n:.1%}"
    )
    per = defaultdict(lambda: [0, 0, 0])
    for r in rows:
        per[r["system"]][0] += 1
        per[r["system"]][1] += r["n_templates"] > 0
        per[r["system"]][2] += bool(r["rms"]) and r["rms"][0] is not None
    for sys_, (a, b, c) in per.items():
        print(f"  {sys_:13s} n={a:4d} template={b:4d} match@1={c:4d}")
    Path(f"templates_{args.split}{args.n}_top{args.top}.json").write_text(json.dumps(rows, indent=1))
    print(f"{time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
