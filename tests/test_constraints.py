"""Constraint generator: prompts, request contract, strict decoding, a tiny fine-tune end to end."""

import json

import pytest
from pydantic import ValidationError

from xtalagent import prompts
from xtalagent.agent.cli import main
from xtalagent.errors import InputError
from xtalagent.eval.constraints import check_candidate
from xtalagent.finetune.requests import ConstraintRequest, Pattern


def test_prompts_state_scope_units_and_three_decimals():
    text = prompts.spacegroup_prompt("formula", ("Sc", "Ni"), (2, 6), 0.0, -0.3891)
    assert "Sc2Ni6" in text and "0.000 eV" in text and "-0.389 eV/atom" in text
    assert "1 to 230" in text and "most suitable" in text
    wy = prompts.wyckoff_prompt("elements", ("Ti", "O"), None, 136, band_gap=3.0)
    assert "Candidate Wyckoff positions: 2a, 2b, 4c, 4d, 4e, 4f, 4g, 8h, 8i, 8j, 16k." in wy
    assert "(2a, 2b, 4c, 4d)" in wy and "Ti, O" in wy


def test_tokenizer_is_additive():
    from xtalagent.finetune.tokenizer import build_tokenizer

    prompt = prompts.wyckoff_prompt("formula", ("Ba", "Nd", "Co", "O"), (1, 1, 2, 5), 123, -2.5)
    tok = build_tokenizer([prompt])
    pieces = [prompt, " Ba 1a", ", Nd 1b", ", O 4i"]
    assert tok("".join(pieces)).input_ids == [i for p in pieces for i in tok(p).input_ids]
    assert tok.unk_token_id not in tok("Ba1Nd1Co2O5 -0.389").input_ids


@pytest.mark.parametrize(
    "payload, message",
    [
        ({"formula": "Sc2Ni6", "elements": ["Sc", "Ni"]}, "exactly one"),
        ({"band_gap": 1.0}, "exactly one"),
        ({"formula": "Xx2O3"}, "unknown element"),
        ({"formula": "Sc-Ni"}, "malformed formula"),
        ({"elements": ["Sc", "Qq"]}, "unknown element"),
        ({"formula": "NaCl", "spacegroup": 231}, "1-230"),
        ({"formula": "NaCl", "band_gap": -1}, "greater than or equal"),
        ({"formula": "NaCl", "colour": "red"}, "Extra inputs"),
    ],
)
def test_bad_requests(payload, message):
    with pytest.raises(ValidationError, match=message):
        ConstraintRequest.model_validate(payload)


def test_request_patterns_and_targets():
    assert ConstraintRequest(formula="Ni6Sc2").target().elements == ("Sc", "Ni")
    assert ConstraintRequest(elements=["O", "Ti"]).pattern is Pattern.ELEMENTS
    target = ConstraintRequest(composition="Ti2O4", max_atoms=12).target()
    assert target.ratio == (1, 2) and target.options[-1] == (4, 8)


@pytest.fixture(scope="module")
def predictor(tiny_model):
    from xtalagent.finetune.predictor import load_predictor

    return load_predictor(tiny_model)


def test_saved_model_keeps_the_word_level_tokenizer(predictor):
    """A saved Qwen2 model must not come back with Qwen's byte-level tokenizer (letters, not words)."""
    tokens = predictor.scorer.tokenizer.convert_ids_to_tokens(
        predictor.scorer.tokenizer("Task: choose Sc2Ni6").input_ids
    )
    assert tokens == ["Task", ":", "choose", "Sc", "2", "Ni", "6"]


def test_finetune_writes_resumable_model_folder(tiny_model):
    assert {"base", "sg", "wyckoff"} <= {p.name for p in tiny_model.iterdir()}
    assert (tiny_model / "sg" / "adapter_config.json").exists()
    metrics = (tiny_model / "run-sg" / "val_metric.jsonl").read_text().splitlines()
    assert metrics and "val_sg_top1" in json.loads(metrics[-1])
    # stage 1's neighbour prior holds the training crystals (the fixture's 16), and loads with the model
    from xtalagent.finetune.neighbour_prior import load_prior

    assert len(load_prior(tiny_model).entries) == 16
    # and so does the composition classifier, one network per request pattern
    from xtalagent.finetune.group_classifier import load_classifier

    assert set(load_classifier(tiny_model).patterns) == {"formula", "composition", "elements"}


def test_finetune_again_keeps_the_prior_of_its_adapters_but_upgrades_an_old_one(tiny_model, fixtures, tmp_path):
    import gzip
    import shutil

    from xtalagent.finetune.neighbour_prior import load_prior
    from xtalagent.finetune.settings import FinetuneSettings
    from xtalagent.finetune.workflow import run_finetune

    folder = tmp_path / "model"
    shutil.copytree(tiny_model, folder)
    run_finetune(fixtures / "crystals.csv", folder, settings=FinetuneSettings(limit=4))  # nothing is trained
    assert len(load_prior(folder).entries) == 16  # not swapped for 4 crystals the adapters never saw
    with gzip.open(folder / "neighbours.json.gz", "wt") as handle:  # a file from before properties
        json.dump({"entries": [[f, g, s] for f, g, s, *_ in load_prior(tiny_model).entries]}, handle)
    assert not load_prior(folder).has_properties
    run_finetune(fixtures / "crystals.csv", folder, settings=FinetuneSettings(limit=16))
    assert load_prior(folder).has_properties and len(load_prior(folder).entries) == 16


def test_finetune_rebuilds_only_a_missing_or_outdated_classifier(tiny_model, fixtures, tmp_path):
    import shutil

    import torch

    from xtalagent.finetune.group_classifier import GroupClassifier
    from xtalagent.finetune.settings import FinetuneSettings
    from xtalagent.finetune.workflow import run_finetune

    folder = tmp_path / "model"
    shutil.copytree(tiny_model, folder)
    adapter = (folder / "sg" / "adapter_model.safetensors").read_bytes()
    data = torch.load(folder / "group_classifier.pt", weights_only=True)
    data["layout"] = "v1"  # a file from an older version of the features
    torch.save(data, folder / "group_classifier.pt")
    run_finetune(fixtures / "crystals.csv", folder, settings=FinetuneSettings(limit=16, classifier_epochs=1))
    assert GroupClassifier.is_current(folder / "group_classifier.pt")
    assert (folder / "sg" / "adapter_model.safetensors").read_bytes() == adapter  # nothing else retrained
    with pytest.raises(InputError, match="classifier epochs"):
        FinetuneSettings(classifier_epochs=0)
    with pytest.raises(InputError, match="classifier dropout"):
        FinetuneSettings(classifier_dropout=1.0)


def test_predictor_loads_the_prior_unless_told_not_to(tiny_model, predictor):
    from xtalagent.finetune.predictor import load_predictor

    assert predictor.prior is not None and predictor.classifier is not None
    plain = load_predictor(tiny_model, use_prior=False)
    assert plain.prior is None and plain.classifier is None
    # an endpoint takes its voters from the model folder it serves (default: the embedded one)
    remote = load_predictor(tiny_model, endpoint="http://127.0.0.1:9")
    assert remote.prior is not None and remote.classifier is not None
    assert load_predictor(endpoint="http://127.0.0.1:9").classifier is not None


def test_a_model_folder_votes_with_its_own_weights(tiny_model, tmp_path):
    """Voter weights come from the model folder's voters.json: the shipped model's tuned ones for the
    embedded default, neutral ones for a folder without the file (and written by finetune), the
    folder's own when it has them; they change the ranking, and a broken file is one clear error."""
    import shutil

    from xtalagent.finetune.predictor import default_model_dir, load_predictor
    from xtalagent.finetune.voters import VOTERS_FILE, VoterWeights
    from xtalagent.finetune.wyckoff_solver import feasible_groups

    neutral = VoterWeights.neutral()
    shipped = VoterWeights.load(default_model_dir())
    assert shipped != neutral and shipped.classifier == {"formula": 1.5, "composition": 3.0, "elements": 1.5}
    assert shipped.prior["formula"]["prototype"].substitution_weight == 30.0  # tuned, not neutral
    assert VoterWeights.load(tiny_model) == neutral  # finetune wrote the neutral weights into its folder
    assert load_predictor(tiny_model).weights == neutral

    folder = tmp_path / "model"
    shutil.copytree(tiny_model, folder)
    (folder / VOTERS_FILE).unlink()
    assert load_predictor(folder).weights == neutral  # no file: neutral, never the shipped model's tuning
    own = neutral.model_copy(update={"classifier": {"formula": 1000.0}, "ratio_weight": 0.5})
    own.save(folder)
    predictor = load_predictor(folder)
    assert predictor.weights == own and predictor.prior.settings == own.prior_settings()
    request = ConstraintRequest(formula="Na4Cl4", band_gap=5.0)
    groups = feasible_groups(request.target())
    logp = predictor.classifier.log_probs("formula", ["Na", "Cl"], [4, 4], 5.0, None)
    assert predictor.predict(request, top_k=1)[0].spacegroup == max(groups, key=lambda g: logp[g - 1])
    assert load_predictor(tiny_model).predict(request, top_k=3) != predictor.predict(request, top_k=3)

    (folder / VOTERS_FILE).write_text('{"classifier": {"formula": "loud"}}')
    with pytest.raises(InputError, match="voters.json"):
        load_predictor(folder)


@pytest.mark.parametrize(
    "request_",
    [
        {"formula": "Sc2Ni6", "band_gap": 0.0},
        {"formula": "Ba1Nd1Co2O5", "formation_energy": -2.1},
        {"elements": ["Ti", "O"], "band_gap": 3.0},
        {"composition": "TiO2", "band_gap": 3.0, "formation_energy": -3.4},
        {"formula": "Na4Cl4", "spacegroup": 225},
        {"composition": "ScNi3"},
    ],
)
def test_every_candidate_is_valid_and_consistent(predictor, request_):
    from xtalagent.finetune.wyckoff_solver import feasible_groups

    candidates = predictor.predict(request_, top_k=4)
    assert 1 <= len(candidates) <= 4
    full = ConstraintRequest.model_validate(request_)
    if "spacegroup" in request_:  # one group: its site lists, best first
        assert [c.score for c in candidates] == sorted((c.score for c in candidates), reverse=True)
    else:  # the best list of each of stage 1's groups first, in stage-1 order
        stage_one = predictor.rank_groups(predictor.context(full), feasible_groups(full.target()), 4)
        assert [c.spacegroup for c in candidates] == [g for g, _ in stage_one][: len(candidates)]
    for candidate in candidates:
        assert check_candidate(candidate, full.model_dump(exclude_none=True)) == (True, True)
        if "spacegroup" in request_:
            assert candidate.spacegroup == request_["spacegroup"]


def test_sampling_gives_valid_candidates(predictor):
    for candidate in predictor.predict({"formula": "Ti2O4"}, top_k=3, temperature=1.0, seed=3):
        assert check_candidate(candidate, {"formula": "Ti2O4"}) == (True, True)


def test_impossible_requests_get_clear_errors(predictor):
    from xtalagent.errors import InputError

    with pytest.raises(InputError, match="cannot host"):
        predictor.predict({"formula": "Na1Cl1", "spacegroup": 225})
    with pytest.raises(InputError, match="no space group can host"):
        predictor.predict({"elements": ["Na", "Cl", "K"], "max_atoms": 2})
    with pytest.raises(InputError, match="more than max_atoms"):
        predictor.predict({"composition": "Ba1Nd1Co2O5", "max_atoms": 8})


def _whole_sequence_logp(scorer, stage: str, prompt: str, cont: str, end: bool) -> float:
    """Log-probability of ``cont`` after ``prompt`` from one plain forward pass over the whole text."""
    import torch

    ids = scorer.tokenizer(prompt + cont).input_ids + ([scorer.tokenizer.eos_token_id] if end else [])
    n = len(scorer.tokenizer(prompt).input_ids)
    with torch.inference_mode():
        logp = torch.log_softmax(scorer.models[stage](torch.tensor([ids])).logits[0], dim=-1)
    return sum(logp[i - 1, ids[i]].item() for i in range(n, len(ids)))


def test_cached_scoring_matches_full_forward(predictor):
    """The KV-cache shortcut gives the same log-probabilities as scoring whole sequences."""
    scorer = predictor.scorer
    prompt = prompts.spacegroup_prompt("formula", ("Sc", "Ni"), (2, 6), 0.0, None)
    conts = [" 194", " 2", " 221"]
    fast = scorer.score("sg", prompt, conts, [True, True, False])
    for cont, end, value in zip(conts, [True, True, False], fast):
        assert value == pytest.approx(_whole_sequence_logp(scorer, "sg", prompt, cont, end), abs=1e-3)


def test_beam_steps_run_only_new_tokens_and_match_full_forward(predictor, monkeypatch):
    """A call whose continuations extend those of the call before (a beam step) runs only the new
    tokens, packed into one sequence with a mask, over several forward passes when the token
    budget is small; every score equals a plain forward pass over the whole text."""
    scorer = predictor.scorer
    monkeypatch.setattr(scorer, "batch_tokens", 5)
    fed: list[list[int]] = []
    extend = scorer._extend
    monkeypatch.setattr(
        scorer, "_extend", lambda model, root, jobs: fed.extend(j[2] for j in jobs) or extend(model, root, jobs)
    )
    prompt = prompts.wyckoff_prompt("formula", ("Sc", "Ni"), (2, 6), 194, 0.0, None)
    first = [prompts.site_answer("Sc", "a", True), prompts.site_answer("Sc", "c", True)]
    second = [
        first[1] + prompts.site_answer("Ni", "h", False),
        first[1] + prompts.site_answer("Ni", "g", False),
        first[0],
        "x",
    ]
    ends = [False, False, True, True]
    for conts, stops in ((first, [False, False]), (second, ends)):
        fed.clear()
        fast = scorer.score("wyckoff", prompt, conts, stops)
        slow = [_whole_sequence_logp(scorer, "wyckoff", prompt, c, e) for c, e in zip(conts, stops)]
        assert fast == pytest.approx(slow, abs=1e-3)
    site = scorer._ids(prompts.site_answer("Ni", "h", False))
    eos = scorer.tokenizer.eos_token_id
    # the two extensions ran their site's tokens; the ended beam only its end; "x" all of its own
    assert fed == [site, scorer._ids(prompts.site_answer("Ni", "g", False)), [eos], scorer._ids("x") + [eos]]


def test_merged_and_switched_adapters_score_alike(tiny_model, monkeypatch):
    """A small base gets one merged copy per stage; a large one (here: a limit of 0 parameters)
    one copy whose adapter is switched per stage; both score the same."""
    from xtalagent import config
    from xtalagent.finetune.scorers import LocalScorer

    merged = LocalScorer.load(tiny_model)
    monkeypatch.setattr(config, "CONSTRAINT_MERGE_MAX_PARAMS", 0)
    switched = LocalScorer.load(tiny_model)
    assert merged.models["sg"] is not merged.models["wyckoff"] and not merged.adapters
    sg_weights, site_weights = (dict(merged.models[s].named_parameters()) for s in ("sg", "wyckoff"))
    assert any(not sg_weights[name].equal(site_weights[name]) for name in sg_weights)  # each holds its adapter
    assert switched.models["sg"] is switched.models["wyckoff"] and switched.adapters == {
        "sg": "sg",
        "wyckoff": "wyckoff",
    }
    sg_prompt = prompts.spacegroup_prompt("formula", ("Sc", "Ni"), (2, 6), 0.0, None)
    site_prompt = prompts.wyckoff_prompt("formula", ("Sc", "Ni"), (2, 6), 194, 0.0, None)
    for stage, prompt, conts in (("sg", sg_prompt, [" 194", " 12"]), ("wyckoff", site_prompt, [" Sc a", " Ni h"])):
        assert merged.score(stage, prompt, conts, [True, False]) == pytest.approx(
            switched.score(stage, prompt, conts, [True, False]), abs=1e-4
        )


def test_continuations_are_tokenised_alone_only_where_whitespace_splits_them(predictor):
    """Tokenising a continuation without the prompt is exact for a tokenizer that splits at
    whitespace (the embedded word-level one), not for byte-level BPE."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from xtalagent.finetune.scorers import splits_at_whitespace

    scorer = predictor.scorer
    assert splits_at_whitespace(scorer.tokenizer)
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel()
    assert not splits_at_whitespace(PreTrainedTokenizerFast(tokenizer_object=bpe))
    prompt = prompts.spacegroup_prompt("formula", ("Sc", "Ni"), (2, 6), 0.0, None)
    conts = [" 194", "12", ", Sc a"]
    joint = [scorer._ids(prompt + c)[len(scorer._ids(prompt)) :] for c in conts]
    assert scorer._continuation_ids(prompt, scorer._ids(prompt), conts) == joint


def test_jsonl_contract_through_cli(tiny_model, tmp_path):
    src = tmp_path / "in.jsonl"
    lines = [
        {"id": 7, "formula": "Sc2Ni6", "band_gap": 0.0},
        {"id": 8, "elements": ["Sc", "Ni"], "formation_energy": -0.389},
        {"id": 9, "formula": "Xx2"},
        {"id": 10, "composition": "ScNi3", "spacegroup": 221},
    ]
    src.write_text("\n".join(json.dumps(x) for x in lines) + "\nnot json\n")
    out = tmp_path / "out.jsonl"
    assert main(["constraints", "predict", str(src), "-o", str(out), "--top-k", "2", "--model", str(tiny_model)]) == 0
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r.get("id") for r in rows] == [7, 8, 9, 10, None]
    assert set(rows[0]) == {"id", "candidates"}
    first = rows[0]["candidates"][0]
    assert set(first) == {"spacegroup", "formula", "sites", "score"} and first["formula"] == "Sc2Ni6"
    assert all(set(s) == {"element", "wyckoff"} for s in first["sites"])
    assert "unknown element" in rows[2]["error"] and "not valid JSON" in rows[4]["error"]
    assert rows[3]["candidates"][0]["spacegroup"] == 221


@pytest.mark.slow
def test_embedded_default_model_answers(tmp_path):
    """The shipped checkpoint loads and answers the README's requests with valid candidates."""
    from xtalagent import config
    from xtalagent.finetune.predictor import load_predictor

    if not (config.CONSTRAINT_MODEL_DIR / "sg").exists():
        pytest.skip("no embedded constraint model in this checkout")
    predictor = load_predictor()
    for request in (
        {"formula": "Sc2Ni6", "band_gap": 0.0},
        {"elements": ["Ti", "O"], "band_gap": 3.0},
        {"composition": "TiO2", "formation_energy": -3.4, "spacegroup": 136},
    ):
        candidates = predictor.predict(request, top_k=3)
        assert candidates
        for candidate in candidates:
            assert check_candidate(
                candidate, ConstraintRequest.model_validate(request).model_dump(exclude_none=True)
            ) == (True, True)


def test_package_keeps_weights_adapters_and_prior(tiny_model, tmp_path):
    from xtalagent.finetune.package import package
    from xtalagent.finetune.predictor import load_predictor

    target = package(tiny_model, tmp_path / "shipped")
    assert (target / "neighbours.json.gz").exists() and not (target / "run-sg").exists()
    assert (target / "group_classifier.pt").exists() and (target / "ratio_classifier.pt").exists()
    shipped = load_predictor(target)
    assert shipped.ratios is not None and shipped.predict({"formula": "Ti2O4"}, top_k=1)
    assert shipped.predict({"elements": ["Ti", "O"], "band_gap": 3.0}, top_k=1)


def test_crystalgf_classes_keep_its_19_groups_apart_and_merge_the_rest():
    from pymatgen.symmetry.groups import SpaceGroup

    from xtalagent.eval.constraints import CRYSTALGF_GROUPS, crystalgf_class

    # the full Hermann-Mauguin symbols CrystalGF's script lists, read as pymatgen reads them there
    symbols = "P1 P-1 P12_1/m1 C12/m1 P12_1/c1 P2_1/n2_1/m2_1/a C2/m2/c2_1/m P4/m2/m2/m P4/n2_1/m2/m I4/m2/m2/m"
    symbols += " P3m1 P-32/m1 R-32/m P-6m2 P-62m P6/m2/m2/m P6_3/m2/m2/c P4/m-32/m F4/m-32/m"
    assert CRYSTALGF_GROUPS == {SpaceGroup(s).int_number for s in symbols.split()}
    assert crystalgf_class(225) == 225 and crystalgf_class(129) == 129
    # two different rare groups (and no answer at all) are the same class: CrystalGF counts them equal
    assert crystalgf_class(47) == crystalgf_class(59) == crystalgf_class(None) == 0


def test_eval_reports_accuracy_validity_and_three_baselines(tiny_model, fixture_dataset, tmp_path):
    from xtalagent.eval.constraints_report import run_constraint_eval

    summary = run_constraint_eval(
        fixture_dataset, "val", tmp_path / "eval", patterns=["formula", "elements"], properties=["none"],
        top_k=3, model=tiny_model,
    )  # fmt: skip
    assert summary["n_crystals"] == 6 and summary["neighbour_prior"] != "off"
    assert summary["composition_classifier"]["weights"]["formula"] > 0
    assert summary["ratio_classifier"]["ratios_known"] > 0
    for key in ("formula+none", "elements+none"):
        row = summary["results"][key]
        assert row["n"] == 6 and row["valid_rate"] == row["composition_consistent_rate"] == 1.0
        for name in ("sg_top1", "baseline_nearest_neighbour", "baseline_nearest_prototype"):
            assert 0.0 <= row[name] <= 1.0
        # a right group is right in every 20-class variant too
        assert row["sg_top1_crystalgf_classes"] >= row["sg_top1"] and row["sg_top1_frequent_or_other"] >= row["sg_top1"]
    assert (tmp_path / "eval" / "constraints_eval.json").exists()
    assert (tmp_path / "eval" / "confusion_spacegroup.png").exists()
    off = run_constraint_eval(
        fixture_dataset, "val", tmp_path / "off", patterns=["formula"], properties=["none"], top_k=3,
        model=tiny_model, use_prior=False, full_decode=False,
    )  # fmt: skip
    assert off["neighbour_prior"] == off["composition_classifier"] == "off"
    with pytest.raises(InputError, match="training split"):
        run_constraint_eval(fixture_dataset, "train", tmp_path / "x", model=tiny_model)
