"""Copy a trained model folder into a shippable checkpoint: weights, tokenizer, adapters, no run state.

Usage: ``python -m xtalagent.finetune.package RUN_DIR TARGET_DIR``
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from xtalagent.finetune.group_classifier import CLASSIFIER_FILE
from xtalagent.finetune.neighbour_prior import PRIOR_FILE
from xtalagent.finetune.ratio_classifier import RATIO_FILE
from xtalagent.finetune.voters import VOTERS_FILE

KEEP = {
    "base": ("config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"),
    "sg": ("adapter_config.json", "adapter_model.safetensors", "training.json"),
    "wyckoff": ("adapter_config.json", "adapter_model.safetensors", "training.json"),
}


def package(run_dir: Path, target: Path) -> Path:
    run_dir, target = Path(run_dir), Path(target)
    tmp = target.with_name(target.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    for part, files in KEEP.items():
        (tmp / part).mkdir(parents=True)
        for name in files:
            shutil.copy2(run_dir / part / name, tmp / part / name)
        config = tmp / part / "adapter_config.json"
        if config.exists():  # the adapters belong to the base beside them, not to the training folder
            data = json.loads(config.read_text())
            data["base_model_name_or_path"] = "../base"
            config.write_text(json.dumps(data, indent=2) + "\n")
    for name in (PRIOR_FILE, CLASSIFIER_FILE, RATIO_FILE, VOTERS_FILE):  # the voters and their weights
        if (run_dir / name).exists():
            shutil.copy2(run_dir / name, tmp / name)
    for name in ("README.md",):
        if (target / name).exists():
            shutil.copy2(target / name, tmp / name)
    if target.exists():
        shutil.rmtree(target)
    tmp.rename(target)
    return target


if __name__ == "__main__":
    print(package(Path(sys.argv[1]), Path(sys.argv[2])))
