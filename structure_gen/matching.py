"""Crystal-structure-prediction scoring with pymatgen's StructureMatcher (CDVAE/DiffCSP protocol)."""

from __future__ import annotations

import warnings

#: StructureMatcher tolerances of the CSP benchmarks (CDVAE, DiffCSP, DiffCSP++), kept so that match
#: rates compare with the literature's.
MATCH_STOL: float = 0.5
MATCH_ANGLE_TOL: float = 10.0
MATCH_LTOL: float = 0.3


def matcher():
    from pymatgen.analysis.structure_matcher import StructureMatcher

    return StructureMatcher(stol=MATCH_STOL, angle_tol=MATCH_ANGLE_TOL, ltol=MATCH_LTOL)


def rms_distance(predicted, reference, sm=None) -> float | None:
    """RMS displacement normalised by (V/N)^(1/3) if the structures match, else ``None``.

    pymatgen's ``get_rms_dist`` already divides by (V/N)^(1/3) of the reference's volume-scaled
    cell, which is the normalisation the CSP literature reports.
    """
    if not plausible(predicted):
        return None
    sm = sm or matcher()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = sm.get_rms_dist(predicted, reference)
    except Exception:  # pymatgen can fail on degenerate cells; that is simply no match
        return None
    return None if result is None else float(result[0])


def plausible(structure) -> bool:
    """Cheap guard before matching: absurd cells (needles, huge volumes) can exhaust memory in
    StructureMatcher's lattice search, and could never match a real crystal anyway."""
    abc = structure.lattice.abc
    vpa = structure.volume / max(len(structure), 1)
    return bool(1.0 <= vpa <= 500.0 and max(abc) / min(abc) <= 20.0 and min(structure.lattice.angles) >= 20.0)
