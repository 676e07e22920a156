"""Structure generator (issue #4): symmetry bookkeeping, checks, samplers, I/O, a training step."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from xtalagent.errors import InputError
from xtalagent.records import SymmetryConstraint
from xtalagent.structure_gen.checks import check_structure, detect_sites, sites_equivalent
from xtalagent.structure_gen.freeparams import (
    build_structure,
    free_to_lattice,
    free_variables_of_record,
    lattice_family,
    lattice_to_free,
    orbit_map,
    project_lattice,
)


@pytest.fixture(autouse=True)
def _one_thread():
    """Tests share the machine; torch threads only thrash here."""
    torch.set_num_threads(1)


# (group, Wyckoff label): general positions, lines, planes, "x,2x,z"-type, centred and fixed points
POSITIONS = [
    (1, "1a"),
    (14, "4e"),
    (14, "2a"),
    (62, "4c"),
    (99, "1b"),
    (166, "18h"),
    (194, "12k"),
    (194, "6h"),
    (194, "2c"),
    (225, "96k"),
    (225, "32f"),
    (225, "4a"),
    (227, "16c"),
    (230, "48g"),
]


@pytest.mark.parametrize(("group", "label"), POSITIONS)
def test_orbit_map_matches_pyxtal(group: int, label: str) -> None:
    from pyxtal.symmetry import Group

    wp = next(w for w in Group(group).Wyckoff_positions if w.get_label() == label)
    orbit = orbit_map(group, label)
    assert orbit.multiplicity == wp.multiplicity and orbit.dof == wp.get_dof()
    rng = np.random.default_rng(group)
    for _ in range(3):
        free = rng.random(orbit.dof)
        rep = wp.get_position_from_free_xyzs(free) if orbit.dof else wp.apply_ops(np.zeros(3))[0]
        ref = np.asarray(wp.apply_ops(rep))
        diff = orbit.expand(free) - ref
        assert np.abs(diff - np.round(diff)).max() < 1e-8
        if orbit.dof:  # free -> position -> free is the identity (mod 1)
            back = orbit.free_from_position(orbit.expand(free)[0])
            d = orbit.expand(back) - orbit.expand(free)
            assert np.abs(d - np.round(d)).max() < 1e-8


def test_lattice_families() -> None:
    assert lattice_family(225) == "cubic" and lattice_family(166) == "hexagonal" and lattice_family(14) == "monoclinic"
    assert np.allclose(project_lattice(225, [4.0, 4.1, 3.9, 90, 91, 89])[3:], 90)
    hexa = project_lattice(194, [3.0, 3.2, 5.0, 88, 90, 119])
    assert hexa[0] == hexa[1] and np.allclose(hexa[3:], [90, 90, 120])
    mono = [5.0, 6.0, 7.0, 90.0, 101.0, 90.0]
    assert np.allclose(free_to_lattice(14, lattice_to_free(14, mono)), mono)
    assert len(lattice_to_free(2, [5, 6, 7, 80, 85, 95])) == 6
    with pytest.raises(InputError):
        free_to_lattice(225, [4.0, 5.0])


def test_fixture_crystals_rebuild_from_free_variables(fixture_dataset) -> None:
    """Every labelled fixture crystal (one per group) is rebuilt from its free variables, matches the
    original and passes the symmetry + Wyckoff re-detection."""
    from xtalagent.data import load_records
    from xtalagent.structure_gen.matching import matcher

    sm = matcher()
    records = load_records(fixture_dataset)
    for rec in records:
        lat, coords = free_variables_of_record(rec)
        structure = build_structure(rec.constraint(), free_to_lattice(rec.spacegroup, lat), coords)
        assert len(structure) == rec.natoms
        assert sm.fit(structure, rec.structure()), rec.id
        result = check_structure(structure, rec.constraint())
        assert result.spacegroup == rec.spacegroup and result.sites_match, (rec.id, result.reasons)
        assert result.min_distance > 0.5  # (one fixture is a sparse molecular crystal: 200 Å^3/atom)


def test_checks_reject_wrong_symmetry_and_short_distances() -> None:
    from pymatgen.core import Lattice, Structure

    nacl = SymmetryConstraint(
        spacegroup=225, sites=[{"element": "Na", "wyckoff": "4a"}, {"element": "Cl", "wyckoff": "4b"}]
    )
    good = build_structure(nacl, [5.6, 5.6, 5.6, 90, 90, 90], [[], []])
    assert check_structure(good, nacl).ok
    tiny = build_structure(nacl, [0.8, 0.8, 0.8, 90, 90, 90], [[], []])
    reasons = " ".join(check_structure(tiny, nacl).reasons)
    assert "shortest distance" in reasons and "volume per atom" in reasons
    lower = Structure(Lattice.tetragonal(4.0, 5.0), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.37]])
    assert not check_structure(lower, nacl).ok
    # origin choice: Na on 4b and Cl on 4a is the same crystal
    group, found = detect_sites(good)
    assert group == 225 and sites_equivalent(225, [("Na", "b"), ("Cl", "a")], [("Na", "4a"), ("Cl", "4b")])
    assert sorted(found) == [("Cl", "b"), ("Na", "a")]


def test_bad_constraints_are_rejected(tmp_path) -> None:
    from xtalagent.structure_gen.io import read_constraints

    cases = {
        "unknown letter": {"spacegroup": 194, "sites": [{"element": "Sc", "wyckoff": "2z"}]},
        "wrong multiplicity": {"spacegroup": 194, "sites": [{"element": "Sc", "wyckoff": "4c"}]},
        "fixed site twice": {"spacegroup": 225, "sites": [{"element": "Na", "wyckoff": "4a"}] * 2},
        "unknown group": {"spacegroup": 231, "sites": [{"element": "Na", "wyckoff": "1a"}]},
        "no sites": {"spacegroup": 225},
        "inconsistent composition": {
            "id": 3,
            "candidates": [
                {
                    "spacegroup": 225,
                    "formula": "NaCl2",
                    "sites": [{"element": "Na", "wyckoff": "4a"}, {"element": "Cl", "wyckoff": "4b"}],
                }
            ],
        },
    }
    for why, data in cases.items():
        path = tmp_path / "bad.jsonl"
        path.write_text(json.dumps(data) + "\n")
        with pytest.raises(InputError) as err:
            read_constraints(path)
        assert "line 1" in str(err.value), why
    path.write_text("{not json\n")
    with pytest.raises(InputError, match="not JSON"):
        read_constraints(path)


def test_pyxtal_sample_command_round_trip(tmp_path) -> None:
    """Sample with PyXtal through the command function; CIFs carry the symmetry, index links them."""
    from pymatgen.core import Structure

    from xtalagent.structure_gen.checks import detect_sites
    from xtalagent.structure_gen.commands import sample_command
    from xtalagent.structure_gen.settings import SamplerSettings

    lines = [
        {
            "spacegroup": 194,
            "sites": [{"element": "Sc", "wyckoff": "2c"}, {"element": "Ni", "wyckoff": "6h"}],
            "band_gap": 0.0,
        },
        {
            "id": 7,
            "candidates": [
                {
                    "spacegroup": 225,
                    "formula": "NaCl",
                    "score": 0.9,
                    "sites": [{"element": "Na", "wyckoff": "a"}, {"element": "Cl", "wyckoff": "b"}],
                }
            ],
        },
    ]
    src = tmp_path / "c.jsonl"
    src.write_text("".join(json.dumps(x) + "\n" for x in lines))
    settings = SamplerSettings(sampler="pyxtal", seed=1)
    summary = sample_command(src, n=2, output=tmp_path / "out", settings=settings, echo=lambda s: None)
    assert summary == {"index": str(tmp_path / "out" / "index.jsonl"), "ok": 4, "failed": 0, "constraints": 2}
    rows = [json.loads(x) for x in (tmp_path / "out" / "index.jsonl").read_text().splitlines()]
    assert {r["spacegroup"] for r in rows} == {194, 225} and rows[-1]["id"] == "7"
    for row in rows:
        text = (tmp_path / "out" / row["cif"]).read_text()
        assert "_symmetry_space_group_name_H-M" in text or "_space_group_name_H-M_alt" in text
        structure = Structure.from_str(text, fmt="cif")
        assert detect_sites(structure)[0] == row["spacegroup"]
    assert (tmp_path / "out" / "index.csv").exists()


def _tiny_model(examples):
    from xtalagent.structure_gen.model import CrystalDiffusion, ModelConfig, lattice_stats

    mean, std = lattice_stats(np.stack([e.lattice for e in examples]), np.stack([e.lattice_mask for e in examples]))
    return CrystalDiffusion(
        ModelConfig(hidden=32, layers=2, n_fourier=4, timesteps=20, lattice_mean=mean, lattice_std=std)
    )


def test_training_steps_reduce_loss(fixture_dataset) -> None:
    from xtalagent.data import load_records
    from xtalagent.structure_gen.featurize import collate, example_from_record

    torch.manual_seed(0)
    records = [r for r in load_records(fixture_dataset) if r.natoms <= 16][:4]
    examples = [example_from_record(r) for r in records]
    model = _tiny_model(examples)
    batch = collate(examples)

    def fixed_loss() -> float:
        state = torch.random.get_rng_state()
        torch.manual_seed(123)
        with torch.no_grad():
            value = float(sum(model.loss(batch, prop_dropout=0.0)[0] for _ in range(4)) / 4)
        torch.random.set_rng_state(state)
        return value

    before = fixed_loss()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(100):
        loss, _ = model.loss(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert fixed_loss() < 0.9 * before


def test_diffusion_samples_carry_the_requested_symmetry(fixture_dataset, tmp_path) -> None:
    """Even an untrained model returns only structures in the requested group and sites."""
    from xtalagent.data import load_records
    from xtalagent.structure_gen.featurize import example_from_record
    from xtalagent.structure_gen.samplers import DiffusionSampler, generate
    from xtalagent.structure_gen.train import load_model, save_slim

    records = [r for r in load_records(fixture_dataset) if r.spacegroup in (225, 99, 221, 194)] or load_records(
        fixture_dataset
    )[:2]
    model = _tiny_model([example_from_record(r) for r in records])
    save_slim(model, tmp_path / "tiny.pt")
    sampler = DiffusionSampler(checkpoint=tmp_path / "tiny.pt", seed=0)
    assert isinstance(load_model(tmp_path / "tiny.pt"), type(model))
    constraints = [
        SymmetryConstraint(
            spacegroup=225, sites=[{"element": "Na", "wyckoff": "4a"}, {"element": "Cl", "wyckoff": "4b"}]
        ),
        SymmetryConstraint(
            spacegroup=99,
            sites=[
                {"element": "Ba", "wyckoff": "1a"},
                {"element": "Ti", "wyckoff": "1b"},
                {"element": "O", "wyckoff": "1b"},
                {"element": "O", "wyckoff": "2c"},
            ],
            band_gap=2.0,
        ),
    ]
    results = generate(constraints, n=2, sampler=sampler, max_attempts=10)
    assert len(results) == 4
    for res in results:
        if res.ok:  # returned structures are always checked ones
            assert res.check.spacegroup == constraints[res.constraint_index].spacegroup and res.check.sites_match
        else:
            assert res.structure is None and res.failures
    assert any(r.ok for r in results)


def test_checks_reject_overlapping_atoms() -> None:
    """Atoms closer than MIN_COVALENT_RATIO x their covalent radii are refused, real NaCl is not."""
    from xtalagent import config
    from xtalagent.structure_gen.checks import closest_contact

    nacl = SymmetryConstraint(
        spacegroup=225, sites=[{"element": "Na", "wyckoff": "4a"}, {"element": "Cl", "wyckoff": "4b"}]
    )
    real = build_structure(nacl, [5.64] * 3 + [90] * 3, [[], []])
    ratio, pair = closest_contact(real)
    assert ratio > 1.0 and pair.startswith("Na-Cl")
    squeezed = build_structure(nacl, [3.0] * 3 + [90] * 3, [[], []])  # Na-Cl 1.50 Å: above 0.5 Å, still overlap
    result = check_structure(squeezed, nacl)
    assert not result.ok and result.min_distance > config.MIN_INTERATOMIC_DISTANCE
    assert any("overlap" in r for r in result.reasons) and len(result.reasons) == 1
    assert check_structure(squeezed, nacl, min_covalent_ratio=0.0).ok


def test_sampling_temperature_scales_the_injected_noise(fixture_dataset) -> None:
    from xtalagent.data import load_records
    from xtalagent.structure_gen.featurize import collate, example_from_constraint, example_from_record
    from xtalagent.structure_gen.samplers import DiffusionSampler

    records = load_records(fixture_dataset)[:3]
    model = _tiny_model([example_from_record(r) for r in records])
    model.eval()
    batch = collate([example_from_constraint(r.constraint()) for r in records])

    def draw(temperature: float) -> torch.Tensor:
        lat, free = model.sample(batch, generator=torch.Generator().manual_seed(7), temperature=temperature)
        return torch.cat([lat.flatten(), free.flatten()])

    assert torch.equal(draw(0.5), draw(0.5))
    assert not torch.allclose(draw(0.0), draw(1.0))
    with pytest.raises(InputError, match="temperature"):
        DiffusionSampler(model=model, temperature=-1.0)
    with pytest.raises(InputError, match="steps"):
        DiffusionSampler(model=model, steps=0)


@pytest.mark.slow
def test_training_can_start_from_a_checkpoint(fixture_dataset, tmp_path) -> None:
    """init_from loads the weights (here with lr 0, so they come out unchanged) with a fresh optimiser."""
    from xtalagent.data import load_records
    from xtalagent.structure_gen.featurize import example_from_record
    from xtalagent.structure_gen.train import DiffusionTrainConfig, load_model, save_slim, train

    records = [r for r in load_records(fixture_dataset) if r.natoms <= 16][:4]
    start = _tiny_model([example_from_record(r) for r in records])
    save_slim(start, tmp_path / "start.pt")
    cfg = DiffusionTrainConfig(
        data=str(fixture_dataset),
        out_dir=str(tmp_path / "run"),
        init_from=str(tmp_path / "start.pt"),
        lr=0.0,
        max_steps=2,
        batch_size=2,
        max_atoms=16,
        eval_every=0,
        val_fraction=0.0,
    )
    with pytest.raises(InputError, match="not found"):
        train(
            DiffusionTrainConfig(
                data=str(fixture_dataset), out_dir=str(tmp_path / "x"), init_from=str(tmp_path / "no.pt")
            )
        )
    best = load_model(train(cfg))
    assert best.cfg.hidden == 32  # the checkpoint's architecture, not DiffusionTrainConfig's default
    for (name, a), b in zip(start.state_dict().items(), best.state_dict().values()):
        assert torch.equal(a, b), name


def test_shard_reports_merge_into_one(tmp_path) -> None:
    from xtalagent.structure_gen.evaluate import merge_shards

    def shard(i: int, rms: list) -> str:
        rows = [{"id": f"c{i}{j}", "spacegroup": 225, "formula": "NaCl", "rms": [x]} for j, x in enumerate(rms)]
        n, hits = len(rms), [x for x in rms if x is not None]
        res = {
            "sampler": "pyxtal",
            "n_crystals": n,
            "k": 1,
            "match_rate_at_1": len(hits) / n,
            "validity_first_attempt": 1.0,
            "returned_fraction": 1.0,
            "failed_after_retries": 0,
            "symmetry_agreement_of_returned": 1.0,
            "generation_seconds": 2.0 * n,
        }
        path = tmp_path / f"r.shard{i}of2.json"
        path.write_text(json.dumps({"n_crystals": n, "shard": [i, 2], "command": "x", "results": {"pyxtal": res}}))
        path.with_suffix(".details.json").write_text(json.dumps({"pyxtal": rows}))
        return str(path)

    merged = merge_shards([shard(0, [0.1, None, 0.3]), shard(1, [None])], tmp_path / "r.json")
    res = merged["results"]["pyxtal"]
    assert merged["n_crystals"] == 4 and res["match_rate_at_1"] == 0.5 and abs(res["rmse_at_1"] - 0.2) < 1e-12
    assert res["seconds_per_structure"] == 2.0
    assert len(json.loads((tmp_path / "r.details.json").read_text())["pyxtal"]) == 4
    with pytest.raises(InputError, match="shards"):
        merge_shards([shard(0, [0.1])])


def test_eval_csp_report_and_shards(fixture_dataset, tmp_path) -> None:
    """The CSP report on fixture crystals: rates in range, per-crystal rows beside it, shards split the selection."""
    from xtalagent.structure_gen.evaluate import run_eval_csp

    whole = run_eval_csp(fixture_dataset, None, ("pyxtal",), n=5, k=2, seed=0, max_atoms=12, output=tmp_path / "r.json")
    res = whole["results"]["pyxtal"]
    assert res["n_crystals"] == 5 and 0.0 <= res["match_rate_at_1"] <= res["match_rate_at_2"] <= 1.0
    assert res["symmetry_agreement_of_returned"] in (None, 1.0)
    rows = json.loads((tmp_path / "r.details.json").read_text())["pyxtal"]
    assert len(rows) == 5 and all(len(row["rms"]) == 2 for row in rows)
    ids = [row["id"] for row in rows]
    for i in (0, 1):
        out = tmp_path / f"s{i}.json"
        half = run_eval_csp(fixture_dataset, None, ("pyxtal",), n=5, k=1, max_atoms=12, shard=(i, 2), output=out)
        assert half["shard"] == [i, 2] and half["results"]["pyxtal"]["n_crystals"] == (3, 2)[i]
        # the shards are the even and the odd crystals of the same selection
        assert [row["id"] for row in json.loads(out.with_suffix(".details.json").read_text())["pyxtal"]] == ids[i::2]


def test_eval_csp_splits_match_rates_by_crystal_system(fixture_dataset, tmp_path, capsys) -> None:
    """eval-csp through the CLI: JSON and printed table carry one row per crystal system, whose
    counts add up to the crystals evaluated and whose matches add up to match@1."""
    from xtalagent.agent.cli import main
    from xtalagent.structure_gen.evaluate import CRYSTAL_SYSTEMS
    from xtalagent.symmetry import crystal_system

    out = tmp_path / "csp.json"
    args = ["structures", "eval-csp", fixture_dataset, "--split", "all", "--sampler", "pyxtal", "-n", "8", "-k", "1"]
    assert main([str(a) for a in args] + ["-o", str(out), "--seed", "3"]) == 0
    printed = capsys.readouterr().out
    res = json.loads(out.read_text())["results"]["pyxtal"]
    rows = res["by_crystal_system"]
    assert list(rows) == list(CRYSTAL_SYSTEMS)
    assert sum(r["n"] for r in rows.values()) == 8
    assert sum(r["matched"] for r in rows.values()) == round(res["match_rate_at_1"] * 8)
    details = json.loads(out.with_suffix(".details.json").read_text())["pyxtal"]
    for name, row in rows.items():
        mine = [d for d in details if crystal_system(d["spacegroup"]) == name]
        assert row["n"] == len(mine) and row["matched"] == sum(d["rms"][0] is not None for d in mine)
        assert row["match_rate_at_1"] is None if not mine else row["match_rate_at_1"] == row["matched"] / row["n"]
    assert "crystal system" in printed and "s.e." in printed
    for name, row in rows.items():  # one printed line per system with its count and matches
        assert any(line.split()[:3] == [name, str(row["n"]), str(row["matched"])] for line in printed.splitlines())


def test_eval_csp_can_select_crystal_systems(fixture_dataset) -> None:
    from xtalagent.structure_gen.evaluate import select_records
    from xtalagent.symmetry import crystal_system

    cubic = select_records(fixture_dataset, None, None, crystal_systems=("cubic",))
    assert cubic and all(crystal_system(r.spacegroup) == "cubic" for r in cubic)
    with pytest.raises(InputError, match="crystal system"):
        select_records(fixture_dataset, None, None, crystal_systems=("cubical",))


PEROVSKITE = {
    "spacegroup": 221,
    "sites": [
        {"element": "Sr", "wyckoff": "1a"},
        {"element": "Ti", "wyckoff": "1b"},
        {"element": "O", "wyckoff": "3c"},
    ],
}


def test_domain_routes_constraints_to_the_model_that_knows_them(fixture_dataset, tmp_path) -> None:
    """A specialist's domain built from its training rows holds their site patterns (any elements
    it saw), not other groups, sizes or elements; routed constraints lose the targets it cannot read;
    each constraint is sampled by its own model and the results come back in order."""
    from pymatgen.core import Composition

    from xtalagent.data import load_records
    from xtalagent.structure_gen.featurize import example_from_record
    from xtalagent.structure_gen.routing import ModelDomain, RoutedDiffusionSampler, domain_path, main
    from xtalagent.structure_gen.samplers import DiffusionSampler
    from xtalagent.structure_gen.train import save_slim

    records = [r for r in load_records(fixture_dataset) if r.natoms <= 16]
    model = _tiny_model([example_from_record(r) for r in records])
    save_slim(model, tmp_path / "general.pt")
    save_slim(model, tmp_path / "special.pt")
    main([str(fixture_dataset), str(tmp_path / "special.pt"), "--conditioning", "band_gap"])
    domain = ModelDomain.load(domain_path(tmp_path / "special.pt"))
    assert domain.checkpoint == tmp_path / "special.pt" and domain.conditioning == ("band_gap",)
    trained = [r for r in load_records(fixture_dataset) if r.natoms <= 60]
    inside = [r for r in trained if domain.contains(r.constraint())]
    assert len(inside) >= 0.9 * len(trained)  # all but the trainer's 5 % held-out share
    seen = inside[0].constraint()
    assert domain.contains(seen)
    swapped = {seen.sites[0].element: "Og"}  # an element the specialist never saw
    assert not domain.contains(
        SymmetryConstraint(
            spacegroup=seen.spacegroup,
            sites=[{"element": swapped.get(s.element, s.element), "wyckoff": s.wyckoff} for s in seen.sites],
        )
    )
    targeted = seen.model_copy(update={"band_gap": 1.0, "formation_energy": -1.0})
    assert domain.adapt(targeted).band_gap == 1.0 and domain.adapt(targeted).formation_energy is None

    outside = SymmetryConstraint(spacegroup=1, sites=[{"element": e, "wyckoff": "1a"} for e in ("Na", "Cl")] * 3)
    assert not domain.contains(outside)
    router = RoutedDiffusionSampler(tmp_path / "general.pt", [domain], seed=0, steps=5)
    assert router.checkpoint_for(seen) == tmp_path / "special.pt"
    assert router.checkpoint_for(outside) == tmp_path / "general.pt"
    asked = [outside, seen, outside]
    made = router.propose(asked)
    assert set(router._samplers) == {tmp_path / "special.pt", tmp_path / "general.pt"}
    assert all(isinstance(s, DiffusionSampler) for s in router._samplers.values())
    for constraint, structure in zip(asked, made):
        assert structure is None or structure.composition == Composition(constraint.formula)


@pytest.mark.slow
def test_default_sampler_routes_perovskites_to_the_perov_5_model(tmp_path, capsys) -> None:
    """Without --checkpoint, 'structures sample' sends an ABX3 perovskite cell to the shipped Perov-5
    model (its domain file says it trained on such cells) and rock salt to the general MP model."""
    from xtalagent.agent.cli import main
    from xtalagent.structure_gen.routing import shipped_domains
    from xtalagent.structure_gen.samplers import CHECKPOINT_DIR, make_sampler

    if not (CHECKPOINT_DIR / "mp_20.pt").exists() or not any(
        d.checkpoint.name == "perov_5.pt" for d in shipped_domains()
    ):
        pytest.skip("shipped checkpoints not present")
    nacl = {"spacegroup": 225, "sites": [{"element": "Na", "wyckoff": "4a"}, {"element": "Cl", "wyckoff": "4b"}]}
    src = tmp_path / "c.jsonl"
    src.write_text(json.dumps(PEROVSKITE | {"band_gap": 3.0}) + "\n" + json.dumps(nacl) + "\n")
    code = main(["structures", "sample", str(src), "-n", "1", "--steps", "5", "--seed", "0", "-o", str(tmp_path / "o")])
    printed = capsys.readouterr().out
    assert code == 0
    assert "perov_5.pt for 1 constraint(s)" in printed and "mp_20.pt for 1 constraint(s)" in printed
    named = make_sampler("diffusion", checkpoint=CHECKPOINT_DIR / "mp_20.pt", steps=5)
    assert not hasattr(named, "checkpoint_for")  # a named checkpoint is used for everything


def test_corrector_options_change_the_sample_and_leave_the_model_alone(fixture_dataset) -> None:
    from xtalagent.data import load_records
    from xtalagent.structure_gen.featurize import example_from_record
    from xtalagent.structure_gen.samplers import DiffusionSampler

    records = load_records(fixture_dataset)[:3]
    model = _tiny_model([example_from_record(r) for r in records])
    model.eval()
    constraints = [r.constraint() for r in records]

    def lattices(**options) -> list:
        made = DiffusionSampler(model=model, seed=3, steps=10, **options).sample_raw(constraints)
        return [None if s is None else round(s.volume, 6) for s in made]

    base = lattices()
    assert lattices() == base
    assert lattices(corrector=False) != base
    assert lattices(step_lr=1e-2) != base
    assert model.cfg.step_lr == 1e-5  # the override was for that call only
    with pytest.raises(InputError, match="step size"):
        DiffusionSampler(model=model, step_lr=0.0)


def test_a_cell_with_nan_lengths_fails_the_checks_instead_of_raising() -> None:
    """A diverged diffusion sample can carry NaN lengths; pymatgen's distance matrix then raises
    LinAlgError, which used to stop a whole eval-csp run. It is now one failed check."""
    import numpy as np
    from pymatgen.core import Lattice, Structure

    from xtalagent.records import SymmetryConstraint
    from xtalagent.structure_gen.checks import check_structure

    constraint = SymmetryConstraint.model_validate(
        {"spacegroup": 1, "sites": [{"element": "Na", "wyckoff": "1a"}, {"element": "Cl", "wyckoff": "1a"}]}
    )
    broken = Structure(Lattice([[5, 0, 0], [0, 5, 0], [0, 0, np.nan]]), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    result = check_structure(broken, constraint)
    assert not result.ok and result.reasons[0].startswith("degenerate cell")
