"""Known prototypes as structure proposals (structure_gen/prototypes.py), on the shipped reference set."""

from __future__ import annotations

import json

import pytest

from xtalagent.records import SymmetryConstraint
from xtalagent.structure_gen.checks import check_structure
from xtalagent.structure_gen.matching import matcher
from xtalagent.structure_gen.prototypes import (
    PROTOTYPE_KEY,
    PrototypeLibrary,
    PrototypeSampler,
    pair_elements,
    shipped_library,
)
from xtalagent.structure_gen.samplers import generate, make_sampler
from xtalagent.tools.reference_set import KnownCrystal, known_crystals

ZRO2 = {
    "spacegroup": 14,
    "sites": [{"element": "Zr", "wyckoff": "4e"}, {"element": "O", "wyckoff": "4e"}, {"element": "O", "wyckoff": "4e"}],
}


def constraint(data: dict) -> SymmetryConstraint:
    return SymmetryConstraint.model_validate(data)


class CountingSampler:
    """A stand-in for the diffusion model: counts what it is asked, builds nothing."""

    name = "diffusion"

    def __init__(self) -> None:
        self.asked: list[SymmetryConstraint] = []

    def propose(self, constraints: list) -> list:
        self.asked.extend(constraints)
        return [None] * len(constraints)


def test_elements_pair_by_letters_then_mendeleev_order() -> None:
    wanted = {"Ba": ("1a",), "Ti": ("1b",), "O": ("3c",)}
    template = {"Sr": ("1a",), "Zr": ("1b",), "F": ("3c",)}
    assert pair_elements(wanted, template) == {"Ba": "Sr", "Ti": "Zr", "O": "F"}
    # two elements on the same letters: the one with the lower Mendeleev number pairs with the lower
    assert pair_elements({"Na": ("4a",), "Cl": ("4a",)}, {"K": ("4a",), "Br": ("4a",)}) == {"Na": "K", "Cl": "Br"}


def test_a_known_crystal_is_its_own_first_template_and_matches() -> None:
    """Baddeleyite ZrO2 (monoclinic, nine free coordinates) is in the shipped set: the release
    library ranks it first for its own constraint, and the transplant is the same structure."""
    library = shipped_library("release")
    known = [c for c in known_crystals(variant="release") if c.reduced_formula == "ZrO2" and c.spacegroup == 14]
    assert known, "shipped reference set lacks baddeleyite"
    first = library.templates(constraint(ZRO2))[0]
    assert first.distance == 0 and first.crystal.reduced_formula == "ZrO2"
    made = library.transplant(constraint(ZRO2), first)
    assert made.properties[PROTOTYPE_KEY] == first.crystal.id
    assert check_structure(made, constraint(ZRO2)).ok
    assert matcher().fit(made, first.crystal.structure())
    assert made.volume == pytest.approx(first.crystal.structure().volume, rel=1e-6)


def test_substituted_elements_scale_the_cell_and_keep_the_symmetry() -> None:
    """HfO2 on a ZrO2-like template: same letters, closest chemistry first, the group kept, and the
    volume follows the fitted element volumes (Hf a little smaller than Zr, far smaller than Ba)."""
    library = shipped_library("eval")
    sites = [{**s, "element": "Hf" if s["element"] == "Zr" else s["element"]} for s in ZRO2["sites"]]
    hfo2 = constraint(ZRO2 | {"sites": sites})
    ranked = library.templates(hfo2)
    assert ranked and [t.distance for t in ranked] == sorted(t.distance for t in ranked)
    made = library.transplant(hfo2, ranked[0])
    assert check_structure(made, hfo2).ok
    assert library.volumes.of("Ba") > library.volumes.of("Hf") > library.volumes.of("O")


def test_eval_library_holds_train_crystals_only() -> None:
    """Benchmarks on val/test use the eval variant: none of those crystals can be its own template."""
    eval_ids = {c.id for c in known_crystals(variant="eval")}
    held_out = [c for c in known_crystals(variant="release") if c.split in ("val", "test")]
    assert held_out and not eval_ids & {c.id for c in held_out}
    assert shipped_library("eval").size == len(eval_ids) < shipped_library("release").size


def test_sampler_takes_prototypes_first_then_the_model_and_never_repeats_one() -> None:
    library = shipped_library("eval")
    model = CountingSampler()
    sampler = PrototypeSampler(model, library, prototypes=2)
    zro2 = constraint(ZRO2)
    results = generate([zro2], n=4, sampler=sampler, max_attempts=1)
    used = [r.prototype for r in results]
    assert used[0] is not None and used[1] is not None and used[0] != used[1]
    assert used[2:] == [None, None] and len(model.asked) == 2  # the rest went to the model
    assert all(r.ok for r in results[:2])
    # a later round of the same design skips the prototypes it already used
    again = PrototypeSampler(CountingSampler(), library, prototypes=3)
    again.skip(zro2, 2)
    third = generate([zro2], n=1, sampler=again, max_attempts=1)[0]
    assert third.prototype not in used and third.prototype == library.templates(zro2)[2].crystal.id


def test_a_constraint_without_a_known_pattern_goes_to_the_model() -> None:
    sites = (("Na", "4a", ()), ("Cl", "4b", ()))
    one = KnownCrystal("x-1", "NaCl", "Na4Cl4", 225, (5.6, 5.6, 5.6, 90, 90, 90), sites, None, None, None, "train")
    library = PrototypeLibrary([one])
    model = CountingSampler()
    cscl = constraint(
        {"spacegroup": 221, "sites": [{"element": "Cs", "wyckoff": "1a"}, {"element": "Cl", "wyckoff": "1b"}]}
    )
    assert PrototypeSampler(model, library).propose([cscl]) == [None] and model.asked == [cscl]
    kcl = constraint(
        {"spacegroup": 225, "sites": [{"element": "K", "wyckoff": "4a"}, {"element": "Cl", "wyckoff": "4b"}]}
    )
    made = PrototypeSampler(CountingSampler(), library).propose([kcl])[0]
    assert made.properties[PROTOTYPE_KEY] == "x-1" and made.composition.reduced_formula == "KCl"


def test_make_sampler_wraps_the_model_only_when_asked() -> None:
    from xtalagent.errors import InputError

    assert make_sampler("pyxtal", prototypes=3).name == "pyxtal"
    with pytest.raises(InputError, match="prototypes must be 0 or more"):
        make_sampler("diffusion", prototypes=-1)


def test_structures_sample_cli_names_the_prototype_of_each_structure(tmp_path, capsys) -> None:
    """Through the CLI: the first structure takes a prototype (its id in the index), --prototypes 0
    leaves every structure to the model; a bad variant is one line."""
    from xtalagent.agent.cli import main

    src = tmp_path / "c.jsonl"
    src.write_text(json.dumps(ZRO2) + "\n")
    code = main(["structures", "sample", str(src), "-n", "2", "--steps", "3", "--seed", "0", "-o", str(tmp_path / "a")])
    assert code == 0 and "1 of them on the geometry of a known prototype" in capsys.readouterr().out
    rows = [json.loads(line) for line in (tmp_path / "a" / "index.jsonl").read_text().splitlines()]
    assert rows[0]["prototype"] and rows[1]["prototype"] is None
    code = main(
        ["structures", "sample", str(src), "-n", "1", "--steps", "3", "--prototypes", "0", "-o", str(tmp_path / "b")]
    )
    assert code == 0
    rows = [json.loads(line) for line in (tmp_path / "b" / "index.jsonl").read_text().splitlines()]
    assert rows[0]["prototype"] is None
    code = main(["structures", "sample", str(src), "--variant", "nope", "-o", str(tmp_path / "c")])
    err = capsys.readouterr().err
    assert code != 0 and "unknown knowledge variant 'nope'" in err


def test_eval_csp_cli_splits_the_first_sample_by_origin(fixture_dataset, tmp_path, capsys) -> None:
    """eval-csp through the CLI: prototypes come from train crystals only (never a crystal's own
    entry), each row names the prototype its sample took, and the split by origin adds up."""
    from xtalagent.agent.cli import main

    out = tmp_path / "csp.json"
    args = ["structures", "eval-csp", str(fixture_dataset), "--split", "val", "--sampler", "diffusion"]
    args += ["-n", "6", "-k", "1", "--steps", "2", "--seed", "1", "-o", str(out)]
    assert main(args) == 0
    report = json.loads(out.read_text())
    res = report["results"]["diffusion"]
    assert report["prototypes"] == 1 and report["prototype_variant"] == "eval" and res["prototypes"] == 1
    rows = json.loads(out.with_suffix(".details.json").read_text())["diffusion"]
    train = {c.id for c in known_crystals(variant="eval")}
    used = [row["prototype"][0] for row in rows]
    assert all(p is None or (p in train and p != row["id"]) for p, row in zip(used, rows))
    origin = res["by_origin"]
    assert (
        origin["prototype"]["n"] == sum(p is not None for p in used)
        and origin["model"]["n"] == 6 - origin["prototype"]["n"]
    )
    matched = origin["prototype"]["matched"] + origin["model"]["matched"]
    assert matched == round(res["match_rate_at_1"] * 6)
    assert main(args[:-2] + ["--prototypes", "0", "-o", str(out)]) == 0
    assert json.loads(out.read_text())["results"]["diffusion"]["by_origin"]["prototype"]["n"] == 0


def test_a_template_in_an_equivalent_labelling_is_carried_back_to_the_requested_sites() -> None:
    """P2_1/c: a known crystal with Na on 2a serves a request for K on 2b (an origin shift of the
    same arrangement): the transplant has K on 2b, passes the checks and is the template's geometry."""
    sites = (("Na", "2a", ()), ("Cl", "4e", (0.3, 0.1, 0.25)))
    one = KnownCrystal("x-2", "NaCl2", "Na2Cl4", 14, (5.0, 6.0, 7.0, 90, 100, 90), sites, None, None, None, "train")
    library = PrototypeLibrary([one])
    wanted = constraint(
        {"spacegroup": 14, "sites": [{"element": "K", "wyckoff": "2b"}, {"element": "Cl", "wyckoff": "4e"}]}
    )
    ranked = library.templates(wanted)
    assert len(ranked) == 1 and ranked[0].relabelled is not None
    made = library.transplant(wanted, ranked[0])
    assert check_structure(made, wanted).ok
    from xtalagent.structure_gen.checks import detect_sites

    assert sorted(detect_sites(made, 0.01)[1]) == [("Cl", "e"), ("K", "b")]
    template = one.structure()
    template.replace_species({"Na": "K"})
    assert matcher().fit(made, template)
