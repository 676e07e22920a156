"""Every default model, dataset and threshold, named in one place.

Stages read their defaults from here so that a user (or a test) can see and override all of them
without hunting through the code.
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
CONSTRAINT_MODEL_DIR: Path = Path(find_spec("xtalagent.finetune").origin).parent / "checkpoints" / "default"
#: Candidates returned per request by default.
CONSTRAINT_TOP_K: int = 5
#: Size of the compact base LM that ``xtalagent finetune`` pretrains when no ``--base-model`` is
#: given (heads are 64 wide, as vLLM's CPU attention needs; the MLP is 3x the hidden size).
CONSTRAINT_BASE_HIDDEN: int = 128
CONSTRAINT_BASE_LAYERS: int = 4
#: In-process scoring folds each LoRA adapter into its own copy of a base model of at most this many
#: parameters (faster: no LoRA layers, no adapter switching); larger bases keep one copy and switch.
CONSTRAINT_MERGE_MAX_PARAMS: int = 1_000_000_000
#: Training prompts per crystal: the full-formula prompt plus N-1 random (pattern, property) draws.
CONSTRAINT_VARIANTS_PER_RECORD: int = 2
#: Neighbour prior (finetune/neighbour_prior.py), per request pattern and part: a stage-1 group's
#: score is LM log p + sum over parts of weight * log(share of the part's k neighbours in that group
#: + floor), neighbours weighted exp(-distance / scale). Parts: "elements" (L1 on element fractions;
#: element presence for elements-only requests) and "prototype" (same anonymous formula; chemical
#: distance: Pettifor-number distance plus substitution_weight x the data-mined substitution
#: distance, finetune/substitution.py); "sites" does the same for the stage-2 site lists of
#: same-prototype crystals in the chosen group, and "ratios" (elements-only requests) for the ratio
#: classifier's ratios, by the crystals with as many elements. A neighbour's distance grows by
#: band_gap_weight per eV between its band gap and the requested one (formation_energy_weight per
#: eV/atom), so the target properties choose which known crystals speak. Chosen on half A of MP val
#: by bench/bench_constraint_prior.py ("ratios": bench/bench_ratio_neighbours.py), which reports
#: half B; a weight of 0 turns a part off.
CONSTRAINT_PRIOR: dict[str, dict[str, dict[str, float]]] = {
    "formula": {
        "elements": {"weight": 1.5, "k": 10, "scale": 1.0, "floor": 0.05, "band_gap_weight": 1.0},
        "prototype": {
            "weight": 4.0,
            "k": 10,
            "scale": 20.0,
            "floor": 0.2,
            "band_gap_weight": 30.0,
            "formation_energy_weight": 10.0,
            "substitution_weight": 30.0,
        },
        "sites": {"weight": 5.0, "k": 20, "scale": 5.0, "floor": 0.05},
    },
    "composition": {
        "elements": {"weight": 0.25, "k": 5, "scale": 0.05, "floor": 0.05, "band_gap_weight": 1.0},
        "prototype": {"weight": 10.0, "k": 10, "scale": 5.0, "floor": 0.01},
        "sites": {"weight": 5.0, "k": 5, "scale": 5.0, "floor": 0.05},
    },
    # Elements-only requests: the target property decides the stoichiometry, so here the prototype
    # part (all crystals with as many elements, closest in Pettifor numbers) leans on it.
    "elements": {
        "elements": {"weight": 0.25, "k": 40, "scale": 1.0, "floor": 0.05},
        "prototype": {
            "weight": 10.0,
            "k": 5,
            "scale": 5.0,
            "floor": 0.2,
            "band_gap_weight": 3.0,
            "formation_energy_weight": 10.0,
        },
        "sites": {"weight": 10.0, "k": 1, "scale": 5.0, "floor": 0.05, "formation_energy_weight": 10.0},
        # the ratio classifier's ratios, each weighed by (share + floor) ** weight, its share among
        # the k chemically closest crystals with as many elements (ConstraintPredictor.likely_ratios;
        # chosen on half A by bench/bench_ratio_neighbours.py: first ratio right on half B 41.2 /
        # 46.0 / 39.0 % against 38.0 / 36.0 / 34.9 % for the classifier alone, band gap / formation
        # energy / none)
        "ratios": {
            "weight": 3.0,
            "k": 20,
            "scale": 2.0,
            "floor": 0.05,
            "band_gap_weight": 3.0,
            "formation_energy_weight": 30.0,
        },
    },
}
#: The neighbour prior looks for each part's k neighbours among this many known crystals closest by
#: composition (or prototype) alone, before the distance to the requested properties is added.
CONSTRAINT_PRIOR_POOL: int = 200
#: Property difference assumed for a known crystal that lacks the property (band gap in eV, formation
#: energy in eV/atom; 54 % of MP train crystals have no band gap). A typical known neighbour is
#: closer (mean difference between an MP val crystal and its 10 nearest training compositions:
#: 0.44 eV, 0.28 eV/atom), so a crystal whose value is known and close wins, and an unknown one is
#: not ruled out.
CONSTRAINT_PRIOR_UNKNOWN_PROPERTY: dict[str, float] = {"band_gap": 1.0, "formation_energy": 0.3}
#: Composition classifier (finetune/group_classifier.py): its weight in stage 1 per request pattern
#: (``weight * log p(group)`` beside the language model and the prior; chosen on half A of MP val,
#: the prior's settings fixed, by ``bench/bench_constraint_prior.py --weight-only``), and how it is
#: trained by ``xtalagent finetune``. Dropout 0.5 over 40 epochs was tried (one network alone it
#: reads about 1 point higher on half A of MP val for ratio and elements requests,
#: bench/bench_classifier_recipe.py). As an ensemble beside the language model and the prior it led
#: by under a point on half A (its weight re-chosen there) and tied on half B (formula 68.1 % both,
#: ratio 52.9 against 53.4 %, elements 33.8 against 34.0 %; constraints_prior_clfw3_*.json), so the
#: shipped classifier keeps 0.2 over 20 and no second 8 MB file entered the history.
CONSTRAINT_CLASSIFIER_WEIGHT: dict[str, float] = {"formula": 1.5, "composition": 3.0, "elements": 1.5}
CONSTRAINT_CLASSIFIER_MEMBERS: int = 3
CONSTRAINT_CLASSIFIER_EPOCHS: int = 20
CONSTRAINT_CLASSIFIER_HIDDEN: int = 512
CONSTRAINT_CLASSIFIER_DROPOUT: float = 0.2
#: Ratio classifier (finetune/ratio_classifier.py), elements-only requests: stage 1 also ranks the
#: groups of the CANDIDATES likeliest ratios as ratio requests (language model, prior, composition
#: classifier), averages those rankings' softmax shares weighed by each ratio's probability, and adds
#: WEIGHT * log(average + FLOOR) to each group's score. Its vocabulary: the reduced ratios seen at
#: least MIN_COUNT times in training. Weight chosen on half A of MP val by
#: bench/bench_ratio_vote.py, which reports half B; 0 turns the vote off. Re-chosen after the
#: prior's "ratios" part re-ranked the ratios, that bench prefers 2 ratios at weight 1 (half A pooled
#: 33.3 against 33.1 %; half B lower on every property), and re-weighing prior, classifier and vote
#: together (bench/bench_elements_weights.py) moves half B by under 0.3 points pooled: within noise,
#: so 3 ratios at weight 2 stay.
CONSTRAINT_RATIO_WEIGHT: float = 2.0
#: The ratio classifier's likeliest ratios that the prior's ``ratios`` part re-weighs (elements only).
CONSTRAINT_RATIO_POOL: int = 60
CONSTRAINT_RATIO_CANDIDATES: int = 3
CONSTRAINT_RATIO_FLOOR: float = 1e-6
CONSTRAINT_RATIO_MIN_COUNT: int = 2

# --- screening: potentials, relaxation, stability (issue #5) -------------------------------------
#: CHGNet checkpoint used when MatterSim's is not present (weights ship inside the chgnet wheel).
CHGNET_MODEL: str = "0.3.0"
#: Where MatterSim keeps its downloaded checkpoints, and the default one.
MATTERSIM_CACHE: Path = Path("~/.local/mattersim/pretrained_models").expanduser()
MATTERSIM_CHECKPOINT: str = "mattersim-v1.0.0-1M.pth"
#: Structures evaluated together by the batched relaxer.
RELAX_BATCH_SIZE: int = 16
#: Relaxation convergence (eV/Å), step limit, wall-time limit (s), FixSymmetry tolerance (Å).
RELAX_FMAX: float = 0.1
RELAX_MAX_STEPS: int = 500
RELAX_TIMEOUT: float = 600.0
RELAX_FIX_SYMPREC: float = 0.01
#: ASE optimiser of the batched relaxer: BFGS takes ~1.65x fewer steps than FIRE to the same fmax
#: (bench/results/screen_throughput.json); FIRE reproduces CHGNet's StructOptimizer step by step.
RELAX_OPTIMIZER: str = "BFGS"
#: A candidate within this energy above hull (eV/atom) counts as stable.
STABLE_E_HULL: float = 0.1

# --- descriptor pre-relaxation (issue #5) --------------------------------------------------------
#: Known crystals searched for reference environments when the user gives none: a labelled dataset
#: named by ``XTALAGENT_REFERENCE_DATASET``, else the shipped set (tools/reference_set.py, MP-20
#: train + val as asymmetric units).
REFERENCE_DATASET: Path | None = (
    Path(os.environ["XTALAGENT_REFERENCE_DATASET"]) if os.environ.get("XTALAGENT_REFERENCE_DATASET") else None
)
#: LEGO-xtal's cutoff (Å) for carbon SO(3) descriptors, and the relative distance threshold.
LEGO_CARBON_RCUT: float = 2.1
LEGO_DISTANCE_THRESHOLD_REL: float = 0.005

# --- structure generator (issue #4) --------------------------------------------------------------
#: StructureMatcher tolerances of the CSP benchmark (as DiffCSP / CDVAE).
MATCH_STOL: float = 0.5
MATCH_ANGLE_TOL: float = 10.0
MATCH_LTOL: float = 0.3
#: Attempts per requested structure before it is reported as failed.
SAMPLE_MAX_ATTEMPTS: int = 5
#: Shipped diffusion checkpoints, in the order tried when none is named (general MP model first).
DIFFUSION_CHECKPOINTS: tuple[str, ...] = ("mp_20.pt", "perov_5.pt")
#: Denoising steps when sampling (the 1000 training steps; fewer are respaced), and atoms per batch.
#: Chosen on the MP `val` split: 1000 steps matched 48 % of 50 val crystals, 200 steps 44 %.
DIFFUSION_SAMPLE_STEPS: int = 1000
#: Noise scale of the reverse diffusion process (1.0 = the exact reverse SDE). On the same 50 val
#: crystals at 200 steps, 0.5 matched 46 % against 44 % at 1.0 (and a lower RMSE, 0.112 vs 0.144);
#: at 1000 steps both matched 48 %, 0.5 with the lower RMSE (0.097 vs 0.132).
DIFFUSION_SAMPLE_TEMPERATURE: float = 0.5
DIFFUSION_BATCH_ATOMS: int = 4000
#: CSP benchmark: crystals drawn from the split, and samples per crystal for match@k.
CSP_EVAL_CRYSTALS: int = 200
CSP_EVAL_K: int = 5
#: Diffusion training defaults (CPU-friendly): batch size and the largest conventional cell used.
DIFFUSION_BATCH_SIZE: int = 64
DIFFUSION_MAX_ATOMS: int = 60

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
