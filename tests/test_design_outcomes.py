"""What a scientist gets from a design round: every checkable wish checked, known phases beside the
candidates, the ranking by wishes met, and the release/eval knowledge variants kept apart."""

from __future__ import annotations

from pathlib import Path

import pytest

from xtalagent.agent.pipeline import (
    DesignRun,
    DesignSettings,
    known_phases,
    pbe_request,
    rank_rows,
    target_flags,
    wish_window,
)
from xtalagent.agent.request import DesignRequest, PropertyTarget
from xtalagent.errors import InputError

FAST = DesignSettings(top_k=2, prerelax="off", relax_max_steps=3, potential="chgnet", sampler="pyxtal")


def test_a_bare_value_is_checked_in_a_stated_window() -> None:
    assert wish_window(PropertyTarget(value=3.0), 0.5) == (2.5, 3.5)
    assert wish_window(PropertyTarget(value=3.0, tolerance=0.2), 0.5) == pytest.approx((2.8, 3.2))
    assert wish_window(PropertyTarget(minimum=3.0), 0.5) == (3.0, None)
    assert wish_window(None, 0.5) is None


def test_a_measured_gap_moves_only_when_asked() -> None:
    request = DesignRequest(elements=["Ti", "O"], band_gap=PropertyTarget(value=3.0))
    assert pbe_request(request, 0.0) is request
    moved = pbe_request(request, 1.0)
    assert moved.band_gap.value == 2.0 and request.band_gap.value == 3.0
    assert (
        pbe_request(DesignRequest(elements=["Ti", "O"], band_gap=PropertyTarget(maximum=0.5)), 1.0).band_gap.maximum
        == 0
    )


def test_target_flags_check_band_gap_and_formation_energy_windows() -> None:
    request = DesignRequest(
        elements=["Ti", "O"], band_gap=PropertyTarget(value=3.0), formation_energy=PropertyTarget(value=-3.4)
    )
    settings = DesignSettings()
    inside = target_flags({"band_gap": 3.3, "e_form": -3.45}, request, settings)
    assert inside["meets_band_gap"] is True and inside["meets_formation_energy"] is True
    assert inside["meets_all_checked"] is True
    outside = target_flags({"band_gap": 0.0, "e_form": -3.45}, request, settings)
    assert outside["meets_band_gap"] is False and outside["meets_all_checked"] is False
    unknown = target_flags({"e_form": -2.0}, request, settings)
    assert unknown["meets_band_gap"] is None and unknown["meets_formation_energy"] is False


def test_candidates_meeting_every_wish_rank_first_then_by_e_hull() -> None:
    rows = [
        {"id": "A", "rank": 1, "e_hull": 0.00, "meets_all_checked": False},
        {"id": "B", "rank": 2, "e_hull": 0.20, "meets_all_checked": True},
        {"id": "C", "rank": 3, "e_hull": 0.05, "meets_all_checked": True},
        {"id": "D", "rank": None, "e_hull": None, "meets_all_checked": None},
    ]
    assert [r["id"] for r in rank_rows(rows)] == ["C", "B", "A", "D"]
    assert [r["design_rank"] for r in rows if r["id"] != "D"] == [3, 2, 1]


def test_structures_go_to_the_best_constraint_every_other_slot() -> None:
    from xtalagent.agent.pipeline import slot_order

    assert [slot_order(5, i) for i in range(10)] == [0, 1, 0, 2, 0, 3, 0, 4, 0, 1]
    assert [slot_order(1, i) for i in range(3)] == [0, 0, 0]
    assert [slot_order(5, i) for i in range(5, 8)] == [3, 0, 4]  # "5 more" continues the same order


def test_a_cell_formula_states_its_own_size() -> None:
    big = DesignRequest(formula="Li4Fe4P4O16")
    assert big.max_atoms == 28
    with pytest.raises(ValueError, match="more than the limit of 20"):  # a stated limit still holds
        DesignRequest(formula="Li4Fe4P4O16", max_atoms=20)


def test_known_phases_hold_every_split_for_users_and_train_only_for_benchmarks() -> None:
    release = known_phases(DesignRequest(composition="TiO2"), "release", limit=50)
    assert release and {k.reduced_formula for k in release} == {"TiO2"}
    assert "test" in {k.split for k in release}  # rutile/anatase live in MP-20's test split
    evaluation = known_phases(DesignRequest(composition="TiO2"), "eval", limit=50)
    assert {k.split for k in evaluation} <= {"train"} and len(evaluation) < len(release)
    ti_o = known_phases(DesignRequest(elements=["Ti", "O"]), "release", limit=8)
    assert len(ti_o) == 8 and all(k.elements == frozenset({"Ti", "O"}) for k in ti_o)
    hulls = [k.e_above_hull for k in ti_o]
    assert hulls == sorted(hulls)
    with pytest.raises(InputError):
        known_phases(DesignRequest(composition="TiO2"), "everything")


@pytest.mark.slow
def test_neighbour_prior_release_adds_lookup_crystals_eval_does_not() -> None:
    from xtalagent import config
    from xtalagent.finetune.neighbour_prior import LOOKUP_FILE, load_prior

    folder = Path(config.CONSTRAINT_MODEL_DIR)
    assert (folder / LOOKUP_FILE).is_file()
    release, evaluation = load_prior(folder, "release"), load_prior(folder, "eval")
    assert len(release.entries) > len(evaluation.entries)
    assert any(e[0] in ("Ti2O4", "Ti4O8") for e in release.entries)  # TiO2 cells: val/test only
    assert not any(e[0] in ("Ti2O4", "Ti4O8") for e in evaluation.entries)


def test_report_names_the_band_gap_model_and_shows_known_phases(tmp_path) -> None:
    from xtalagent.agent.report import report_text

    request = DesignRequest(elements=["Ti", "O"], band_gap=PropertyTarget(value=3.0), stable=True)
    run = DesignRun(Path(tmp_path), request, FAST)
    run.rows = [
        {"id": "S001", "design_rank": 1, "formula": "Ti2O3", "e_form": -3.2, "e_hull": 0.05, "stable": True,
         "band_gap": 2.9, "band_gap_std": 0.2, "meets_band_gap": True, "meets_stability": True}
    ]  # fmt: skip
    run.known_rows = [
        {"id": "K1", "source": "known:mp-390", "formula": "TiO2", "requested_spacegroup": 141,
         "final_spacegroup": 141, "e_form": -3.5, "e_hull": 0.0, "band_gap": 2.1, "band_gap_std": 0.1,
         "db_formation_energy": -3.51, "db_e_hull": 0.006, "db_band_gap": 2.05, "meets_band_gap": False}
    ]  # fmt: skip
    run.band_gap_model, run.band_gap_metrics = "test model", {"mae": 0.3, "n": 500, "split": "test"}
    run.screen_summary = {"provenance": {"potential": "chgnet", "checkpoint": "0.3.0"}, "stable_threshold": 0.1}
    text = report_text(run)
    assert "test model" in text and "MAE 0.30 eV" in text and "PBE" in text and "--band-gap-offset" in text
    assert "## Known phases" in text and "known:mp-390" in text and "2.90 ± 0.20" in text
    assert "checked in [2.5, 3.5] eV" in text
    assert "gap, stable (2/2)" in text


@pytest.mark.slow
def test_design_shows_known_phases_and_checks_the_band_gap(tmp_path) -> None:
    """Through the CLI body: a TiO2 request lists the known TiO2 phases as reference rows, relaxed by
    the same potential, and every row has a predicted band gap when the model ships."""
    import pandas as pd

    from xtalagent.agent.commands import design_command
    from xtalagent.tools.band_gap import default_band_gap_model

    settings = FAST.model_copy(update={"known_phases": 2})
    out = tmp_path / "run"
    run = design_command("TiO2 with a band gap near 3 eV", out, n=2, settings=settings)
    frame = pd.read_csv(out / "summary.csv")
    known = frame[frame["kind"] == "known"]
    assert len(known) == 2 and all(known["source"].str.startswith("known:mp-"))
    assert set(known["formula"]) == {"TiO2"} and known["e_hull"].notna().all()
    assert known["db_band_gap"].notna().all()
    assert (frame[frame["kind"] == "candidate"]["source"] == "generated").all()
    assert all((out / c).is_file() for c in known["cif"])
    if default_band_gap_model() is not None:
        relaxed = frame[frame["e_hull"].notna()]
        assert relaxed["band_gap"].notna().all() and (relaxed["band_gap_std"] >= 0).all()
        assert relaxed["meets_band_gap"].notna().all()
        assert run.band_gap_model and run.band_gap_model in (out / "report.md").read_text()


# --- the new options and the end-to-end benchmark, through the CLI itself ---------------------------------
@pytest.fixture(scope="module")
def test_split_dataset(tmp_path_factory) -> Path:
    """The shipped fixture crystals with two small ones moved to a 'test' split."""
    import pandas as pd

    from xtalagent.data import build_dataset

    folder = tmp_path_factory.mktemp("e2e")
    frame = pd.read_csv(Path(__file__).parent / "fixtures" / "crystals.csv")
    small = frame.sort_values("n_sites").index[:2]
    frame.loc[small, "split"] = "test"
    frame.to_csv(folder / "crystals.csv", index=False)
    out = folder / "crystals.parquet"
    build_dataset([folder / "crystals.csv"], out, workers=1, progress=False)
    return out


@pytest.mark.parametrize(
    "args, message",
    [
        (["design", "TiO2", "--variant", "everything"], "variant"),
        (["design", "TiO2", "--band-gap-window", "0"], "band_gap_window"),
        (["screen", "tests/fixtures/cifs", "--band-gap-min", "3", "--band-gap-max", "1"], "window is empty"),
        (["eval", "design", "missing.parquet"], "no such dataset"),
        (["eval", "design", "missing.parquet", "--pattern", "ratio"], "--pattern must be one of"),
        (["eval", "design", "missing.parquet", "--pattern", "elements", "--reference", "true"], "cell-formula"),
        (["eval", "design", "missing.parquet", "--shard", "2/2"], "--shard"),
        (["eval", "design", "missing.parquet", "--split", "train"], "--split must be one of"),
        (["eval", "design", "missing.parquet", "--oversample", "9"], "--oversample"),
        (["design", "TiO2", "--oversample", "0"], "--oversample"),
    ],
)
def test_new_options_refuse_bad_values_in_one_line(tmp_path, capsys, args, message) -> None:
    from xtalagent.agent.cli import main

    assert main([*args, "-o", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_eval_design_through_the_cli(tmp_path, test_split_dataset, capsys) -> None:
    """True constraints on a known test crystal: the run names its variant and proxy, counts every
    candidate, and finds the crystal again (rediscovery)."""
    import json

    from xtalagent.agent.cli import main

    args = ["eval", "design", str(test_split_dataset), "-o", str(tmp_path), "-n", "2", "--candidates", "2"]
    assert main([*args, "--reference", "true", "--relax-steps", "5"]) == 0
    result = json.loads((tmp_path / "design_e2e_formula_formation_energy_true.json").read_text())
    summary = result["summary"]
    assert result["variant"].startswith("eval") and "chgnet" in result["property_proxy"].lower()
    assert summary["requests"] == 2 and summary["refused"] == 0 and summary["candidates_relaxed"] >= 2
    assert summary["composition_precision"] == 1.0 and summary["rediscovery_rate"] > 0
    assert "rediscovery_rate" in capsys.readouterr().out


def test_a_smaller_rerun_leaves_no_stale_structure_files(tmp_path) -> None:
    from xtalagent.agent.pipeline import prune_stale

    for name in ("structures/S001_C1_sg62_TiO2.cif", "structures/S003_C2_sg14_TiO2.cif",
                 "structures/S003_prerelaxed.cif", "cache/S001.json", "cache/S003.json", "cache/K1.json"):  # fmt: skip
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    removed = prune_stale(tmp_path, {"S001", "S002"})
    assert sorted(p.name for p in removed) == ["S003.json", "S003_C2_sg14_TiO2.cif", "S003_prerelaxed.cif"]
    assert (tmp_path / "structures/S001_C1_sg62_TiO2.cif").exists() and (tmp_path / "cache/K1.json").exists()


def test_a_symmetry_search_that_throws_fails_the_check_not_the_run(monkeypatch) -> None:
    """spglib raises 'too close distance between atoms' on some raw samples: that is a failed
    structure (retried or reported), never a crashed design round (seen on Li4V8F20)."""
    import spglib
    from pymatgen.core import Lattice, Structure

    from xtalagent.records import SymmetryConstraint
    from xtalagent.structure_gen.checks import check_structure

    def throw(*_args, **_kwargs):
        raise spglib.error.SpglibError("too close distance between atoms")

    monkeypatch.setattr(spglib, "get_symmetry_dataset", throw)
    structure = Structure(Lattice.cubic(5.6), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    sites = [{"element": "Na", "wyckoff": "1a"}, {"element": "Cl", "wyckoff": "1b"}]
    result = check_structure(structure, SymmetryConstraint.model_validate({"spacegroup": 221, "sites": sites}))
    assert not result.ok and "detected space group 0" in "; ".join(result.reasons)


@pytest.mark.parametrize("use_prior", [True, False])
def test_chat_report_names_the_voters_that_really_ran(tmp_path, tiny_model, use_prior) -> None:
    """The round's report is written from what the loaded predictor did, not from the settings."""
    from xtalagent.agent.report import report_text
    from xtalagent.agent.session import DesignSession
    from xtalagent.finetune.predictor import load_predictor

    predictor = load_predictor(tiny_model, use_prior=use_prior)
    session = DesignSession(tmp_path / "chat", FAST, predictor=predictor)
    session.propose_constraints(DesignRequest(composition="TiO2"))
    text = report_text(session.run)
    assert ("neighbour prior" in text) is use_prior
    assert ("composition classifier" in text) is use_prior
    assert "log-probability" in text


def test_triage_prefers_the_formation_energy_window_then_low_energy() -> None:
    from xtalagent.agent.screening import triage_order

    wish = DesignRequest(formula="TiO2", formation_energy=PropertyTarget(value=-3.4))
    settings = DesignSettings(formation_energy_window=0.1)
    # inside the window first (lowest energy among them), then by distance to the window
    assert triage_order([-3.0, -3.45, -3.35, -3.9, -3.6], wish, settings) == [1, 2, 4, 0, 3]
    # no formation-energy wish: the lowest energy above the hull first (else the lowest formation energy)
    assert triage_order([-3.0, -3.45, -3.9], DesignRequest(formula="TiO2"), settings) == [2, 1, 0]
    elements = DesignRequest(elements=["Ti", "O"])
    assert triage_order([-3.5, -3.2, -2.0], elements, settings, e_hulls=[0.3, 0.0, 0.1]) == [1, 2, 0]


@pytest.mark.slow
def test_an_oversampled_round_relaxes_as_many_as_asked(tmp_path) -> None:
    """oversample 2: twice the structures are generated, the single-point triage keeps the asked
    number for relaxation, the report says so, and a re-run reads the triage back."""
    from xtalagent.agent.pipeline import run_design

    settings = FAST.model_copy(update={"oversample": 2, "known_phases": 0, "band_gap": False})
    request = DesignRequest(formula="TiO2", formation_energy=PropertyTarget(value=-3.4), n_candidates=2)
    run = run_design(request, tmp_path / "run", settings)
    ok = [s for s in run.structures if s.ok]
    assert len(run.structures) == 4 and len(ok) >= 3
    assert all(s.triage_e_form is not None for s in ok)
    assert sum(s.selected for s in ok) == 2
    relaxed = [r for r in run.rows if r.get("design_rank") is not None]
    assert sorted(r["id"] for r in relaxed) == sorted(s.id for s in ok if s.selected)
    assert "picked 2 of" in (tmp_path / "run" / "report.md").read_text()
    again = run_design(request, tmp_path / "run", settings)
    assert [s.model_dump() for s in again.structures] == [s.model_dump() for s in run.structures]


def test_design_routes_perovskites_to_the_perov_5_model(tmp_path, caplog) -> None:
    """design's default sampler takes no fixed checkpoint, so a cubic ABX3 perovskite constraint is
    sampled by the Perov-5 model (inside its training domain) and rock salt by the general model."""
    from xtalagent.agent.pipeline import ConstraintChoice, choose_sampler, generate_structures
    from xtalagent.structure_gen.routing import shipped_domains
    from xtalagent.structure_gen.samplers import CHECKPOINT_DIR

    if not (CHECKPOINT_DIR / "mp_20.pt").exists() or not shipped_domains():
        pytest.skip("shipped checkpoints not present")
    name, checkpoint, note = choose_sampler(DesignSettings())
    assert (name, checkpoint) == ("diffusion", None) and "perov_5.pt" in note
    assert choose_sampler(DesignSettings(diffusion_checkpoint="x.pt"))[1] == "x.pt"
    perovskite = ConstraintChoice(
        id="C1", spacegroup=221, spacegroup_symbol="Pm-3m", crystal_system="cubic", formula="SrTiO3", score=0.0,
        sites=[{"element": "Sr", "wyckoff": "1a"}, {"element": "Ti", "wyckoff": "1b"},
               {"element": "O", "wyckoff": "3c"}],
    )  # fmt: skip
    caplog.set_level("INFO", logger="xtalagent.structure_gen.routing")
    request = DesignRequest(formula="SrTiO3")
    made = generate_structures([perovskite], 1, tmp_path / "a", DesignSettings(prototypes=0), request)
    assert made[0].ok and made[0].spacegroup == 221 and made[0].prototype is None
    assert "to perov_5.pt" in caplog.text and "to mp_20.pt" not in caplog.text
    # by default the first structure is the closest known prototype (cubic SrTiO3 is known), the
    # second goes to the model the router picks
    caplog.clear()
    made = generate_structures([perovskite], 2, tmp_path / "b", DesignSettings(), request)
    assert made[0].ok and made[0].prototype and made[1].ok and made[1].prototype is None
    assert "to perov_5.pt" in caplog.text


@pytest.mark.slow
def test_design_oversample_through_the_cli(tmp_path) -> None:
    """``xtalagent design --oversample 2 -n 1``: two structures generated, the triage relaxes one,
    and the report says so."""
    import json

    from xtalagent.agent.cli import main

    out = tmp_path / "run"
    args = ["design", "exactly Ti2O4 in the cell", "-n", "1", "--oversample", "2", "--sampler", "pyxtal",
            "--relax-steps", "3", "--known-phases", "0", "--no-band-gap", "--top-k", "2", "-o", str(out)]  # fmt: skip
    assert main(args) == 0
    structures = json.loads((out / "structures.json").read_text())["items"]
    assert len(structures) == 2 and sum(s["selected"] for s in structures if s["ok"]) == 1
    assert "picked 1 of" in (out / "report.md").read_text()
