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
    run.band_gap_model, run.band_gap_metrics = "test model", {"test_mae": 0.3, "test_n": 500}
    run.screen_summary = {"provenance": {"potential": "chgnet", "checkpoint": "0.3.0"}, "stable_threshold": 0.1}
    text = report_text(run)
    assert "test model" in text and "MAE 0.30 eV" in text and "PBE" in text and "--band-gap-offset" in text
    assert "## Known phases" in text and "known:mp-390" in text and "2.90 ± 0.20" in text
    assert "checked in [2.5, 3.5] eV" in text
    assert "gap, stable (2/2)" in text


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
