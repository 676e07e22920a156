"""The neighbour prior: which groups and site lists it favours, its file, and how it joins the ranking."""

from __future__ import annotations

import gzip
import json

import pytest

from xtalagent.errors import XtalAgentError
from xtalagent.eval.constraints import check_candidate
from xtalagent.finetune.decoding import Context
from xtalagent.finetune.neighbour_prior import NeighbourPrior, PriorPart, PriorSettings, load_prior, prototype_key
from xtalagent.finetune.predictor import ConstraintPredictor

KNOWN = [
    ("Na4Cl4", 225, "Na:4a Cl:4b"),
    ("K4Cl4", 225, "K:4a Cl:4b"),
    ("Cs1Cl1", 221, "Cs:1a Cl:1b"),
    ("Ti2O4", 136, "Ti:2a O:4f"),
    ("Ti4O8", 141, "Ti:4a O:8e"),
    ("Rb4Br4", 225, "Rb:4a Br:4b"),
]
PATTERNS = ("formula", "composition", "elements")
OFF = PriorPart(weight=0.0, k=3, scale=0.2, floor=0.01)
ELEMENTS_ONLY = {p: PriorSettings(PriorPart(weight=1.0, k=3, scale=0.2, floor=0.01), OFF) for p in PATTERNS}
PROTOTYPE_ONLY = {p: PriorSettings(OFF, PriorPart(weight=1.0, k=1, scale=5.0, floor=0.01)) for p in PATTERNS}
SITES_ONLY = {p: PriorSettings(OFF, OFF, PriorPart(weight=2.0, k=3, scale=5.0, floor=0.01)) for p in PATTERNS}
ON = ELEMENTS_ONLY
# (cell formula, group, sites, band gap eV, formation energy eV/atom)
TITANIUM_OXIDES = [
    ("Ti4O4", 225, "Ti:4a O:4b", 0.0, -2.6),  # metallic rock-salt TiO
    ("Ti2O2", 187, "Ti:1a Ti:1d O:1f O:1c", 0.0, -2.5),
    ("Ti2O4", 136, "Ti:2a O:4f", 1.8, -3.5),  # rutile
    ("Ti4O8", 141, "Ti:4a O:8e", 2.1, -3.5),  # anatase
    ("Ti4O8", 225, "Ti:4a O:8c", 1.0, -3.2),  # fluorite-type TiO2
    ("Ti4O6", 167, "Ti:4c O:6e", None, -3.3),  # corundum Ti2O3, band gap unknown
]


def test_prior_favours_groups_of_similar_compositions():
    prior = NeighbourPrior(KNOWN, ON)
    bonus = prior.bonus("formula", ("Na", "Cl"), (4, 4), [225, 221, 136, 1])
    assert bonus[225] > bonus[221] > bonus[1]
    assert bonus[136] == bonus[1]  # not among the 3 nearest


def test_formula_pattern_tells_cell_sizes_apart_but_ratio_does_not():
    prior = NeighbourPrior(KNOWN, ON)
    formula = prior.distances("formula", ("Ti", "O"), (2, 4))
    ratio = prior.distances("composition", ("Ti", "O"), (1, 2))
    ti2o4, ti4o8 = 3, 4
    assert formula[ti2o4] == 0 < formula[ti4o8]
    assert ratio[ti2o4] == ratio[ti4o8] == 0


def test_elements_pattern_matches_element_sets_and_unknown_elements_count_as_distance():
    prior = NeighbourPrior(KNOWN, ON)
    distance = prior.distances("elements", ("Ti", "O"), None)
    assert distance[3] == distance[4] == 0 and distance[0] == 4
    assert prior.distances("elements", ("Ti", "O", "Xe"), None)[3] == 1  # no known crystal has Xe


def test_zero_weight_turns_the_prior_off():
    off = {p: PriorSettings(OFF, OFF) for p in PATTERNS}
    assert set(NeighbourPrior(KNOWN, off).bonus("formula", ("Na", "Cl"), (4, 4), [225, 221]).values()) == {0.0}


def test_prototype_key_is_the_anonymous_formula_in_pettifor_order():
    # K4Br4 and Na4Cl4 share a prototype; cation before anion (lower Mendeleev number first)
    (key_a, numbers_a), (key_b, numbers_b) = (
        prototype_key("formula", ("K", "Br"), (4, 4)),
        prototype_key("formula", ("Na", "Cl"), (4, 4)),
    )
    assert key_a == key_b == (4, 4) and numbers_a[0] < numbers_a[1] and numbers_b[0] < numbers_b[1]
    assert prototype_key("formula", ("Ti", "O"), (2, 4))[0] == (2, 4)
    assert prototype_key("composition", ("Ti", "O"), (2, 4))[0] == (1, 2)
    assert prototype_key("elements", ("Ti", "O"), None)[0] == (2,)


def test_prototype_part_finds_chemically_close_crystals_of_the_same_formula_type():
    prior = NeighbourPrior(KNOWN, PROTOTYPE_ONLY)
    groups, distances = prior.nearest_prototypes("formula", ("K", "Br"), (4, 4), 2)
    assert groups.tolist() == [225, 225] and distances[0] <= distances[1]  # Rb4Br4 then Na4Cl4/K4Cl4
    bonus = prior.bonus("formula", ("K", "I"), (4, 4), [225, 221])
    assert bonus[225] > bonus[221]  # no K-I crystal is known: the rock-salt prototype speaks
    assert set(prior.bonus("formula", ("K", "I"), (3, 4), [225, 221]).values()) == {0.0}  # unknown type: abstains


def test_prior_file_round_trip_and_bad_file(tmp_path):
    NeighbourPrior(KNOWN).save(tmp_path / "neighbours.json.gz")  # no properties: stored as unknown
    assert load_prior(tmp_path).entries == [(*entry, None, None) for entry in KNOWN]
    NeighbourPrior(TITANIUM_OXIDES).save(tmp_path / "neighbours.json.gz")
    assert load_prior(tmp_path).entries == TITANIUM_OXIDES and load_prior(tmp_path).has_properties
    with gzip.open(tmp_path / "neighbours.json.gz", "wt") as handle:  # written before properties were stored
        json.dump({"entries": [list(entry) for entry in KNOWN]}, handle)
    old = load_prior(tmp_path)
    assert old.entries == [(*entry, None, None) for entry in KNOWN] and not old.has_properties
    assert load_prior(tmp_path / "elsewhere") is None
    (tmp_path / "bad").mkdir()
    with gzip.open(tmp_path / "bad" / "neighbours.json.gz", "wt") as handle:
        handle.write("{not json")
    with pytest.raises(XtalAgentError, match="not a neighbour prior file"):
        load_prior(tmp_path / "bad")
    with pytest.raises(XtalAgentError):
        NeighbourPrior([])


class _PrefersGroup:
    """A stand-in language model: stage 1 likes one group a little more than the rest; stage 2
    likes answers that start with a given text a little more."""

    def __init__(self, favourite: int, sites_start: str = ""):
        self.favourite, self.sites_start = favourite, sites_start

    def score(self, stage, prompt, continuations, end):
        if stage == "sg":
            return [-1.0 if c.strip() == str(self.favourite) else -1.5 for c in continuations]
        return [-1.0 - 0.1 * c.count(",") - 0.5 * (not c.startswith(self.sites_start)) for c in continuations]


def test_prior_reorders_stage_one_but_answers_stay_valid():
    ctx = Context("formula", ("Na", "Cl"), (4, 4), None, None)
    groups = [221, 225]
    alone = ConstraintPredictor(_PrefersGroup(221))
    helped = ConstraintPredictor(_PrefersGroup(221), prior=NeighbourPrior(KNOWN, ON))
    assert alone.rank_groups(ctx, groups, 1)[0][0] == 221
    assert helped.rank_groups(ctx, groups, 1)[0][0] == 225
    for candidate in helped.predict({"formula": "Na4Cl4"}, top_k=3):
        assert check_candidate(candidate, {"formula": "Na4Cl4"}) == (True, True)


def test_site_lists_of_a_prototype_map_onto_the_request_elements():
    prior = NeighbourPrior(KNOWN, SITES_ONLY)
    part = SITES_ONLY["formula"].sites
    found = prior.site_neighbours("formula", ("K", "Br"), (4, 4), 225, part)
    assert [sites for sites, _ in found] == [(("Br", "4b"), ("K", "4a"))] * 3  # cation on 4a, anion on 4b
    assert prior.site_neighbours("formula", ("K", "Br"), (4, 4), 221, part) == []  # none known in that group
    proposals = prior.site_proposals("formula", ("K", "Br"), (4, 4), 225)
    assert proposals == [([("Br", "4b"), ("K", "4a")], pytest.approx(1.0))]


def test_state_from_sites_refuses_lists_the_decoder_could_not_write():
    from xtalagent.finetune.decoding import state_from_sites

    state = state_from_sites(225, [("Br", "4b"), ("K", "4a")], ("K", "Br"))
    assert state is not None and state.so_far == (4, 4)
    assert state_from_sites(225, [("K", "4a"), ("Br", "4a")], ("K", "Br")) is None  # 4a has no free parameter
    assert state_from_sites(225, [("K", "3z")], ("K", "Br")) is None
    assert state_from_sites(225, [("Xe", "4a")], ("K", "Br")) is None


def test_sites_prior_overrules_a_stage_two_model_that_prefers_another_valid_list():
    request = {"formula": "K4Br4", "spacegroup": 225}
    alone = ConstraintPredictor(_PrefersGroup(225, sites_start=" K 4b"))
    helped = ConstraintPredictor(_PrefersGroup(225, sites_start=" K 4b"), prior=NeighbourPrior(KNOWN, SITES_ONLY))
    assert [(s.element, s.wyckoff) for s in alone.predict(request, top_k=1)[0].sites] == [("K", "4b"), ("Br", "4a")]
    best = helped.predict(request, top_k=3)
    assert [(s.element, s.wyckoff) for s in best[0].sites] == [("K", "4a"), ("Br", "4b")]
    for candidate in best:
        assert check_candidate(candidate, {"formula": "K4Br4"}) == (True, True)


def test_voters_in_use_follow_their_files_and_the_weights_of_the_model_folder(tmp_path):
    from xtalagent.finetune.predictor import voters_in_use
    from xtalagent.finetune.voters import VoterWeights

    NeighbourPrior(KNOWN).save(tmp_path / "neighbours.json.gz")
    assert voters_in_use(tmp_path, pattern="formula") == (True, False)  # no classifier file
    assert voters_in_use(tmp_path, pattern="elements")[0]  # no voters.json: neutral weights, all on
    (tmp_path / "group_classifier.pt").write_bytes(b"")
    assert voters_in_use(tmp_path, pattern="formula") == (True, True)
    neutral = VoterWeights.neutral()
    silent = {part: OFF for part in neutral.prior["elements"]}
    quiet = {"classifier": neutral.classifier | {"formula": 0.0}, "prior": neutral.prior | {"elements": silent}}
    neutral.model_copy(update=quiet).save(tmp_path)
    assert voters_in_use(tmp_path, pattern="formula") == (True, False)  # the folder's own weights count
    assert voters_in_use(tmp_path, pattern="elements") == (False, True)
    assert voters_in_use(tmp_path / "empty") == (False, False)
    # an endpoint without --model serves the embedded model: its folder's voters join
    assert voters_in_use(endpoint="http://localhost:8000") == voters_in_use() == (True, True)


def _with_properties(band_gap: float = 0.0, formation_energy: float = 0.0, **part) -> PriorPart:
    return PriorPart(
        **{"weight": 1.0, "k": 2, "scale": 0.5, "floor": 0.01, **part},
        band_gap_weight=band_gap,
        formation_energy_weight=formation_energy,
    )


def test_requested_band_gap_picks_which_same_element_crystals_vote():
    # elements only: every Ti-O crystal is at distance 0; the band gap decides which two speak
    settings = {p: PriorSettings(_with_properties(band_gap=1.0), OFF) for p in PATTERNS}
    prior = NeighbourPrior(TITANIUM_OXIDES, settings)
    groups = [225, 187, 136, 141, 167]
    wide = prior.bonus("elements", ("Ti", "O"), None, groups, band_gap=2.0)
    metal = prior.bonus("elements", ("Ti", "O"), None, groups, band_gap=0.0)
    assert max(wide, key=wide.get) in (136, 141) and wide[136] > wide[187]
    assert max(metal, key=metal.get) in (225, 187) and metal[187] > metal[136]
    blind = prior.bonus("elements", ("Ti", "O"), None, groups)  # no target: properties play no part
    assert blind == NeighbourPrior(
        TITANIUM_OXIDES, {p: PriorSettings(_with_properties(), OFF) for p in PATTERNS}
    ).bonus("elements", ("Ti", "O"), None, groups, band_gap=2.0)


def test_unknown_property_of_a_known_crystal_counts_as_the_configured_difference():
    from xtalagent import config

    prior = NeighbourPrior(TITANIUM_OXIDES)
    pool = prior.pool("elements", "elements", ("Ti", "O"), None)  # every Ti-O crystal at distance 0
    index, distance = prior.closest(pool, _with_properties(band_gap=2.0, k=6), band_gap=2.0)
    by_entry = dict(zip(index.tolist(), distance.tolist()))
    corundum = TITANIUM_OXIDES.index(("Ti4O6", 167, "Ti:4c O:6e", None, -3.3))
    assert by_entry[corundum] == pytest.approx(2.0 * config.CONSTRAINT_PRIOR_UNKNOWN_PROPERTY["band_gap"])
    anatase = TITANIUM_OXIDES.index(("Ti4O8", 141, "Ti:4a O:8e", 2.1, -3.5))
    assert by_entry[anatase] == pytest.approx(2.0 * 0.1, abs=1e-5)
    assert index[0] == anatase  # a known, close band gap beats an unknown one


def test_formation_energy_steers_the_stoichiometry_of_site_proposals():
    # in Fm-3m both TiO (rock salt) and TiO2 (fluorite) are known: the target energy picks the list
    sites = PriorPart(weight=2.0, k=1, scale=5.0, floor=0.01, formation_energy_weight=10.0)
    prior = NeighbourPrior(TITANIUM_OXIDES, {p: PriorSettings(OFF, OFF, sites) for p in PATTERNS})
    oxide = prior.site_proposals("elements", ("Ti", "O"), None, 225, formation_energy=-3.2)
    suboxide = prior.site_proposals("elements", ("Ti", "O"), None, 225, formation_energy=-2.6)
    assert [s for s, _ in oxide] == [[("O", "8c"), ("Ti", "4a")]]
    assert [s for s, _ in suboxide] == [[("O", "4b"), ("Ti", "4a")]]


def test_elements_request_with_a_wide_gap_gets_a_dioxide_from_the_predictor():
    request = {"elements": ["Ti", "O"], "band_gap": 2.0, "max_atoms": 12}
    settings = {
        p: PriorSettings(_with_properties(band_gap=1.0, weight=3.0), OFF, _with_properties(band_gap=1.0, weight=3.0))
        for p in PATTERNS
    }
    helped = ConstraintPredictor(_PrefersGroup(225), prior=NeighbourPrior(TITANIUM_OXIDES, settings))
    best = helped.predict(request, top_k=3)
    assert best[0].spacegroup in (136, 141) and best[0].formula in ("Ti2O4", "Ti4O8")
    for candidate in best:
        assert check_candidate(candidate, request) == (True, True)


def test_site_proposals_skip_known_cells_that_do_not_fit_the_request():
    # the fluorite-type Ti4O8 is closest in formation energy but has 12 atoms: with a cap of 10 the
    # next crystal of the group (rock-salt Ti4O4) must speak instead of no one
    sites = PriorPart(weight=2.0, k=1, scale=5.0, floor=0.01, formation_energy_weight=10.0)
    prior = NeighbourPrior(TITANIUM_OXIDES, {p: PriorSettings(OFF, OFF, sites) for p in PATTERNS})
    small = lambda found: sum(int(label[:-1]) for _, label in found) <= 10  # noqa: E731
    unfiltered = prior.site_proposals("elements", ("Ti", "O"), None, 225, formation_energy=-3.2)
    assert [s for s, _ in unfiltered] == [[("O", "8c"), ("Ti", "4a")]]
    fitting = prior.site_proposals("elements", ("Ti", "O"), None, 225, formation_energy=-3.2, fits=small)
    assert [s for s, _ in fitting] == [[("O", "4b"), ("Ti", "4a")]]
    request = {"elements": ["Ti", "O"], "formation_energy": -3.2, "max_atoms": 10, "spacegroup": 225}
    best = ConstraintPredictor(_PrefersGroup(225, sites_start=" Ti 4b"), prior=prior).predict(request, top_k=2)
    assert [(s.element, s.wyckoff) for s in best[0].sites] == [("Ti", "4a"), ("O", "4b")]
    for candidate in best:
        assert check_candidate(candidate, request) == (True, True)


def test_ratio_shares_follow_the_chemically_closest_crystals_and_the_requested_property():
    """No Zr oxide is known: the titanium oxides (Ti sits next to Zr in Pettifor order) tell which
    ratios Zr-O takes, the wide-gap ones for a wide gap, the metallic ones for none."""
    prior = NeighbourPrior(TITANIUM_OXIDES)
    part = PriorPart(weight=1.0, k=3, scale=5.0, floor=0.01, band_gap_weight=10.0)
    wide = prior.ratio_shares(["O", "Zr"], part, band_gap=2.0)
    metallic = prior.ratio_shares(["Zr", "O"], part, band_gap=0.0)
    assert max(wide, key=wide.get) == (1, 2)  # keyed in Pettifor order: Zr (or Ti) first, then O
    assert max(metallic, key=metallic.get) == (1, 1) and (1, 2) in metallic  # k=3: one TiO2 joins
    assert sum(wide.values()) == pytest.approx(1.0) and sum(metallic.values()) == pytest.approx(1.0)
    assert prior.ratio_shares(["Na", "Cl", "O"], part) == {}  # no crystal with three elements is known
    assert prior.settings["elements"].ratios.weight > 0  # the neutral settings turn the part on
    assert PriorSettings.from_dict(prior.settings_dict()["elements"]) == prior.settings["elements"]
