"""Legacy Materials Project formation energies re-expressed in the MP2020 correction scheme.

Why: the shipped hull table comes from Matbench ``mp_e_form`` (MP database v2019, legacy
``MPCompatibility`` corrections), while MP-20's formation energies and the MPtrj energies CHGNet
learnt follow ``MP2020Compatibility``. Against MP-20 ground states (train + val, 3,692 formulas)
the raw table is off by 0.040 eV/atom MAE (11.7 % of formulas by more than 0.1), the re-expressed
one by 0.012 (2.2 %) — ``xtalagent bench screen check-table``. Nothing is fitted: the
conversion uses only published correction constants, from the composition alone.

Constants are pymatgen's (``pymatgen.entries.compatibility.MP_COMPAT_CONFIG`` and
``MP2020_COMPAT_CONFIG``, checked against them in tests/test_hull.py); the MP2020 anion
corrections for Si, Sb, Te and H are those of the original MP2020 scheme (Wang et al., Sci. Rep.
11, 15496 (2021)) that MP used and later pymatgen releases dropped from their YAML.
"""

from __future__ import annotations

from pymatgen.core import Composition


def anion(comp: Composition) -> str:
    """Most electronegative element (Pauling): the anion that decides MP's energy corrections."""
    return max(comp.elements, key=lambda e: e.X).symbol


# Materials Project correction constants (eV per atom of the element), as in pymatgen's
# MPCompatibility.yaml (legacy scheme, used by the MP database that Matbench v0.1 mp_e_form was
# taken from) and MP2020Compatibility.yaml (the scheme of MP-20's formation energies and of the
# corrected MPtrj energies CHGNet predicts). Nothing here is fitted to benchmark data.
_LEGACY_U = {"V": -1.682, "Cr": -2.013, "Mn": -1.68085015096, "Fe": -2.733, "Co": -1.874, "Ni": -2.164, "W": -4.351}
_LEGACY_U |= {"Mo": -3.531}
_MP2020_U = {"V": -1.7, "Cr": -1.999, "Mn": -1.668, "Fe": -2.256, "Co": -1.638, "Ni": -2.541, "W": -4.438, "Mo": -3.202}
_LEGACY_OXIDE, _MP2020_OXIDE = -0.70229, -0.687
_LEGACY_SULFIDE, _MP2020_SULFIDE = -0.66346, -0.503
_MP2020_ANION = {"F": -0.462, "Cl": -0.614, "Br": -0.534, "I": -0.379, "N": -0.361, "Se": -0.472, "Si": 0.071}
_MP2020_ANION |= {"Sb": -0.192, "Te": -0.422, "H": -0.179}
#: legacy scheme: fitted elemental energies of the gases (eV/atom) instead of anion corrections
_LEGACY_GAS_MU = {"N": -7.95247218762, "F": -1.42055013381, "Cl": -1.25385097674, "H": -3.23973666138}


def legacy_to_mp2020(formula: str, e_form: float, refs: dict[str, float]) -> float:
    """A legacy-MP formation energy (eV/atom) re-expressed in the MP2020 scheme, from the composition only.

    Differences handled: oxide and sulfide constants, the new MP2020 anion corrections (F, Cl, Br,
    I, N, Se, Si, Sb, Te, H; applied, as MP2020 does without oxidation states, when that element is
    the most electronegative one), the GGA+U metal constants (when O or F is the most
    electronegative element), and the legacy fitted gas references for N, F, Cl, H vs MP's raw
    elemental energies ``refs``. Peroxides/superoxides are treated as oxides (needs a structure).
    """
    comp = Composition(formula)
    main_anion = anion(comp)
    delta = (_MP2020_OXIDE - _LEGACY_OXIDE) * comp["O"] if "O" in comp else 0.0
    if main_anion == "S":
        delta += (_MP2020_SULFIDE - _LEGACY_SULFIDE) * comp["S"]
    if main_anion in _MP2020_ANION:
        delta += _MP2020_ANION[main_anion] * comp[main_anion]
    if main_anion in ("O", "F"):
        delta += sum((_MP2020_U[el] - _LEGACY_U[el]) * comp[el] for el in _MP2020_U if el in comp)
    delta /= comp.num_atoms
    delta += sum(comp.get_atomic_fraction(el) * (mu - refs[el]) for el, mu in _LEGACY_GAS_MU.items() if el in comp)
    return e_form + delta
