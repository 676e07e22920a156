"""Crystal structure prediction with the true constraints of test crystals (``eval-csp``).

For every crystal the sampler gets its true space group and Wyckoff sites (no property target)
and returns ``k`` checked structures; StructureMatcher (stol=0.5, angle_tol=10, ltol=0.3) then
compares them with the truth. Reported: match rate and mean normalised RMSE for the first sample
and for the best of ``k``, validity (proposals passing every check at the first attempt),
symmetry agreement of the returned structures (must be 1.0), failures after retries and seconds
per returned structure. Structures that fail every retry count as misses, never as matches.
The first-sample figures are also split by crystal system (triclinic ... cubic), so a weak spot
in low symmetry stays visible behind a good average, and by where the first sample came from (a
known prototype or the model itself). Prototypes always come from the ``eval`` knowledge variant
here (``train`` crystals only), so no crystal of ``val`` or ``test`` can be its own template.
"""

from __future__ import annotations

import json
import platform
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from xtalagent.errors import InputError
from xtalagent.structure_gen.matching import MATCH_ANGLE_TOL, MATCH_LTOL, MATCH_STOL, matcher, rms_distance
from xtalagent.structure_gen.samplers import (
    DIFFUSION_STEPS,
    DIFFUSION_TEMPERATURE,
    MAX_ATTEMPTS,
    generate,
    make_sampler,
)
from xtalagent.structure_gen.settings import CspEvalSettings, SamplerSettings
from xtalagent.symmetry import crystal_system

#: Default number of test crystals and samples per crystal of ``eval-csp``.
EVAL_N_CRYSTALS: int = CspEvalSettings.crystals
EVAL_K: int = CspEvalSettings.k
PROTOTYPES: int = SamplerSettings.prototypes


def select_records(
    dataset: str | Path,
    split: str | None,
    n: int | None,
    seed: int = 0,
    max_atoms: int | None = None,
    n_elements: tuple[int, ...] | None = None,
    *,
    crystal_systems: tuple[str, ...] | None = None,
    keep: Callable[[Any], bool] | None = None,
):
    """``n`` random records of a split (all when ``n`` is None), reproducible by ``seed``;
    optionally only cells up to ``max_atoms``, with a number of elements in ``n_elements`` and in
    ``crystal_systems`` (e.g. the low-symmetry ones, to measure them on more than a handful), and
    for which ``keep(record)`` holds (e.g. the crystals a specialist model would be routed)."""
    from xtalagent.data import load_records

    path = Path(dataset)
    if not path.exists():
        raise InputError(f"dataset {path} not found (build it with 'xtalagent data build')")
    records = load_records(path, split=split) if split else load_records(path)
    if max_atoms:
        records = [r for r in records if r.natoms <= max_atoms]
    if n_elements:
        records = [r for r in records if len(r.elements) in n_elements]
    if crystal_systems:
        unknown = set(crystal_systems) - set(CRYSTAL_SYSTEMS)
        if unknown:
            raise InputError(f"unknown crystal system(s) {', '.join(sorted(unknown))}")
        records = [r for r in records if crystal_system(r.spacegroup) in crystal_systems]
    if keep:
        records = [r for r in records if keep(r)]
    if not records:
        raise InputError(f"no crystals in {path}" + (f" split {split!r}" if split else ""))
    if n is not None and n < len(records):
        records = random.Random(seed).sample(records, n)
    return records


def eval_csp(
    records: list,
    sampler_name: str,
    k: int = EVAL_K,
    checkpoint=None,
    seed: int = 0,
    steps: int | None = None,
    temperature: float = DIFFUSION_TEMPERATURE,
    corrector: bool = True,
    step_lr: float | None = None,
    prototypes: int = PROTOTYPES,
) -> dict:
    """CSP metrics of one sampler on ``records`` (see module docstring). Without a ``checkpoint``
    the diffusion sampler routes each crystal to a shipped model (``samplers.make_sampler``); each
    per-crystal row then names the model that sampled it, and the prototype each sample took."""
    sampler = make_sampler(
        sampler_name,
        checkpoint=checkpoint,
        seed=seed,
        steps=steps or DIFFUSION_STEPS,
        temperature=temperature,
        corrector=corrector,
        step_lr=step_lr,
        prototypes=prototypes,
        variant="eval",
    )
    constraints = [r.constraint() for r in records]
    start = time.perf_counter()
    results = generate(constraints, n=k, sampler=sampler, max_attempts=MAX_ATTEMPTS)
    gen_seconds = time.perf_counter() - start
    sm = matcher()
    per_crystal = []
    first_ok = returned = sym_ok = failed = 0
    for i, rec in enumerate(records):
        mine = results[i * k : (i + 1) * k]
        truth = rec.structure()
        dists = []
        for res in mine:
            first_ok += res.attempts == 1 and res.ok
            if res.ok:
                assert res.check is not None  # an ok result was checked
                returned += 1
                sym_ok += bool(res.check.sites_match and res.check.spacegroup == rec.spacegroup)
                dists.append(rms_distance(res.structure, truth, sm))
            else:
                failed += 1
                dists.append(None)
        row = {
            "id": rec.id,
            "spacegroup": rec.spacegroup,
            "formula": rec.formula,
            "rms": dists,
            "prototype": [res.prototype for res in mine],
        }
        if hasattr(sampler, "checkpoint_for"):
            row["model"] = sampler.checkpoint_for(constraints[i]).name
        per_crystal.append(row)
    total = len(records) * k
    return {
        "sampler": sampler_name,
        **match_rates(per_crystal, k),
        "prototypes": prototypes if sampler_name == "diffusion" else 0,
        "by_origin": by_origin(per_crystal),
        "validity_first_attempt": first_ok / total,
        "returned_fraction": returned / total,
        "failed_after_retries": failed,
        "symmetry_agreement_of_returned": sym_ok / returned if returned else None,
        "seconds_per_structure": gen_seconds / max(returned, 1),
        "generation_seconds": round(gen_seconds, 1),
        "per_crystal": per_crystal,
    }


#: Crystal systems in order of rising symmetry (the rows of the per-system table).
CRYSTAL_SYSTEMS: tuple[str, ...] = (
    "triclinic",
    "monoclinic",
    "orthorhombic",
    "tetragonal",
    "trigonal",
    "hexagonal",
    "cubic",
)


def match_rates(per_crystal: list[dict], k: int) -> dict:
    """Match rate and mean RMSE of the first sample and of the best of ``k``, from per-crystal rows,
    with the binomial standard error of match@1 and the first-sample figures per crystal system."""
    first = [row["rms"][0] for row in per_crystal if row["rms"][0] is not None]
    best = [
        min(x for x in row["rms"] if x is not None) for row in per_crystal if any(x is not None for x in row["rms"])
    ]
    n = len(per_crystal)
    rate = len(first) / n
    return {
        "n_crystals": n,
        "k": k,
        "match_rate_at_1": rate,
        "match_rate_at_1_stderr": float(np.sqrt(rate * (1 - rate) / n)),
        "rmse_at_1": float(np.mean(first)) if first else None,
        f"match_rate_at_{k}": len(best) / n,
        f"rmse_at_{k}": float(np.mean(best)) if best else None,
        "by_crystal_system": by_crystal_system(per_crystal),
    }


def by_crystal_system(per_crystal: list[dict]) -> dict[str, dict]:
    """First-sample match rate and RMSE per crystal system (every system listed, empty ones with n 0)."""
    rows: dict[str, list] = {name: [] for name in CRYSTAL_SYSTEMS}
    for row in per_crystal:
        rows[crystal_system(row["spacegroup"])].append(row["rms"][0])
    out = {}
    for name, values in rows.items():
        hits = [x for x in values if x is not None]
        out[name] = {
            "n": len(values),
            "matched": len(hits),
            "match_rate_at_1": len(hits) / len(values) if values else None,
            "rmse_at_1": float(np.mean(hits)) if hits else None,
        }
    return out


def by_origin(per_crystal: list[dict]) -> dict[str, dict]:
    """First-sample match rate split by where that sample came from: a known prototype or the
    sampler itself (a failed first sample counts with the sampler)."""
    rows: dict[str, list] = {"prototype": [], "model": []}
    for row in per_crystal:
        origin = "prototype" if row.get("prototype", [None])[0] else "model"
        rows[origin].append(row["rms"][0])
    return {
        name: {
            "n": len(values),
            "matched": sum(x is not None for x in values),
            "match_rate_at_1": sum(x is not None for x in values) / len(values) if values else None,
        }
        for name, values in rows.items()
    }


def crystal_system_table(res: dict) -> str:
    """The per-crystal-system rows of one sampler's result as an aligned text table."""
    lines = [f"{'crystal system':<14} {'n':>5} {'matched':>8} {'match@1':>8} {'RMSE':>7}"]
    for name, row in res["by_crystal_system"].items():
        rate = f"{100 * row['match_rate_at_1']:.1f}%" if row["match_rate_at_1"] is not None else "-"
        rmse = f"{row['rmse_at_1']:.4f}" if row["rmse_at_1"] is not None else "-"
        lines.append(f"{name:<14} {row['n']:>5} {row['matched']:>8} {rate:>8} {rmse:>7}")
    return "\n".join(lines)


def run_eval_csp(
    dataset: str | Path,
    split: str | None = "test",
    samplers: tuple[str, ...] = ("pyxtal", "diffusion"),
    n: int | None = EVAL_N_CRYSTALS,
    k: int = EVAL_K,
    seed: int = 0,
    checkpoint=None,
    output: str | Path | None = None,
    max_atoms: int | None = None,
    n_elements: tuple[int, ...] | None = None,
    meta: dict | None = None,
    steps: int | None = None,
    temperature: float = DIFFUSION_TEMPERATURE,
    shard: tuple[int, int] | None = None,
    corrector: bool = True,
    step_lr: float | None = None,
    crystal_systems: tuple[str, ...] | None = None,
    keep: Callable[[Any], bool] | None = None,
    prototypes: int = PROTOTYPES,
) -> dict:
    """Evaluate several samplers on the same crystals and write one JSON (without per-crystal rows
    in the summary; they go to ``<output>.details.json``). ``shard=(i, m)`` keeps every m-th of
    the selected crystals from the i-th, so m processes share one selection (:func:`merge_shards`)."""
    import torch

    records = select_records(dataset, split, n, seed, max_atoms, n_elements, crystal_systems=crystal_systems, keep=keep)
    if shard:
        records = records[shard[0] :: shard[1]]
    report = {
        "dataset": str(dataset),
        "split": split,
        "n_crystals": len(records),
        "k": k,
        "seed": seed,
        "matcher": {"stol": MATCH_STOL, "angle_tol": MATCH_ANGLE_TOL, "ltol": MATCH_LTOL},
        "checkpoint": str(checkpoint) if checkpoint else None,
        "diffusion_steps": steps or DIFFUSION_STEPS,
        "diffusion_temperature": temperature,
        "diffusion_corrector": corrector,
        "diffusion_step_lr": step_lr,
        "prototypes": prototypes,
        "prototype_variant": "eval",
        "crystal_systems": list(crystal_systems) if crystal_systems else None,
        "machine": {"python": platform.python_version(), "torch_threads": torch.get_num_threads()},
        "n_elements": list(n_elements) if n_elements else None,
        "shard": list(shard) if shard else None,
        **(meta or {}),
        "results": {},
    }
    details = {}
    for name in samplers:
        res = eval_csp(
            records,
            name,
            k=k,
            checkpoint=checkpoint,
            seed=seed,
            steps=steps,
            temperature=temperature,
            corrector=corrector,
            step_lr=step_lr,
            prototypes=prototypes,
        )
        details[name] = res.pop("per_crystal")
        report["results"][name] = res
    if output:
        from xtalagent.io import write_json_atomic

        out = Path(output)
        write_json_atomic(out, report)
        write_json_atomic(out.with_suffix(".details.json"), details)
    return report


def merge_shards(paths: list[str | Path], output: str | Path | None = None) -> dict:
    """One report from the shard reports of one selection (``run_eval_csp(..., shard=(i, m))``).

    Rates are recomputed from the per-crystal rows and the shards' counts, so the merged report
    equals what one process would have measured on the whole selection (up to sampler randomness).
    """
    reports = [json.loads(Path(p).read_text()) for p in paths]
    details = [json.loads(Path(p).with_suffix(".details.json").read_text()) for p in paths]
    shards = sorted(tuple(r.get("shard") or ()) for r in reports)
    m = len(reports)
    if shards != [(i, m) for i in range(m)]:
        raise InputError(f"expected shards 0/{m} .. {m - 1}/{m}, got {shards}")
    merged = {k: v for k, v in reports[0].items() if k not in ("results", "shard", "n_crystals", "command")}
    merged["n_crystals"] = sum(r["n_crystals"] for r in reports)
    merged["commands"] = [r.get("command") for r in reports]
    merged["results"], merged_details = {}, {}
    for name in reports[0]["results"]:
        res = [r["results"][name] for r in reports]
        rows = [row for d in details for row in d[name]]
        n, k = len(rows), res[0]["k"]
        returned = sum(r["returned_fraction"] * r["n_crystals"] * k for r in res)
        sym_ok = sum(
            (r["symmetry_agreement_of_returned"] or 0) * r["returned_fraction"] * r["n_crystals"] * k for r in res
        )
        out = {
            "sampler": name,
            **match_rates(rows, k),
            "prototypes": res[0].get("prototypes", 0),
            "by_origin": by_origin(rows),
            "validity_first_attempt": sum(r["validity_first_attempt"] * r["n_crystals"] for r in res) / n,
            "returned_fraction": returned / (n * k),
            "failed_after_retries": sum(r["failed_after_retries"] for r in res),
            "symmetry_agreement_of_returned": sym_ok / returned if returned else None,
            "seconds_per_structure": sum(r["generation_seconds"] for r in res) / max(returned, 1),
            "generation_seconds": round(sum(r["generation_seconds"] for r in res), 1),
        }
        merged["results"][name] = out
        merged_details[name] = rows
    if output:
        from xtalagent.io import write_json_atomic

        write_json_atomic(Path(output), merged)
        write_json_atomic(Path(output).with_suffix(".details.json"), merged_details)
    return merged


def summary_line(name: str, res: dict) -> str:
    k = res["k"]
    return (
        f"{name}: match@1 {100 * res['match_rate_at_1']:.1f}% "
        f"(± {100 * res.get('match_rate_at_1_stderr', 0.0):.1f} s.e., RMSE {res['rmse_at_1'] or float('nan'):.4f}), "
        f"match@{k} {100 * res[f'match_rate_at_{k}']:.1f}%, valid(first try) "
        f"{100 * res['validity_first_attempt']:.1f}%, failed {res['failed_after_retries']}, "
        f"{res['seconds_per_structure']:.3f} s/structure" + _origin_note(res)
    )


def _origin_note(res: dict) -> str:
    """``; first sample from a prototype for 383/500 (match 87.5 %), from the model ...`` or ''."""
    origin = res.get("by_origin") or {}
    proto, model = origin.get("prototype"), origin.get("model")
    if not proto or not proto["n"] or not model:
        return ""

    def part(row: dict) -> str:
        rate = "-" if row["match_rate_at_1"] is None else f"{100 * row['match_rate_at_1']:.1f}%"
        return f"{row['n']} (match@1 {rate})"

    return f"; first sample from a known prototype for {part(proto)}, from the model for {part(model)}"


def dumps(report: dict) -> str:
    return json.dumps(report, indent=2)
