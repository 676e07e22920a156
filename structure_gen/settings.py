"""Defaults of the structure generator: sampling, the CSP benchmark, diffusion training.

Kept apart from the modules that use them (and free of torch) so the CLI can show them as option
defaults without loading a model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

#: Structures per constraint of ``structures sample`` when ``-n`` is not given.
SAMPLES_PER_CONSTRAINT: int = 10


@dataclass(frozen=True)
class SamplerSettings:
    """How ``structures sample`` (and ``eval-csp``) turn constraints into checked structures."""

    #: ``diffusion`` (the trained model) or ``pyxtal`` (the classical random builder).
    sampler: str = "diffusion"
    #: Diffusion checkpoint; None: the shipped one (``samplers.default_checkpoint``).
    checkpoint: Path | None = None
    #: Random seed; None: fresh randomness.
    seed: int | None = None
    #: Attempts per requested structure before it is reported as failed.
    max_attempts: int = 5
    #: Denoising steps (the 1000 training steps; fewer are respaced). Chosen on the MP ``val`` split:
    #: 1000 steps matched 48 % of 50 val crystals, 200 steps 44 %.
    steps: int = 1000
    #: Noise scale of the reverse process (1.0 = the exact reverse SDE). On the same 50 val crystals
    #: at 200 steps, 0.5 matched 46 % against 44 % at 1.0 (and a lower RMSE, 0.112 vs 0.144); at
    #: 1000 steps both matched 48 %, 0.5 with the lower RMSE (0.097 vs 0.132).
    temperature: float = 0.5
    #: Samples per constraint transplanted from known prototypes before the diffusion model samples
    #: the rest (0: the model alone; ``structure_gen/prototypes.py``). On 500 seeded MP ``val``
    #: crystals the first prototype alone matched 71.4 % (399 had one; 357 matched), the model
    #: alone 46-48 % of 50 (``structure_gen/checkpoints/README.md``). More than one is a user's
    #: choice (more known structure types, fewer new ones); match@1 only needs the first.
    prototypes: int = 1
    #: Known crystals the prototypes come from: ``release`` every split, ``eval`` ``train`` only.
    variant: str = "release"


@dataclass(frozen=True)
class CspEvalSettings:
    """The CSP benchmark (``structures eval-csp``)."""

    #: Crystals drawn from the split.
    crystals: int = 200
    #: Samples per crystal for match@k.
    k: int = 5


@dataclass
class DiffusionTrainConfig:
    """All knobs of a diffusion training run (saved in every checkpoint); defaults sized for one CPU core."""

    data: str = "datasets/perov_5_val.parquet"
    train_split: str | None = None  # None: all rows (minus the held-out val fraction)
    val_split: str | None = None  # None: hold out ``val_fraction`` of the training rows by id hash
    val_fraction: float = 0.05
    out_dir: str = "runs/structure_gen"
    hidden: int = 128
    layers: int = 4
    n_fourier: int = 16
    timesteps: int = 1000
    step_lr: float = 1e-5
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.0
    max_steps: int = 20000
    max_minutes: float = 60.0
    warmup_steps: int = 200
    max_atoms: int = 60  # larger conventional cells are skipped in training
    prop_dropout: float = 0.5
    eval_every: int = 1000  # steps between validation match rates (0: never)
    eval_samples: int = 64
    eval_steps: int = 100  # respaced denoising steps for the validation samples (speed)
    ckpt_minutes: float = 3.0
    log_every: int = 50
    seed: int = 0
    threads: int = 1
    resume: bool = False
    init_from: str | None = None  # start from these weights (slim or full checkpoint), fresh optimiser
    #: exponential moving average of the weights (0: off); validated and saved instead of the raw
    #: weights, as diffusion models usually are (DiffCSP++, EDM): it smooths the last steps' noise
    ema_decay: float = 0.0
    history: list = field(default_factory=list)
