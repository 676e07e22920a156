"""The ratio classifier of elements-only requests and its stage-1 vote."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

from xtalagent.errors import XtalAgentError
from xtalagent.finetune.ratio_classifier import (
    RatioClassifier,
    has_repeated_ratio,
    mendeleev_order,
    ratio_key,
    train_ratio_classifier,
)


def test_ratios_are_written_in_mendeleev_order_and_reduced():
    assert mendeleev_order(["O", "Ti"]) == ["Ti", "O"]
    assert ratio_key({"O": 4, "Ti": 2}) == ratio_key({"Ti": 1, "O": 2}) == (1, 2)
    assert ratio_key({"Ni": 6, "Sc": 2}) == (1, 3)
    assert ratio_key({"Ba": 2, "Nd": 2, "Co": 4, "O": 10}) == (1, 1, 2, 5)  # Ba, Nd, Co, O
    assert ratio_key({"Si": 8}) == (1,)


@pytest.fixture(scope="module")
def trained(fixture_dataset):
    from xtalagent.data import load_records

    records = load_records(fixture_dataset, "train") + load_records(fixture_dataset, "val")
    lines: list[str] = []
    classifier = train_ratio_classifier(records, epochs=60, members=2, hidden=64, log=lines.append)
    return records, classifier, lines


def test_vocabulary_is_the_ratios_seen_twice_and_the_network_learns_them(trained):
    records, classifier, lines = trained
    seen = Counter(ratio_key(r.cell_counts) for r in records)
    assert set(classifier.vocabulary) == {ratio for ratio, n in seen.items() if n >= 2}
    assert len(lines) == 2 * 60 and "loss" in lines[-1]
    known = [r for r in records if seen[ratio_key(r.cell_counts)] >= 2]
    right = 0
    for record in known:
        elements = list(record.cell_counts)
        first, _ = classifier.ratios(elements, max_atoms=100, k=1)[0]
        right += ratio_key(dict(zip(elements, first))) == ratio_key(record.cell_counts)
    most_frequent = max(seen.values())
    assert right > most_frequent and right >= 0.7 * len(known)


def test_ratios_fit_the_request_and_follow_its_element_order(trained):
    _, classifier, _ = trained
    for elements in (["Ti", "O"], ["O", "Ti"], ["Ba", "Ti", "O"]):
        likely = classifier.ratios(elements, band_gap=3.0, max_atoms=20, k=4)
        assert likely, elements
        probabilities = [p for _, p in likely]
        assert probabilities == sorted(probabilities, reverse=True) and 0 < sum(probabilities) <= 1 + 1e-9
        for counts, _ in likely:
            assert len(counts) == len(elements) and sum(counts) <= 20 and math.gcd(*counts) == 1
    ti_o = classifier.ratios(["Ti", "O"], k=3)
    o_ti = classifier.ratios(["O", "Ti"], k=3)
    assert [counts[::-1] for counts, _ in ti_o] == [counts for counts, _ in o_ti]
    # no ratio of six elements was ever seen; a formula unit larger than max_atoms does not fit
    assert classifier.ratios(["Li", "Na", "K", "Rb", "Cs", "O"]) == []
    assert all(sum(c) <= 3 for c, _ in classifier.ratios(["Ti", "O"], max_atoms=3, k=10))


def test_saved_ratio_classifier_loads_with_the_same_answers(trained, tmp_path):
    import torch

    _, classifier, _ = trained
    path = tmp_path / "ratio_classifier.pt"
    classifier.save(path)
    assert RatioClassifier.is_current(path)
    loaded = RatioClassifier.load(path)
    before = classifier.ratios(["Sc", "Ni"], formation_energy=-0.4, k=5)
    after = loaded.ratios(["Sc", "Ni"], formation_energy=-0.4, k=5)
    assert [c for c, _ in before][:2] == [c for c, _ in after][:2]
    assert np.allclose([p for _, p in before], [p for _, p in after], atol=5e-3)  # stored in half precision
    data = torch.load(path, weights_only=True)
    data["layout"] = "v1"
    torch.save(data, path)
    assert not RatioClassifier.is_current(path)
    with pytest.raises(XtalAgentError, match="xtalagent finetune"):
        RatioClassifier.load(path)


def test_training_rejects_bad_settings_and_data_without_repeats(fixture_dataset):
    from xtalagent.data import load_records

    records = load_records(fixture_dataset, "train")
    with pytest.raises(XtalAgentError, match="at least 1"):
        train_ratio_classifier(records, epochs=0, log=lambda _: None)
    with pytest.raises(XtalAgentError, match="dropout"):
        train_ratio_classifier(records, epochs=1, dropout=1.0, log=lambda _: None)
    unique = list({ratio_key(r.cell_counts): r for r in records}.values())
    assert has_repeated_ratio(records) and not has_repeated_ratio(unique) and not has_repeated_ratio([])
    with pytest.raises(XtalAgentError, match="no ratio occurs"):
        train_ratio_classifier(unique, epochs=1, log=lambda _: None)


def test_ratio_vote_ranks_the_likely_ratios_groups_first(tiny_model, trained):
    """The vote is weight * log(averaged share + floor): below zero, highest for groups the likely
    ratios' rankings favour, the floor for groups no likely ratio fits; it reorders stage 1 of
    elements-only requests only, and every candidate stays valid."""
    from xtalagent.finetune.predictor import ConstraintPredictor, load_predictor
    from xtalagent.finetune.requests import ConstraintRequest
    from xtalagent.finetune.wyckoff_solver import RatioCounts, feasible_groups

    _, classifier, _ = trained
    plain = load_predictor(tiny_model, use_prior=False)
    assert plain.ratios is None and load_predictor(tiny_model).ratios is not None
    voted = ConstraintPredictor(plain.scorer, ratios=classifier)
    request = ConstraintRequest(elements=["Ti", "O"], band_gap=3.0, max_atoms=12)
    ctx = voted.context(request)
    groups = feasible_groups(request.target())
    assert plain.ratio_bonus(ctx, groups, 12) == dict.fromkeys(groups, 0.0)
    assert voted.ratio_bonus(ctx, groups, 12, weight=0.0) == dict.fromkeys(groups, 0.0)
    vote = voted.ratio_bonus(ctx, groups, 12, weight=2.0)
    floor_share = voted.weights.ratio_floor
    ceiling = 2.0 * math.log(1 + floor_share)
    assert set(vote) == set(groups) and all(v <= ceiling for v in vote.values())
    hosts = set()
    for counts, _ in classifier.ratios(ctx.elements, 3.0, None, 12):
        hosts |= {g for g in groups if RatioCounts(ctx.elements, counts, 12).feasible(g)}
    floor = 2.0 * math.log(floor_share)
    assert all(vote[g] == pytest.approx(floor) for g in groups if g not in hosts)
    assert max(vote, key=vote.get) in hosts
    # shares over the hosts average to a distribution
    assert sum(math.exp(vote[g] / 2.0) - floor_share for g in groups) == pytest.approx(1.0, abs=1e-6)
    # other patterns are not touched; every elements-only candidate is valid and within max_atoms
    formula = ConstraintRequest(formula="Ti2O4")
    assert voted.rank_groups(voted.context(formula), [136, 58], 2) == plain.rank_groups(
        plain.context(formula), [136, 58], 2
    )
    for candidate in voted.predict(request, top_k=3):
        atoms = sum(int(s.wyckoff[:-1]) for s in candidate.sites)
        assert atoms <= 12 and candidate.spacegroup in groups


def test_ratio_vote_in_use_follows_its_file_the_pattern_and_the_weight(tmp_path):
    from xtalagent.finetune.predictor import ratio_vote_in_use
    from xtalagent.finetune.voters import VoterWeights

    assert not ratio_vote_in_use(tmp_path, pattern="elements")  # no ratio_classifier.pt
    (tmp_path / "ratio_classifier.pt").write_bytes(b"")
    assert ratio_vote_in_use(tmp_path, pattern="elements") and ratio_vote_in_use(tmp_path)
    assert not ratio_vote_in_use(tmp_path, pattern="formula") and not ratio_vote_in_use(tmp_path, pattern="composition")
    # an endpoint without --model serves the embedded model: its folder's ratio vote joins
    assert ratio_vote_in_use(endpoint="http://localhost:8000", pattern="elements") == ratio_vote_in_use()
    VoterWeights.neutral().model_copy(update={"ratio_weight": 0.0}).save(tmp_path)  # the folder's own weight
    assert not ratio_vote_in_use(tmp_path, pattern="elements")


def test_weigh_ratios_multiplies_renormalises_and_reorders():
    from xtalagent.finetune.predictor import weigh_ratios

    pool = [((1, 2), 0.6), ((2, 3), 0.3), ((1, 1), 0.1)]
    unchanged = weigh_ratios(pool, [0.0, 0.0, 0.0], 0.0, 0.01)
    assert [c for c, _ in unchanged] == [c for c, _ in pool]
    assert [p for _, p in unchanged] == pytest.approx([p for _, p in pool])
    weighed = weigh_ratios(pool, [0.0, 0.5, 0.5], 1.0, 0.01)
    expected = {(1, 2): 0.6 * 0.01, (2, 3): 0.3 * 0.51, (1, 1): 0.1 * 0.51}
    total = sum(expected.values())
    assert [c for c, _ in weighed] == [(2, 3), (1, 1), (1, 2)]
    assert [p for _, p in weighed] == pytest.approx([expected[c] / total for c, _ in weighed])
    assert weigh_ratios([], [], 1.0, 0.01) == []
    with pytest.raises(ValueError):
        weigh_ratios(pool, [0.5], 1.0, 0.01)


def test_likely_ratios_follow_the_closest_known_crystals(tiny_model, trained):
    """Without the prior's ratios part the classifier ranks alone; with it, each ratio of the
    classifier's pool is weighed by its share among the chemically closest known crystals."""
    from dataclasses import replace

    from xtalagent.finetune.neighbour_prior import NeighbourPrior
    from xtalagent.finetune.predictor import ConstraintPredictor, load_predictor, weigh_ratios
    from xtalagent.finetune.requests import ConstraintRequest
    from xtalagent.finetune.voters import VoterWeights

    records, classifier, _ = trained
    scorer = load_predictor(tiny_model, use_prior=False).scorer
    prior = NeighbourPrior.from_records(records)
    ctx = ConstraintPredictor.context(ConstraintRequest(elements=["Sc", "Ni"], formation_energy=-0.4))
    alone = ConstraintPredictor(scorer, ratios=classifier).likely_ratios(ctx, 20, k=4)
    assert alone == classifier.ratios(["Sc", "Ni"], None, -0.4, 20, k=4)
    settings = prior.settings["elements"]
    prior.settings["elements"] = replace(settings, ratios=replace(settings.ratios, weight=0.0))
    assert ConstraintPredictor(scorer, prior=prior, ratios=classifier).likely_ratios(ctx, 20, k=4) == alone
    part = replace(settings.ratios, weight=50.0, floor=1e-3)
    prior.settings["elements"] = replace(settings, ratios=part)
    weighed = ConstraintPredictor(scorer, prior=prior, ratios=classifier).likely_ratios(ctx, 20, k=4)
    pool = classifier.ratios(["Sc", "Ni"], None, -0.4, 20, k=VoterWeights.neutral().ratio_pool)
    share = prior.ratio_shares(["Sc", "Ni"], part, formation_energy=-0.4)
    known = [share.get(ratio_key(dict(zip(["Sc", "Ni"], counts))), 0.0) for counts, _ in pool]
    assert weighed == weigh_ratios(pool, known, 50.0, 1e-3)[:4]
    # at this weight the known crystals decide: the first ratio is the pool's most shared one
    assert ratio_key(dict(zip(["Sc", "Ni"], weighed[0][0]))) == max(share, key=share.get) or max(known) == 0
