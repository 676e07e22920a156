"""Settings every stage shares: paths, dataset locations, symmetry tolerances, structure sanity limits.

A stage's own defaults live beside it, in a typed settings object (``finetune/settings.py``,
``structure_gen/settings.py``, ``tools/settings.py``; the design run's ``DesignSettings`` starts from
the ``DESIGN_*`` values below), and weights tuned for a model live in that model's folder
(``voters.json``, ``finetune/voters.py``). Modules read these values when they run instead of copying
them into module constants at import time.
"""

from __future__ import annotations

import os
from importlib.util import find_spec
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent

# --- symmetry labelling -------------------------------------------------------------------------
#: Distance tolerance (Å) for the symmetry search; 0.1 Å is what the Materials Project uses.
SYMPREC: float = 0.1
#: Tolerance used when re-detecting the symmetry of generated or relaxed structures.
CHECK_SYMPREC: float = 0.1

# --- datasets -----------------------------------------------------------------------------------
#: Fractions for the deterministic grouped split used when the input carries no ``split`` column.
SPLIT_FRACTIONS: dict[str, float] = {"train": 0.8, "val": 0.1, "test": 0.1}
#: Bumped whenever the labelling changes, so that cached datasets are rebuilt.
DATASET_SCHEMA_VERSION: int = 1
#: Columns never copied into the dataset as properties.
NON_PROPERTY_COLUMNS: frozenset[str] = frozenset({"cif", "split", "Unnamed: 0", "index"})
#: Shared benchmark data beside the repository (development machines only; users have their own).
SHARED_DATA_DIR: Path = Path(os.environ.get("XTALAGENT_SHARED_DATA", PACKAGE_DIR.parent.parent / "shared" / "data"))

# --- constraints --------------------------------------------------------------------------------
#: Largest conventional cell (atoms) considered when the user gives a ratio or elements only.
MAX_ATOMS_PER_CELL: int = 20

# --- structure checks ---------------------------------------------------------------------------
#: Shortest allowed interatomic distance (Å) in a returned structure.
MIN_INTERATOMIC_DISTANCE: float = 0.5
#: Sane range of volume per atom (Å^3) for a returned structure.
VOLUME_PER_ATOM_RANGE: tuple[float, float] = (3.0, 100.0)
#: A generated structure is rejected (and resampled) when two atoms sit closer than this fraction
#: of the sum of their covalent radii. None of 2,998 random MP-20 train crystals comes below 0.65
#: (0.1st percentile 0.69), so 0.6 rejects only unphysical contacts (structure generator, issue #4).
MIN_COVALENT_RATIO: float = 0.6


def n_workers() -> int:
    """Worker processes for CPU-bound batch work; ``XTALAGENT_WORKERS`` overrides."""
    env = os.environ.get("XTALAGENT_WORKERS")
    if env:
        return max(1, int(env))
    return max(1, os.cpu_count() or 1)


# --- constraint generator (issue #3) -------------------------------------------------------------
#: The embedded constraint model (base LM + ``sg`` and ``wyckoff`` LoRA adapters) shipped in the package.
CONSTRAINT_MODEL_DIR: Path = Path(find_spec("xtalagent.finetune").origin).parent / "checkpoints" / "default"  # type: ignore[union-attr, arg-type]
# Its voters' weights are in the model folder (``voters.json``, finetune/voters.py); the decoding and
# training defaults in finetune/settings.py.
#: In-process scoring folds each LoRA adapter into its own copy of a base model of at most this many
#: parameters (faster: no LoRA layers, no adapter switching); larger bases keep one copy and switch.
CONSTRAINT_MERGE_MAX_PARAMS: int = 1_000_000_000
#: The neighbour prior looks for each part's k neighbours among this many known crystals closest by
#: composition (or prototype) alone, before the distance to the requested properties is added.
CONSTRAINT_PRIOR_POOL: int = 200
#: Property difference assumed for a known crystal that lacks the property (band gap in eV, formation
#: energy in eV/atom; 54 % of MP train crystals have no band gap). A typical known neighbour is
#: closer (mean difference between an MP val crystal and its 10 nearest training compositions:
#: 0.44 eV, 0.28 eV/atom), so a crystal whose value is known and close wins, and an unknown one is
#: not ruled out.
CONSTRAINT_PRIOR_UNKNOWN_PROPERTY: dict[str, float] = {"band_gap": 1.0, "formation_energy": 0.3}

# --- screening (issue #5) -----------------------------------------------------------------------
# Relaxation defaults: tools/settings.py (RelaxSettings); potentials' checkpoints: tools/potentials.py;
# the stability threshold: tools/checks.py.

# --- descriptor pre-relaxation (issue #5) --------------------------------------------------------
#: Known crystals searched for reference environments when the user gives none: a labelled dataset
#: named by ``XTALAGENT_REFERENCE_DATASET``, else the shipped set (tools/reference_set.py, MP-20
#: train + val as asymmetric units).
REFERENCE_DATASET: Path | None = (
    Path(os.environ["XTALAGENT_REFERENCE_DATASET"]) if os.environ.get("XTALAGENT_REFERENCE_DATASET") else None
)
# LEGO-xtal's descriptor settings: tools/prerelax.py.

# --- structure generator (issue #4) ---------------------------------------------------------------
# Sampling, CSP benchmark and training defaults: structure_gen/settings.py; matcher tolerances:
# structure_gen/matching.py.

# --- design agent (issue #6) ---------------------------------------------------------------------
#: Structures generated per design request when the user names no number.
DESIGN_N_CANDIDATES: int = 10
#: Constraint candidates (space group + Wyckoff sites) tried per request.
DESIGN_CONSTRAINT_TOP_K: int = 5
#: Denoising steps in a design run: 200 keeps the README request near two minutes on 2 cores
#: (1000, the structure generator's default, matches more test crystals but costs 5x the time).
DESIGN_DIFFUSION_STEPS: int = 200
#: Relaxation step limit per structure in a design run (a screening default of 500 is for benchmarks;
#: candidates still unconverged at this limit are reported as such, not dropped).
DESIGN_RELAX_MAX_STEPS: int = 200
#: Descriptor pre-relaxation iterations per candidate in a design run (LEGO-xtal's script uses 700;
#: a design run trades some of that for answering within minutes).
DESIGN_PRERELAX_STEPS: int = 60
#: Tool-calling rounds the agent may take for one user turn before it must answer.
AGENT_MAX_TOOL_ROUNDS: int = 8
#: Default chat model name and key variable for an OpenAI-compatible endpoint (e.g. vLLM).
AGENT_ENDPOINT_MODEL: str = "Qwen/Qwen2.5-7B-Instruct"
AGENT_API_KEY_ENV: str = "OPENAI_API_KEY"
