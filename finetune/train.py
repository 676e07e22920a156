"""Training the constraint generator: a compact base LM, then one LoRA adapter per stage.

The embedded default is built in two plain steps (no hub model is needed):

1. :func:`pretrain_base` — a small Qwen2-architecture causal LM with a word-level tokenizer,
   trained from scratch on crystal text of the ``train`` split (composition, properties, space
   group, sites).
2. :func:`train_adapter` — a LoRA adapter per stage (``sg``, ``wyckoff``) on instruction
   prompts, with trl's ``SFTTrainer`` + peft. The same function fine-tunes any Hugging Face
   causal LM (a local path or a hub id such as ``Qwen/Qwen2.5-7B-Instruct``).

Both steps checkpoint into their output folder and resume from the last checkpoint when run
again; the validation metric (strict-decoding top-1 accuracy on held-out crystals) is logged at
every epoch.
"""

from __future__ import annotations

import json
import logging
import random
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from xtalagent.errors import InputError
from xtalagent.finetune.examples import PromptExample, build_examples, pretraining_text
from xtalagent.finetune.settings import FinetuneSettings
from xtalagent.records import CrystalRecord

logger = logging.getLogger(__name__)


@dataclass
class BaseModelConfig:
    """Size of the embedded base model; head_dim 64 so vLLM's CPU attention can serve it."""

    hidden_size: int = FinetuneSettings.base_hidden
    num_layers: int = FinetuneSettings.base_layers
    num_heads: int = FinetuneSettings.base_hidden // 64
    intermediate_size: int = 3 * FinetuneSettings.base_hidden
    max_position_embeddings: int = 512

    @classmethod
    def sized(cls, hidden_size: int, num_layers: int) -> BaseModelConfig:
        """A base of another size with the same shape rules: 64-wide heads, a 3x wide MLP."""
        if hidden_size < 64 or hidden_size % 64:
            raise InputError(f"base hidden size must be a positive multiple of 64 (the head size), got {hidden_size}")
        if num_layers < 1:
            raise InputError(f"base layers must be at least 1, got {num_layers}")
        return cls(hidden_size, num_layers, hidden_size // 64, 3 * hidden_size)


@dataclass
class ConstraintTrainConfig:
    epochs: float = 3.0
    learning_rate: float = 2e-3
    batch_size: int = 32
    max_length: int = 320
    seed: int = 0
    threads: int | None = None
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.0
    variants_per_record: int = FinetuneSettings.variants_per_record
    eval_records: int = 200  # val crystals for the per-epoch accuracy
    extra: dict = field(default_factory=dict)


def set_threads(threads: int | None) -> None:
    if threads:
        import torch

        torch.set_num_threads(threads)


def _last_checkpoint(out_dir: Path) -> str | None:
    ckpts = sorted(out_dir.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1]))
    return str(ckpts[-1]) if ckpts else None


def _sft_config(run_dir: Path, cfg: ConstraintTrainConfig, has_eval: bool, **overrides):
    """The trainer settings both steps share: CPU-friendly, checkpointed, evaluated per epoch."""
    from trl import SFTConfig

    return SFTConfig(
        output_dir=str(run_dir),
        num_train_epochs=cfg.epochs,
        learning_rate=cfg.learning_rate,
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.batch_size,
        lr_scheduler_type="cosine",
        max_length=cfg.max_length,
        logging_steps=50,
        save_strategy="steps",
        save_steps=200,
        save_total_limit=2,
        eval_strategy="epoch" if has_eval else "no",
        report_to="none",
        seed=cfg.seed,
        use_cpu=True,
        bf16=False,  # trl defaults to bf16 autocast, an order of magnitude slower on CPUs without AMX
        gradient_checkpointing=False,  # small models: memory is not the limit, speed is
        dataloader_num_workers=0,
        **overrides,
    )


def _finalise(model_or_tokenizer_savers, target: Path) -> None:
    """Write final artefacts into a temporary folder, then move it into place."""
    tmp = target.with_name(target.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    for save in model_or_tokenizer_savers:
        save(tmp)
    if target.exists():
        shutil.rmtree(target)
    tmp.rename(target)


def pretrain_base(
    train: list[CrystalRecord],
    out_dir: Path,
    *,
    model_cfg: BaseModelConfig | None = None,
    cfg: ConstraintTrainConfig | None = None,
    val: list[CrystalRecord] | None = None,
) -> Path:
    """Train the compact base LM on crystal text; returns the folder with model + tokenizer."""
    import torch
    from datasets import Dataset
    from transformers import Qwen2Config, Qwen2ForCausalLM
    from trl import SFTTrainer

    from xtalagent.finetune.tokenizer import build_tokenizer

    model_cfg, cfg = model_cfg or BaseModelConfig(), cfg or ConstraintTrainConfig()
    set_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    out_dir = Path(out_dir)
    texts = [pretraining_text(r) for r in train]
    # the vocabulary also covers every prompt the adapters will see
    prompt_texts = [e.prompt + e.completion for e in build_examples(train[:2000], 3, cfg.seed)]
    tokenizer = build_tokenizer(texts + prompt_texts)
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=model_cfg.hidden_size,
        num_hidden_layers=model_cfg.num_layers,
        num_attention_heads=model_cfg.num_heads,
        num_key_value_heads=model_cfg.num_heads,
        intermediate_size=model_cfg.intermediate_size,
        max_position_embeddings=model_cfg.max_position_embeddings,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    model = Qwen2ForCausalLM(config)
    data = Dataset.from_dict({"text": texts})
    eval_data = Dataset.from_dict({"text": [pretraining_text(r) for r in val]}) if val else None
    args = _sft_config(out_dir / "run", cfg, has_eval=eval_data is not None, warmup_steps=50, weight_decay=0.01)
    trainer = SFTTrainer(model=model, args=args, train_dataset=data, eval_dataset=eval_data, processing_class=tokenizer)
    trainer.train(resume_from_checkpoint=_last_checkpoint(out_dir / "run"))
    final = out_dir / "base"
    _finalise([trainer.model.save_pretrained, tokenizer.save_pretrained], final)  # type: ignore[union-attr]
    return final


def examples_dataset(examples: list[PromptExample]):
    from datasets import Dataset

    return Dataset.from_dict({"prompt": [e.prompt for e in examples], "completion": [e.completion for e in examples]})


def train_adapter(
    stage: str,
    base_model: str | Path,
    train: list[CrystalRecord],
    out_dir: Path,
    *,
    cfg: ConstraintTrainConfig | None = None,
    val: list[CrystalRecord] | None = None,
) -> Path:
    """Train the LoRA adapter of one stage on top of ``base_model``; returns its folder."""
    import torch
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, TrainerCallback
    from trl import SFTTrainer

    from xtalagent.finetune.tokenizer import load_tokenizer

    if stage not in ("sg", "wyckoff"):
        raise InputError(f"unknown stage {stage!r} (expected 'sg' or 'wyckoff')")
    cfg = cfg or ConstraintTrainConfig()
    set_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    out_dir = Path(out_dir)
    examples = [e for e in build_examples(train, cfg.variants_per_record, cfg.seed) if e.stage == stage]
    val_examples = [e for e in build_examples(val or [], 1, cfg.seed + 1) if e.stage == stage]
    tokenizer = load_tokenizer(str(base_model))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(base_model, dtype=torch.float32)
    lora = LoraConfig(
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules="all-linear",
        task_type="CAUSAL_LM",
    )
    args = _sft_config(
        out_dir / f"run-{stage}", cfg, has_eval=bool(val_examples), warmup_steps=30, completion_only_loss=True
    )
    metric_log = out_dir / f"run-{stage}" / "val_metric.jsonl"

    class AccuracyCallback(TrainerCallback):
        """Strict-decoding top-1 accuracy on held-out crystals at the end of every epoch."""

        def on_epoch_end(self, args, state, control, model=None, **kwargs):
            if not val:
                return
            sample = random.Random(cfg.seed).sample(val, min(cfg.eval_records, len(val)))
            value = stage_accuracy(stage, model, tokenizer, sample)
            entry = {"epoch": round(state.epoch or 0, 2), "step": state.global_step, f"val_{stage}_top1": value}
            metric_log.parent.mkdir(parents=True, exist_ok=True)
            with open(metric_log, "a") as handle:
                handle.write(json.dumps(entry) + "\n")
            logger.info("[%s] epoch %s: validation top-1 accuracy %.3f", stage, entry["epoch"], value)

    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=examples_dataset(examples),
        eval_dataset=examples_dataset(val_examples) if val_examples else None,
        processing_class=tokenizer,
        peft_config=lora,
        callbacks=[AccuracyCallback()],
    )
    start = time.perf_counter()
    trainer.train(resume_from_checkpoint=_last_checkpoint(out_dir / f"run-{stage}"))
    final = out_dir / stage
    _finalise([trainer.model.save_pretrained], final)  # type: ignore[union-attr]
    (final / "training.json").write_text(
        json.dumps(
            {
                "stage": stage,
                "base_model": str(base_model),
                "n_examples": len(examples),
                "config": asdict(cfg),
                "seconds": round(time.perf_counter() - start, 1),
            },
            indent=2,
        )
    )
    return final


def stage_accuracy(stage: str, model, tokenizer, records: list[CrystalRecord]) -> float:
    """Top-1 accuracy of one stage under strict decoding, full-formula pattern, all properties."""
    from xtalagent.finetune.decoding import Context, rank_sites, rank_spacegroups
    from xtalagent.finetune.examples import composition_of, record_properties
    from xtalagent.finetune.scorers import LocalScorer
    from xtalagent.finetune.wyckoff_solver import ExactCounts, canonical_sites, feasible_groups, site_labels

    was_training = model.training
    model.eval()
    scorer = LocalScorer.single(model, tokenizer)
    hits = 0
    for record in records:
        elements, counts = composition_of(record, "formula")
        assert counts is not None  # the formula pattern shows the cell's counts
        gap, eform = record_properties(record)
        ctx = Context("formula", elements, counts, gap, eform)
        target = ExactCounts(elements, counts)
        if stage == "sg":
            best = rank_spacegroups(scorer, ctx, feasible_groups(target), 1)
            hits += bool(best) and best[0][0] == record.spacegroup
        else:
            site_lists = rank_sites(scorer, ctx, target, record.spacegroup, 1)
            truth = canonical_sites(record.spacegroup, [(s.element, s.wyckoff) for s in record.sites], elements)
            hits += bool(site_lists) and site_labels(record.spacegroup, site_lists[0][0], elements) == truth
    if was_training:
        model.train()
    return hits / max(1, len(records))
