"""The composition classifier: features as each pattern shows a request, training, storage, voting."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

from xtalagent.errors import XtalAgentError
from xtalagent.finetune.group_classifier import (
    N_FEATURES,
    GroupClassifier,
    composition_features,
    element_descriptor,
    train_group_classifier,
)


def test_features_show_what_the_pattern_shows():
    cell = composition_features("formula", ["Sc", "Ni"], [2, 6], 0.0, None)
    ratio = composition_features("composition", ["Sc", "Ni"], [1, 3], None, -0.389)
    elements = composition_features("elements", ["Sc", "Ni"], None, 0.0, None)
    assert cell.shape == ratio.shape == elements.shape == (N_FEATURES,)
    # head: number of elements, cell atoms, reduced atoms, band gap, formation energy
    assert cell[:4].tolist() == [2, 8, 4, 0.0] and math.isnan(cell[4])
    assert math.isnan(ratio[1]) and ratio[2] == 4 and math.isnan(ratio[3]) and ratio[4] == pytest.approx(-0.389)
    assert np.isnan(elements[1:3]).all() and np.isnan(elements[5:10]).all()
    # the shown counts: largest first, their common divisor, the smallest
    assert cell[10:18].tolist() == [6, 2, 0, 0, 0, 0, 2, 2] and ratio[10:18].tolist() == [3, 1, 0, 0, 0, 0, 1, 1]
    assert np.isnan(elements[10:18]).all()
    # a cell and its ratio differ only in the cell size and its counts
    same = np.ones(N_FEATURES, dtype=bool)
    same[[1, 3, 4, *range(10, 18)]] = False
    assert np.allclose(cell[same], ratio[same], equal_nan=True)


def test_features_do_not_depend_on_the_order_the_elements_are_given_in():
    a = composition_features("formula", ["Ba", "Nd", "Co", "O"], [1, 1, 2, 5])
    b = composition_features("formula", ["O", "Co", "Nd", "Ba"], [5, 2, 1, 1])
    assert np.allclose(a, b, equal_nan=True)
    c = composition_features("elements", ["Ti", "O"], None)
    d = composition_features("elements", ["O", "Ti"], None)
    assert np.allclose(c, d, equal_nan=True)


@pytest.fixture(scope="module")
def trained(fixture_dataset):
    from xtalagent.data import load_records

    records = load_records(fixture_dataset, "train") + load_records(fixture_dataset, "val")
    lines: list[str] = []
    classifier = train_group_classifier(records, epochs=60, members=2, hidden=64, log=lines.append)
    return records, classifier, lines


def test_training_reports_progress_and_learns_its_crystals(trained):
    records, classifier, lines = trained
    assert len(lines) == 3 * 2 * 60 and "loss" in lines[-1]
    right = 0
    for record in records:
        cell = record.cell_counts
        logp = classifier.log_probs("formula", list(cell), list(cell.values()))
        assert logp.shape == (230,) and np.exp(logp).sum() == pytest.approx(1.0, abs=1e-4)
        right += int(np.argmax(logp)) + 1 == record.spacegroup
    # far above the most frequent group of the fixture: the network fits what it was shown
    most_frequent = Counter(r.spacegroup for r in records).most_common(1)[0][1]
    assert right > most_frequent and right >= 0.8 * len(records)


def test_saved_classifier_loads_with_the_same_votes(trained, tmp_path):
    _, classifier, _ = trained
    path = tmp_path / "group_classifier.pt"
    classifier.save(path)
    loaded = GroupClassifier.load(path)
    for pattern, elements, counts in (("formula", ["Sc", "Ni"], [2, 6]), ("elements", ["Ti", "O"], None)):
        before = classifier.log_probs(pattern, elements, counts, 3.0, None)
        after = loaded.log_probs(pattern, elements, counts, 3.0, None)
        assert np.allclose(np.exp(before), np.exp(after), atol=2e-3)  # stored in half precision


def test_a_file_for_other_features_is_a_clear_error(trained, tmp_path):
    import torch

    _, classifier, _ = trained
    path = tmp_path / "group_classifier.pt"
    classifier.save(path)
    assert GroupClassifier.is_current(path)
    data = torch.load(path, weights_only=True)
    data["layout"] = "v1"
    torch.save(data, path)
    assert not GroupClassifier.is_current(path)
    with pytest.raises(XtalAgentError, match="other input features.*xtalagent finetune"):
        GroupClassifier.load(path)
    path.write_bytes(b"truncated")
    assert not GroupClassifier.is_current(path)


def test_bonus_is_the_weighted_log_probability_of_each_group(trained):
    _, classifier, _ = trained
    logp = classifier.log_probs("formula", ["Na", "Cl"], [4, 4])
    bonus = classifier.bonus("formula", ["Na", "Cl"], [4, 4], [225, 221], weight=2.0)
    assert bonus == pytest.approx({225: 2 * logp[224], 221: 2 * logp[220]})
    assert classifier.bonus("formula", ["Na", "Cl"], [4, 4], [225], weight=0.0) == {225: 0.0}
    only_formula = GroupClassifier({"formula": classifier.patterns["formula"]}, classifier.hidden)
    assert only_formula.bonus("elements", ["Na", "Cl"], None, [225], weight=1.0) == {225: 0.0}


def test_predictor_ranks_groups_with_the_classifier_vote(tiny_model, trained):
    """With an overwhelming weight, stage 1's first group is the classifier's best feasible group; the
    candidates stay valid."""
    from xtalagent.finetune.predictor import ConstraintPredictor, load_predictor
    from xtalagent.finetune.requests import ConstraintRequest
    from xtalagent.finetune.voters import VoterWeights
    from xtalagent.finetune.wyckoff_solver import feasible_groups

    _, classifier, _ = trained
    plain = load_predictor(tiny_model, use_prior=False)
    assert plain.classifier is None and load_predictor(tiny_model).classifier is not None
    loud = VoterWeights.neutral().model_copy(update={"classifier": {"formula": 1000.0}})
    voted = ConstraintPredictor(plain.scorer, classifier=classifier, weights=loud)
    request = ConstraintRequest(formula="Na4Cl4", band_gap=5.0)
    groups = feasible_groups(request.target())
    logp = classifier.log_probs("formula", ["Na", "Cl"], [4, 4], 5.0, None)
    best = max(groups, key=lambda g: logp[g - 1])
    candidates = voted.predict(request, top_k=2)
    assert candidates[0].spacegroup == best
    assert all(sum(int(s.wyckoff[:-1]) for s in c.sites) == 8 for c in candidates)


def test_elements_without_tabulated_properties_are_flagged_not_guessed(trained):
    """Noble gases have no electronegativity, superheavy elements no radius: NaN inputs become a
    missing flag, and the vote stays a proper distribution."""
    _, classifier, _ = trained
    assert np.isnan(element_descriptor("He")[2])  # no electronegativity
    assert np.isnan(element_descriptor("Xe")[3])  # no atomic radius in pymatgen
    assert np.isnan(element_descriptor("H")[4])  # pymatgen's 0 for an unknown ionic radius
    # the mean atomic radius is F's alone, not NaN for the whole request
    features = composition_features("formula", ["Xe", "F"], [2, 4])
    mean_radius = 18 + 3  # head (5) + fractions (5) + counts (8), then the means; radius is descriptor 3
    assert features[mean_radius] == pytest.approx(element_descriptor("F")[3])
    # Xe's own slot (the second: F leads with 4 of 6 atoms) shows the radius as missing: a flag
    second_slot_radius = 18 + 4 * len(element_descriptor("O")) + (len(element_descriptor("O")) + 1) + 3
    assert np.isnan(features[second_slot_radius])
    flags = classifier.patterns["formula"].inputs(features).numpy()[0, N_FEATURES:]
    assert flags[second_slot_radius] == 1 and flags[mean_radius] == 0
    assert flags.sum() == np.isnan(features).sum()
    for pattern, counts in (("formula", [2, 4]), ("composition", [1, 2]), ("elements", None)):
        logp = classifier.log_probs(pattern, ["Xe", "F"], counts, 7.0, -1.0)
        assert np.isfinite(logp).all() and np.exp(logp).sum() == pytest.approx(1.0, abs=1e-4)
    logp = classifier.log_probs("elements", ["Og", "Ts"], None)
    assert np.isfinite(logp).all()


def test_training_leaves_the_callers_random_state_alone(fixture_dataset):
    import torch

    from xtalagent.data import load_records

    records = load_records(fixture_dataset, "train")
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    train_group_classifier(records, patterns=["formula"], epochs=1, members=1, hidden=16, log=lambda _: None)
    assert torch.equal(torch.rand(3), expected)
    with pytest.raises(XtalAgentError, match="at least 1|>= 1"):
        train_group_classifier(records, patterns=["formula"], epochs=0, log=lambda _: None)
    with pytest.raises(XtalAgentError, match="dropout"):
        train_group_classifier(records, patterns=["formula"], epochs=1, dropout=1.0, log=lambda _: None)


def test_training_reads_properties_under_the_keys_the_prior_reads(fixture_dataset):
    # a user's dataset may name the column "formation_energy"; a NaN band gap means unknown
    from xtalagent.data import load_records
    from xtalagent.finetune.group_classifier import _examples

    record = load_records(fixture_dataset, "train")[0]
    record = record.model_copy(update={"properties": {"formation_energy": -1.25, "band_gap": math.nan}})
    (row,), _ = _examples([record], "formula", 1, None)
    assert row[4] == -1.25 and math.isnan(row[3])  # head: ..., band gap, formation energy
