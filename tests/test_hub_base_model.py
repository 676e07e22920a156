"""A standard Hugging Face base model end to end, through the CLI (issue 22, item 3).

``finetune --base-model`` on the shipped fixture CSV, then ``constraints predict --model`` and
``serve --dry-run`` on the folder it writes. The base is a tiny randomly initialised Llama (the
transformers config class, not the embedded model's) with a byte-level BPE tokenizer that puts a
BOS before every text and has no pad token, as Llama 3 checkpoints do: the path a user's Qwen2.5 or
Llama checkpoint takes on a GPU machine, in seconds and offline.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from xtalagent.agent.cli import main
from xtalagent.composition import parse_counts
from xtalagent.records import SymmetryConstraint

FIXTURES = Path(__file__).parent / "fixtures"
LORA_R = 72  # above 64, so 'serve' must raise vLLM's --max-lora-rank to the next value it accepts (128)
TRAIN_TEXT = [
    "The conventional cell contains exactly Na4Cl4. The band gap is 5.000 eV.",
    "Valid space groups are the numbers 1 to 230. Answer: 225",
    "Sites: Na 4a, Cl 4b; the formation energy is -2.100 eV/atom.",
]


def build_hub_style_base(folder: Path) -> None:
    """A 1-layer Llama with a byte-level BPE trained on a few lines, saved as a hub checkpoint is."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=320,
        special_tokens=["<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    core.train_from_iterator(TRAIN_TEXT, trainer)
    bos = core.token_to_id("<s>")
    core.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", bos)]
    )
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, bos_token="<s>", eos_token="</s>")
    assert tokenizer.pad_token is None and tokenizer("Na").input_ids[0] == bos
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=1,
        num_attention_heads=1,
        num_key_value_heads=1,
        max_position_embeddings=512,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)


@pytest.fixture(scope="module")
def hub_model(tmp_path_factory) -> tuple[Path, Path]:
    """(base folder, model folder): ``xtalagent finetune`` run on a relative path to the base."""
    work = tmp_path_factory.mktemp("hub")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")
        patch.setenv("TRANSFORMERS_OFFLINE", "1")
        patch.chdir(work)
        build_hub_style_base(work / "my-llama")
        args = ["finetune", str(FIXTURES / "crystals.csv"), "--base-model", "my-llama", "-o", str(work / "model")]
        args += ["--epochs", "1", "--limit", "8", "--batch-size", "8", "--threads", "2", "--lora-r", str(LORA_R)]
        args += ["--variants-per-record", "1", "--classifier-epochs", "1"]
        assert main(args) == 0
    return work / "my-llama", work / "model"


def test_finetune_on_a_hub_base_writes_a_model_folder(hub_model):
    base, model = hub_model
    assert not (model / "base").exists()  # the base is named, not copied
    # a relative local path is stored absolute: the folder works from any directory
    assert json.loads((model / "base.json").read_text()) == {"base_model": str(base.resolve())}
    for stage in ("sg", "wyckoff"):
        adapter = json.loads((model / stage / "adapter_config.json").read_text())
        assert adapter["base_model_name_or_path"] == str(base.resolve())
        assert adapter["r"] == LORA_R
        assert (model / stage / "adapter_model.safetensors").exists()


def test_constraints_predict_on_the_folder_gives_valid_exact_candidates(hub_model, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    _, model = hub_model
    asked = [
        {"id": "nacl", "formula": "Na4Cl4", "band_gap": 5.0},
        {"id": "rutile", "formula": "Ti2O4", "formation_energy": -3.3},
        {"id": "ratio", "composition": "SrSi2"},
        {"id": "free", "elements": ["Sr", "Si"]},
    ]
    requests = tmp_path / "requests.jsonl"
    requests.write_text("".join(json.dumps(r) + "\n" for r in asked))
    result = tmp_path / "result.jsonl"
    code = main(["constraints", "predict", str(requests), "--model", str(model), "-o", str(result), "--top-k", "2"])
    assert code == 0, capsys.readouterr().err
    rows = [json.loads(line) for line in result.read_text().splitlines()]
    assert [row["id"] for row in rows] == [r["id"] for r in asked]
    for request, row in zip(asked, rows):
        assert "error" not in row and row["candidates"], row
        for candidate in row["candidates"]:
            sites = SymmetryConstraint(spacegroup=candidate["spacegroup"], sites=candidate["sites"])  # valid labels
            assert sites.counts == parse_counts(candidate["formula"])
            if "formula" in request:
                assert sites.counts == parse_counts(request["formula"])
            elif "composition" in request:
                ratio = parse_counts(request["composition"])
                units = sites.counts["Sr"] // ratio["Sr"]
                assert sites.counts == {el: n * units for el, n in ratio.items()}
            else:
                assert set(sites.counts) == set(request["elements"])


def test_serve_dry_run_names_the_base_and_both_adapters(hub_model, capsys, monkeypatch, tmp_path):
    base, model = hub_model
    monkeypatch.setattr("xtalagent.finetune.serve.DEFAULT_VENV", tmp_path / "venv")  # merged weights go here
    assert main(["serve", "--model", str(model), "--dry-run", "--layout", "lora"]) == 0
    command = capsys.readouterr().out.split()
    assert command[command.index("--model") + 1] == str(base.resolve())
    assert command[command.index("--max-lora-rank") + 1] == "128"
    modules = command[command.index("--lora-modules") + 1 :][:2]
    assert modules == [f"sg={model / 'sg'}", f"wyckoff={model / 'wyckoff'}"]
    # the default layout: one server per stage on merged weights, reading the hub base's own tokenizer
    assert main(["serve", "--model", str(model), "--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and "--enable-lora" not in " ".join(lines)
    for line, stage in zip(lines, ("sg", "wyckoff")):
        words = line.split()
        assert words[words.index("--served-model-name") + 1] == stage
        tokenizer = Path(words[words.index("--tokenizer") + 1])  # the base, or a folder of its tokenizer files
        assert tokenizer == base.resolve() or (tokenizer / "tokenizer.json").is_file()
        assert Path(words[words.index("--model") + 1]).parent == tmp_path / "serve-models"


def test_local_scorer_reads_a_prompt_as_training_did(hub_model, monkeypatch):
    """trl tokenised the training prompts with the tokenizer's special tokens (here a BOS), so the
    scorer must score after them too; the switched-adapter path of large bases scores the same."""
    import torch

    from xtalagent import prompts
    from xtalagent.finetune.scorers import LocalScorer

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    _, model = hub_model
    merged = LocalScorer.load(model, merge=True)
    switched = LocalScorer.load(model, merge=False)
    tokenizer = merged.tokenizer
    prompt = prompts.spacegroup_prompt("formula", ("Na", "Cl"), (4, 4), 5.0, None)
    answer = prompts.spacegroup_answer(225)
    prompt_ids = tokenizer(prompt).input_ids  # as trl tokenises: BOS first
    full = tokenizer(prompt + answer + tokenizer.eos_token).input_ids
    assert prompt_ids[0] == tokenizer.bos_token_id and full[: len(prompt_ids)] == prompt_ids
    with torch.inference_mode():
        logits = merged.models["sg"](torch.tensor([full])).logits[0]
    logp = torch.log_softmax(logits.float(), dim=-1)
    expected = sum(logp[i - 1, full[i]].item() for i in range(len(prompt_ids), len(full)))
    for scorer in (merged, switched):
        assert math.isclose(scorer.score("sg", prompt, [answer], [True])[0], expected, abs_tol=1e-4)
