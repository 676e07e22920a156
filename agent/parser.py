"""Deterministic, offline parser: a design request in English -> :class:`DesignRequest`.

``parse_request(text, previous=None)`` never raises; it returns a :class:`ParseResult` with the
request it understood, the pieces of text it could not place (``not_understood``), the questions
it must ask instead of guessing (``questions``) and a one-sentence ``error`` for bad or impossible
requests. It is a set of small regular-expression readers that each take ("consume") the words
they understand; whatever is left over is reported, so a number with a unit is never dropped
silently.

Semantics (what each kind of phrase becomes)
============================================

Composition (exactly one form ends up in the request)
    * A formula typed by a person ("TiO2", "Li2MnO3", "ScNi3", "Ca(OH)2") is a ratio ->
      ``composition``, written as typed (parentheses expanded).
    * Only when the text says it is the cell content ("exactly Sc2Ni6 in the cell", "Sc2Ni6 per
      unit cell", "cell formula Sc2Ni6", "unit cell of Ba1Nd1Co2O5", "a Sc2Ni6 cell", "exactly
      Sc2Ni6", "2 formula units of ScNi3" -> "Sc2Ni6") -> ``formula``.
    * Element lists -> ``elements`` in the order written: dash/slash joined ("a Ti-O compound",
      "Ti–O", "Ti/O", "in the Ba-Ti-O system"), comma/"and" lists ("Li, Fe, P and O", "made of Mg
      and Si"), element names in any case ("containing lithium and oxygen"), names or symbols
      before an anion word ("titanium oxide" -> Ti, O; "lithium iron phosphate" -> Li, Fe, P, O;
      an anion word next to a list adds its elements: "an oxide of Li and Mn" -> Li, Mn, O) and
      one element with "pure"/"elemental"/"allotrope" ("pure silicon" -> Si).
    * Symbols are only read when capitalised correctly and in a chemistry slot (formula token,
      dash-joined or comma/and list, after "containing"/"with"/"made of"/...). Short English words
      that are also symbols ("I want", "In", "As", "At", "Be", "No", "He") are not taken unless they
      sit inside such a list; "I" before a verb or an apostrophe is never iodine; all-capital
      acronyms ("DFT", "CIF", "OK", "NO") are not formulas.
    * An unknown two-letter symbol in a chemistry slot ("a Xx-O compound", "Qq2O3", "Li, Xx and
      O", "without Qq") is an ``error`` naming the symbol. Single capital letters that are not
      elements (A, M, X, ...) are read as prototype placeholders ("ABO3", "MX2"): reported in
      ``not_understood``, no error. Non-integer counts ("Li0.5CoO2") are an error.
    * Structure-type words are not compositions: "NaCl-type", "zinc blende", "rock salt",
      "perovskite" go to ``not_understood``.
    * Several different compositions -> a question asking which one. Compatible ones are merged
      to the most specific (cell formula > ratio formula > element list), e.g. "a Li-Fe-P-O
      compound like LiFePO4" -> composition LiFePO4.
    * One element alone ("containing Fe", "a silicon compound") or an anion word alone ("an
      oxide") -> a question asking for the other elements. No composition at all (and no
      ``previous``) -> the question "Which elements or formula should the crystal contain? ...";
      the partial request is returned alongside.

Band gap (eV)
    * "band gap around 3 eV" -> value 3 (tolerance None); "2.5 ± 0.3 eV", "2.5 +/- 0.3 eV",
      "2.5 eV plus or minus 300 meV" -> value 2.5, tolerance 0.3; "gap of 1500 meV" -> 1.5.
    * "between 1 and 2 eV", "from 1 to 2 eV", "1-2 eV" -> minimum 1, maximum 2.
    * "above/over/at least/greater than/more than/>/>=/≥ 2 eV", "greater than or equal to 2 eV",
      "2 eV or more" -> minimum; "below/under/at most/less than/up to/</<=/≤ 2 eV", "less than or
      equal to 2 eV", "2 eV or less" -> maximum. Strict and non-strict comparisons are treated
      alike. A second bound joins the first: "band gap above 1 and below 2 eV".
    * A number with the unit before the keyword also works: "a 3 eV band gap", "≥2 eV gap".
    * Keywords: band gap, bandgap, band-gap, gap, E_g / Eg (case-sensitive); "GaP" is gallium
      phosphide, never the keyword.
    * Without a unit the number is taken in eV. Numbers may be written "1e3".
    * A negative band gap ("a band gap of -2 eV", "above -1 eV") or one above 20 eV is an ``error``
      naming the value (the limits are checked by :class:`DesignRequest` itself).
    * Words: "wide-gap", "wide/large band gap", "insulator"/"insulating" -> minimum 3.0;
      "narrow/small gap" -> maximum 1.0; "metallic", "a metal", "zero band gap", "gapless", "no
      band gap" -> value 0.0 with maximum 0.1. These only apply when no number is given for the
      band gap. "semiconductor"/"semiconducting" alone sets nothing and is listed in
      ``not_understood`` (give a value); next to a band-gap number it is accepted silently.

Formation energy (eV/atom)
    * Same comparison words as the band gap; "below −2.5 eV/atom" -> maximum -2.5, "near −3.4
      eV/atom", "around -1.2 eV per atom", "E_form ≈ -2 eV/atom" -> value, "-2500 meV/atom" ->
      -2.5; "more negative than -2" -> maximum, "less negative than -1" -> minimum.
    * Keywords: formation energy/enthalpy, energy/enthalpy/heat of formation, E_form, E_f, Ef,
      ΔH_f (the symbol forms are case-sensitive).
    * The unicode minus (−) and dashes (–, —) are read as a hyphen/minus everywhere.
    * Units eV/atom or meV/atom; "eV" without "/atom" and a bare number are taken as eV/atom (an
      energy per cell makes no sense in a request); positive values are allowed.
    * "negative formation energy" -> maximum 0.0.
    * Values outside -10 to 5 eV/atom are an ``error`` naming the value.

Stability
    "stable", "thermodynamically stable", "on the (convex) hull", "zero energy above hull",
    "e_above_hull = 0" -> ``stable=True``; "not necessarily stable", "stability does not matter",
    "metastable is fine" -> ``stable=False``. "metastable"/"unstable" alone and any other
    energy-above-hull wish ("energy above hull below 50 meV/atom") -> ``not_understood`` (only
    ``stable`` exists in the request).

Symmetry
    * Crystal systems by name ("rhombohedral" -> trigonal) -> ``crystal_systems`` in the order
      written; "space group 225", "spacegroup #62", "SG 194", "group 221", "space group No. 62",
      "space groups 225 and 221" -> ``spacegroups``; Hermann–Mauguin symbols ("P6_3/mmc",
      "P63/mmc", "Fm-3m", "Fm3m", "Pnma", "P 4_2/m n m", "P2_1/c", a few common non-standard
      settings such as P21/n, Pbnm, Cmca) -> ``spacegroups``. Symbols that also read as a formula
      or an element ("Pm", "Pc", "Cm", "Cc", or spaced "P 1") need a "space group"/"symmetry"
      context. "Fm-3m (225)" is checked for consistency.
    * Exclusions: "not cubic", "non-cubic", "no cubic structures", "excluding hexagonal", "avoid
      space group 1", "no space group 1", "not P1", "avoid P1 and P-1" (a list after a negation is
      negated as a whole), "P1 excluded", "cubic ones are not allowed", "no more cubic" ->
      ``exclude_crystal_systems`` / ``exclude_spacegroups``; "hexagonal instead of / rather than
      cubic" only drops cubic.
    * A space group outside 1-230 or an unknown symbol after "space group" is an ``error``.

Elements to exclude
    "without Pb", "no lead", "exclude Co", "excluding Co and Ni", "avoid Cd", "free of Hg",
    "Pb-free", "lead-free", "not containing Hg" -> ``exclude_elements``.

Size
    "at most 12 atoms", "no more than 12 atoms per cell", "up to 8 atoms in the unit cell", "≤ 12
    atoms", "max 12 atoms", "max. 12 atoms", "12 atoms or fewer", "12 or fewer atoms", "less than or
    equal to 12 atoms", "not exceeding 12 atoms", "number of atoms <= 12", "atoms <= 12" ->
    ``max_atoms`` 12; strict words ("fewer than 13 atoms", "< 13 atoms", "atoms below 13") -> 12;
    a bare count ("a 5-atom cell", "12 atoms per cell", "with 12 atoms") is read as the maximum
    too; "exactly 12 atoms" -> 12 and a note. A cell formula without a stated limit sets the limit
    to its own size (up to 200 atoms). Lower bounds ("at least 12
    atoms") cannot be requested: ``not_understood``.

Number of candidates
    "give me 20 candidates", "10 structures", "generate 5 crystals", "5 cubic ones", "20 more",
    "another 5", "top 5", "n=20", "-n 20", "a dozen structures", "half a dozen candidates" (6),
    "five candidates", "10 of them", and "a dozen" on its own -> ``n_candidates``. Only numbers in
    front of such a noun (or after give/generate/propose/...) count; atom counts, space groups and
    property numbers are taken by their own readers first, and a list of space-group numbers stops
    before a number that belongs to another setting ("space group 221, 5 candidates").
    A count or size equal to the default is still recorded as stated (``model_fields_set``), so
    ``model_dump(exclude_defaults=True)`` shows it.

Multi-turn refinement (``previous`` given)
    The new text modifies ``previous``; fields the text does not mention are kept.
    * A composition in any form replaces the previous one (elements newly asked for are removed
      from the previous exclusions). "Se instead of S", "replace S with Se", "swap S for Se"
      substitute one element in the previous composition (error if it is not there; a question
      when there is no previous composition).
    * A band-gap / formation-energy target replaces the previous one; "drop the band gap
      target", "any band gap", "no band gap requirement" remove it.
    * A symmetry wish (crystal systems and/or space groups) replaces the previous symmetry wish
      ("now only cubic"), unless the text says "also", "too", "as well" or "in addition", which
      adds to it. "any symmetry", "any space group" clear it. Newly wished items leave the
      previous exclusions; new exclusions are added to the previous ones and leave the wishes.
    * "stable" / "not necessarily stable", sizes and counts ("give me 20 more" -> 20) replace.

Errors
    Contradictions ("band gap above 3 eV and below 1 eV", "cubic and not cubic", a cell formula
    bigger than a stated ``max_atoms``, two different values for one setting, an excluded element in the
    composition, "Fm-3m (221)") give ``error`` with one clear sentence and ``request=None``; so do
    unknown elements, impossible space groups and values outside the request's limits (more than
    200 atoms, 0 candidates, a negative or absurd band gap or formation energy), and texts longer
    than ``MAX_TEXT_LENGTH`` characters. Pydantic validation errors are converted with
    :func:`validation_message`. Anything unexpected inside
    the parser is caught and returned as an ``error`` too.

Not understood
    Every word or number the readers did not take and that is not an ordinary filler word ends up
    in ``not_understood`` as a short phrase, e.g. "'superconducting' (no property model for it)",
    "'300 K' (number not attached to any setting)", "'perovskite' (structure types are not
    supported; give a space group or crystal system)".
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from functools import cache

from pydantic import ValidationError

from xtalagent.agent.request import DesignRequest, ParseResult
from xtalagent.composition import parse_counts
from xtalagent.errors import InputError, validation_message
from xtalagent.symmetry import check_spacegroup, crystal_system, spacegroup_symbol

MAX_TEXT_LENGTH = 5000
COMPOSITION_QUESTION = (
    "Which elements or formula should the crystal contain? (e.g. 'TiO2', 'Li2MnO3' or 'a Li-Fe-O compound')"
)
WIDE_GAP_MIN = 3.0  # "wide-gap", "insulator"
NARROW_GAP_MAX = 1.0  # "narrow-gap", "small band gap"
METAL_GAP_MAX = 0.1  # "metallic": value 0.0, maximum 0.1

_X = "\x1f"  # marks consumed characters in the working text

# ---------------------------------------------------------------------------------------------
# Vocabulary
# ---------------------------------------------------------------------------------------------

_SYSTEM_WORDS = {
    "cubic": "cubic",
    "hexagonal": "hexagonal",
    "tetragonal": "tetragonal",
    "trigonal": "trigonal",
    "rhombohedral": "trigonal",
    "orthorhombic": "orthorhombic",
    "monoclinic": "monoclinic",
    "triclinic": "triclinic",
}
_SYS = r"(?:cubic|hexagonal|tetragonal|trigonal|rhombohedral|orthorhombic|monoclinic|triclinic)"

# Capitalised short English words; those that are element symbols are only read inside lists.
_ENGLISH_SHORT = {
    "A", "I", "An", "At", "As", "Be", "By", "Do", "Go", "He", "Hi", "If", "In", "Is", "It", "Me", "My",
    "No", "Of", "Oh", "Ok", "On", "Or", "So", "To", "Up", "Us", "We", "Am", "Pa", "Ha", "Eh", "Ah",
}  # fmt: skip
_ENGLISH_CAPS = {
    "IS", "IN", "ON", "OF", "SO", "US", "NO", "BY", "OK", "HI", "OH", "CIF", "SOS", "NOS", "IF", "BS", "UK", "NB", "PS",
    "PC", "PCS", "FYI", "CPU", "SOC", "UV", "BCC", "FCC", "HCP", "YS", "CV", "IV", "VI", "VII", "II", "III",
}  # fmt: skip
_I_VERBS = (
    r"want|need|would|am|think|like|prefer|guess|hope|have|had|was|will|can|could|should|must|mean|do|"
    r"don|just|also|only|really|wish|expect|care|see|know|did|said|asked|meant"
)

_ANIONS: dict[str, tuple[str, ...]] = {
    "oxide": ("O",), "nitride": ("N",), "sulfide": ("S",), "sulphide": ("S",), "fluoride": ("F",),
    "chloride": ("Cl",), "bromide": ("Br",), "iodide": ("I",), "carbide": ("C",), "boride": ("B",),
    "hydride": ("H",), "selenide": ("Se",), "telluride": ("Te",), "phosphide": ("P",),
    "arsenide": ("As",), "silicide": ("Si",), "antimonide": ("Sb",), "germanide": ("Ge",),
    "phosphate": ("P", "O"), "silicate": ("Si", "O"), "carbonate": ("C", "O"), "sulfate": ("S", "O"),
    "sulphate": ("S", "O"), "nitrate": ("N", "O"), "borate": ("B", "O"), "titanate": ("Ti", "O"),
    "oxynitride": ("O", "N"), "oxyfluoride": ("O", "F"), "hydroxide": ("O", "H"),
}  # fmt: skip
_ANION = r"(?:" + "|".join(sorted(_ANIONS, key=len, reverse=True)) + r")s?"

_PROPERTY_WORDS = {
    "superconducting", "superconductor", "superconductors", "superconductivity", "magnetic", "ferromagnetic",
    "antiferromagnetic", "ferrimagnetic", "magnetism", "magnetization", "ferroelectric", "piezoelectric",
    "pyroelectric", "multiferroic", "thermoelectric", "topological", "hard", "hardness", "superhard",
    "transparent", "conductive", "conducting", "conductivity", "porous", "porosity", "dense", "density",
    "elastic", "modulus", "bulk", "shear", "ductile", "brittle", "catalytic", "photocatalytic", "catalyst",
    "luminescent", "optical", "dielectric", "permittivity", "refractive", "thermal", "heat", "capacity",
    "voltage", "ionic", "diffusion", "mobility", "lightweight", "light", "heavy", "cheap", "abundant",
    "toxic", "nontoxic", "non-toxic", "radioactive", "soft", "strong", "tough", "melting", "refractory",
    "hull", "energy", "enthalpy", "volume", "spin", "polarization", "absorption", "emission", "efficiency",
    "half-metallic", "half-metal",
}  # fmt: skip
_STRUCTURE_WORDS = {
    "perovskite", "perovskites", "spinel", "spinels", "rutile", "anatase", "wurtzite", "zincblende",
    "zinc-blende", "rocksalt", "rock-salt", "fluorite", "garnet", "olivine", "layered", "2d", "zeolite",
    "heusler", "half-heusler", "pyrochlore", "delafossite", "chalcopyrite", "kesterite", "antiperovskite",
    "brownmillerite", "ruddlesden-popper", "clathrate", "skutterudite", "mof", "framework", "fcc", "bcc", "hcp",
}  # fmt: skip

_FILLER = set(
    """
    a an the i we you me us my our your it its they them their this that these those there here what which who
    he she his her him one's yourself myself
    whom how why when where whose please pls kindly thanks thank hi hello hey ok okay also too as well so then
    and or nor but with without of for in on at to from by into onto about around over under near per via
    is are was were be been being am do does did done have has had having should would could can may might
    must shall will need needs needed want wants wanted like likes looking look find found search searching
    give gives giving show showing generate generating propose proposing suggest suggesting design designing
    designed make making made create creating produce predict predicting build building get getting try
    trying let lets let's i'd i'm we'd we're i'll it's what's how's that's any some all each every other
    another more most less few many much several only just now instead actually rather really very quite
    still again yet already maybe perhaps possibly ideally preferably preferred preference prefer please
    new novel hypothetical possible plausible promising candidate candidates structure structures crystal
    crystals crystalline material materials compound compounds phase phases solid solids system systems
    composition compositions formula formulas formulae element elements chemistry chemical family
    cell cells unit conventional primitive atom atoms size sized small smaller large larger big symmetry
    symmetric symmetries space group groups spacegroup spacegroups lattice-type type kind sort one ones thing
    things something anything stuff option options result results example examples design designs sample
    samples variant variants ternary binary quaternary quinary unary intermetallic intermetallics alloy
    alloys insulator insulators insulating metal metals
    containing contains contain contained consisting consist consists composed comprising based
    including include includes included made out of mostly please need target targets targeting targeted
    value values constraint constraints requirement requirements condition conditions restriction
    restrictions limit limits setting settings property properties whose having has same different
    change changes changed switch set keep keeping use using used allowed allow allowing fine okay ok
    matter matters necessarily necessary important care not no yes don't doesn't isn't aren't do not
    none either neither both between than then if else otherwise though although however while whereas
    same similar such like e.g eg i.e ie etc include lot lots bit little up down out off first best top
    list return output proposal proposals suggestion suggestions guess guesses hit hits prediction
    predictions run calculate compute screen screening consider considering think thought hope hoping
    expect expected would've could've say said mean meaning means exactly approximately roughly about
    above below over under around near least most within after all polymorph polymorphs addition additionally
    """.split()
)

_NUMBER_WORDS = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
    "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16,
    "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50,
    "hundred": 100, "a hundred": 100, "a dozen": 12, "dozen": 12, "half a dozen": 6, "a single": 1,
    "a couple of": 2,
}  # fmt: skip
_NUMW = (
    r"(?:\d+|"
    + "|".join(sorted((re.escape(w).replace(r"\ ", r"\s+") for w in _NUMBER_WORDS), key=len, reverse=True))
    + ")"
)


def _int_word(text: str) -> int:
    text = re.sub(r"\s+", " ", text.strip().lower())
    return int(text) if text.isdigit() else _NUMBER_WORDS[text]


@cache
def _element_data() -> tuple[frozenset[str], dict[str, str]]:
    """(element symbols, lower-case name -> symbol), from pymatgen."""
    from pymatgen.core import Element

    symbols = frozenset(e.symbol for e in Element)
    names = {e.long_name.lower(): e.symbol for e in Element}
    names.update({"aluminum": "Al", "sulphur": "S", "cesium": "Cs", "caesium": "Cs"})
    return symbols, names


@cache
def _patterns() -> dict[str, str]:
    """Regex fragments that depend on the element names (built once)."""
    symbols, names = _element_data()
    name = "(?i:(?:" + "|".join(sorted(names, key=len, reverse=True)) + "))"
    guard_i = rf"(?!I\b(?:\s+(?:{_I_VERBS})\b|'))"  # "I want", "I'd": never iodine
    pre, post = r"(?<![\w'/-])", r"(?![\w'])"
    english = "|".join(sorted(_ENGLISH_SHORT, key=len, reverse=True))
    english_non_element = "|".join(w for w in sorted(_ENGLISH_SHORT, key=len, reverse=True) if w not in symbols)
    valid = "|".join(sorted((s for s in symbols if s not in _ENGLISH_SHORT), key=len, reverse=True))
    return {
        "name": name,
        # any symbol-shaped word: where an unknown symbol is an error (exclusions, after "containing")
        "shape": rf"{pre}(?:{name}|{guard_i}[A-Z][a-z]?){post}",
        # list items: short English words that are no element are never items; I/In/As/... are
        "list_item": rf"{pre}(?:{name}|{guard_i}(?!(?:{english_non_element})\b)[A-Z][a-z]?){post}",
        # real elements outside lists: names and symbols that are not English words
        "element": rf"{pre}(?:{name}|(?!(?:{english})\b)(?:{valid})){post}",
    }


def _element_of(word: str) -> str | None:
    """Symbol for a correctly capitalised symbol or an element name, else None."""
    symbols, names = _element_data()
    if word in symbols:
        return word
    return names.get(word.lower())


# ---------------------------------------------------------------------------------------------
# Hermann–Mauguin symbols
# ---------------------------------------------------------------------------------------------

_HM_ALIASES = {
    "P21/n": 14, "P21/a": 14, "P2/n": 13, "Pbnm": 62, "Pnam": 62, "Cmca": 64, "Abm2": 39, "Aba2": 41,
    "Cmma": 67, "Ccca": 68, "R-3mH": 166, "R-3mR": 166, "R-3cH": 167, "R3mH": 160,
}  # fmt: skip


@cache
def _hm_maps() -> tuple[dict[str, int], dict[str, int]]:
    """(exact symbol -> number, symbol without '-' -> number when unambiguous)."""
    exact = {spacegroup_symbol(n): n for n in range(1, 231)}
    for key, n in _HM_ALIASES.items():
        exact.setdefault(key, n)
    dashless: dict[str, int | None] = {}
    for key, n in exact.items():
        short = key.replace("-", "")
        dashless[short] = n if dashless.get(short, n) == n else None
    return exact, {k: v for k, v in dashless.items() if v is not None}


def hm_number(symbol: str) -> int | None:
    """Space-group number of a Hermann–Mauguin symbol in a usual typed form, else None."""
    key = re.sub(r"\((\d)\)", r"\1", symbol)
    key = key.replace(" ", "").replace("_", "").replace("−", "-")
    exact, dashless = _hm_maps()
    if key in exact:
        return exact[key]
    return dashless.get(key.replace("-", "")) if key.count("-") <= 1 else None


_HM_START = re.compile(r"(?<![\w/-])[PIFCAR]")
_HM_COMP = re.compile(r" ?(?:-?\d(?:_?\d|\(\d\))?|[mnabcde]|/)")
_SG_CONTEXT = re.compile(
    r"(?i:(?:space[\s-]*groups?|spacegroups?|\bsg|\bspg|symmetry|\bgroups?|\bnot|\bno|\bavoid\w*|\bexclud\w*|"
    r"\bexcept|\bwithout|\bin)\s*(?:#|no\.?|symbol|of|is|=|:)?\s*)$"
)


def _hm_at(view: str, start: int) -> tuple[int, int] | None:
    """(end, number) of the longest space-group symbol starting at ``start``."""
    ends = []
    pos = start + 1
    while len(ends) < 12:
        m = _HM_COMP.match(view, pos)
        if not m:
            break
        pos = m.end()
        ends.append(pos)
    for end in reversed(ends):
        if end < len(view) and (view[end].isalnum() or view[end] in "_/"):
            continue
        raw = view[start:end]
        if raw.endswith((" ", "/", "-")):
            continue
        number = hm_number(raw)
        if number is None:
            continue
        key = raw.replace(" ", "").replace("_", "")
        ambiguous = re.fullmatch(r"[A-Z][a-z]?", key) or (" " in raw and re.fullmatch(r"[A-Z][a-z]?\d*", key))
        if ambiguous and not _SG_CONTEXT.search(view[max(0, start - 30) : start]):
            after = view[end : end + 20].lower()
            if not re.match(r"\s*(?:symmetry|space[\s-]*group)", after):
                continue
        return end, number
    return None


# ---------------------------------------------------------------------------------------------
# Working state
# ---------------------------------------------------------------------------------------------


@dataclass
class _State:
    text: str
    consumed: list[bool] = field(default_factory=list)
    fields: dict = field(default_factory=dict)
    targets: dict = field(default_factory=dict)  # property -> {value/tolerance/minimum/maximum}
    gap_words: list = field(default_factory=list)  # (position, wide|narrow|metal, words)
    comps: list = field(default_factory=list)  # (formula|composition|elements|lone, value, position)
    anions: list = field(default_factory=list)  # (position, elements, word) of anion words standing alone
    systems: list = field(default_factory=list)
    groups: list = field(default_factory=list)
    ex_systems: list = field(default_factory=list)
    ex_groups: list = field(default_factory=list)
    ex_elements: list = field(default_factory=list)
    dropped_systems: list = field(default_factory=list)
    notes: list = field(default_factory=list)  # (position, message)
    questions: list = field(default_factory=list)
    errors: list = field(default_factory=list)
    flags: set = field(default_factory=set)
    substitutions: list = field(default_factory=list)  # (old, new) element pairs

    def __post_init__(self) -> None:
        self.consumed = [False] * len(self.text)

    def view(self) -> str:
        return "".join(_X if c else ch for ch, c in zip(self.text, self.consumed))

    def take(self, start: int, end: int) -> None:
        for i in range(start, end):
            self.consumed[i] = True

    def note(self, pos: int, message: str) -> None:
        self.notes.append((pos, message))

    def set_field(self, name: str, value, what: str) -> None:
        old = self.fields.get(name)
        if old is not None and old != value:
            self.errors.append(f"{what} is given twice with different values ({old} and {value})")
        self.fields[name] = value


def _finditer(state: _State, pattern: re.Pattern):
    """Matches on the current view (consumed text masked); callers consume what they use."""
    return list(pattern.finditer(state.view()))


# ---------------------------------------------------------------------------------------------
# Normalisation
# ---------------------------------------------------------------------------------------------

_PAREN_FORMULA = re.compile(r"(?<![\w(])[A-Z][a-z]?\d*(?:[A-Z][a-z]?\d*|\((?:[A-Z][a-z]?\d*)+\)\d*)*(?![\w(])")


def _expand_parentheses(token: str) -> str:
    def repl(m: re.Match) -> str:
        times = int(m.group(2) or 1)
        return "".join(f"{s}{(int(n or 1) * times)}" for s, n in re.findall(r"([A-Z][a-z]?)(\d*)", m.group(1)))

    return re.sub(r"\(((?:[A-Z][a-z]?\d*)+)\)(\d*)", repl, token)


def _normalise(text: str) -> str:
    table = {
        "\u2212": "-", "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2014": "-", "\u2015": "-",
        "\ufe63": "-", "\uff0d": "-", "\u2264": "<=", "\u2a7d": "<=", "\u2265": ">=", "\u2a7e": ">=",
        "\u2248": "~", "\u223c": "~", "\u2243": "~", "\u00a0": " ", "\u2009": " ", "\u202f": " ", "\u2002": " ",
        "\u2003": " ", "\u2019": "'", "\u2018": "'", "\u201c": '"', "\u201d": '"', "\u00b1": " +/- ",
        "\u0394": "Δ", "\t": " ", "\n": " ", "\r": " ", _X: " ",
    }  # fmt: skip
    text = "".join(table.get(ch, ch) for ch in text)
    text = re.sub(r"\+\s*/\s*-|\+-(?=\s*\d)", "+/-", text)

    def paren(m: re.Match) -> str:
        return _expand_parentheses(m.group(0)) if "(" in m.group(0) else m.group(0)

    return _PAREN_FORMULA.sub(paren, text)


# ---------------------------------------------------------------------------------------------
# Properties
# ---------------------------------------------------------------------------------------------

_NUM = r"[-+]?(?:\d+(?:\.\d+)?|\.\d+)(?:[eE][-+]?\d+)?"  # "1e3": read, then refused if absurd
_QTY = re.compile(
    rf"\s*(?P<num>{_NUM})(?![\d.]*\d)\s*(?P<unit>(?i:m?ev)(?![a-z])(?P<per>(?i:\s*(?:/|per)\s*(?:atom|at)\b\.?|"
    r"\s*atom\s*\^?\s*-\s*1|\s*/\s*atom))?)?"
)
_OTHER_UNIT = re.compile(
    r"\s*(?i:atoms?\b|candidates?\b|structures?\b|crystals?\b|k\b|kelvin|gpa|mpa|%|percent|nm\b|å|angstrom|"
    r"g/cm|ohm|s/cm|t\b|tesla|w/|j/|mj|kj)"
)
_CMP_NEGATIVE = re.compile(r"\s*(?i:(?P<dir>more|less)\s+negative\s+than)\s*")
_CMP_MIN = re.compile(
    r"\s*(?i:>=|=>|>|(?:greater|larger|higher|bigger|more)\s+than\s+or\s+equal\s+to|"
    r"equal\s+to\s+or\s+(?:greater|larger|higher|bigger|more)\s+than|at\s+least|no\s+(?:less|lower|smaller)\s+than|not\s+(?:less|lower|smaller)\s+than|"
    r"not\s+below|not\s+under|(?:greater|larger|higher|bigger|wider|more)\s+than|above|over|exceeding|"
    r"in\s+excess\s+of|minimum(?:\s+of)?|min\b\.?|starting\s+(?:at|from)|from)\s*"
)
_CMP_MAX = re.compile(
    r"\s*(?i:<=|=<|<|(?:less|lower|smaller|narrower)\s+than\s+or\s+equal\s+to|"
    r"equal\s+to\s+or\s+(?:less|lower|smaller)\s+than|at\s+most|no\s+(?:more|greater|larger|higher|bigger)\s+than|"
    r"not\s+(?:more|greater|larger|higher|bigger)\s+than|not\s+above|not\s+over|not\s+exceeding|"
    r"(?:less|lower|smaller|narrower)\s+than|below|under(?!stood)|up\s+to|maximum(?:\s+of)?|max\b\.?)\s*"
)
_LEAD = re.compile(
    r"\s*(?:[,:=~(]|(?i:(?:of|is|are|be|being|should|must|needs?\s+to|has\s+to|have\s+to|would\s+be|with|a|an|"
    r"the|that|which|ideally|preferably|value|target(?:ed|ing)?|approximately|approx\b\.?|about|around|roughly|"
    r"near(?:ly)?|close\s+to|equal\s+to|equals|cent(?:er|re)d\s+(?:at|on|around)|at|somewhere|per\s+atom|"
    r"in\s+the\s+range(?:\s+of)?|within\s+the\s+range(?:\s+of)?|range|set\s+to|to\s+be|to|instead|now|"
    r"energy)\b))"
)
_TOL = re.compile(r"\s*\(?\s*(?:\+/-|(?i:plus\s+or\s+minus|give\s+or\s+take|with\s+a\s+tolerance\s+of))\s*")
_RANGE_SEP = re.compile(r"\s*(?:-(?=\s*\d)|(?i:to|and)\b)\s*")
_OR_MORE = re.compile(r"\s*(?i:or\s+(?:more|higher|above|greater|larger|bigger)|and\s+(?:above|up)|\+(?!\s*/))")
_OR_LESS = re.compile(r"\s*(?i:or\s+(?:less|lower|below|smaller)|and\s+(?:below|under))")
_CONTINUE = re.compile(r"\s*(?:,\s*)?(?i:(?:and|but|,)\s*(?:also\s+)?)")


@dataclass
class _Qty:
    value: Decimal
    unit: str | None  # "eV", "meV" or None
    end: int


def _qty(s: str, pos: int) -> _Qty | None:
    m = _QTY.match(s, pos)
    if not m:
        return None
    try:
        value = Decimal(m.group("num"))
    except InvalidOperation:
        return None
    unit = None
    if m.group("unit"):
        unit = "meV" if m.group("unit")[0] in "mM" else "eV"
    elif _OTHER_UNIT.match(s, m.end()):
        return None
    return _Qty(value, unit, m.end())


def _ev(q: _Qty, unit: str | None) -> float:
    unit = q.unit or unit
    return float(q.value / 1000) if unit == "meV" else float(q.value)


def _bound(s: str, pos: int) -> tuple[str, _Qty] | None:
    """A comparison ("above 2 eV") at ``pos``: (minimum|maximum, quantity)."""
    m = _CMP_NEGATIVE.match(s, pos)
    if m:
        q = _qty(s, m.end())
        return ("maximum" if m.group("dir").lower() == "more" else "minimum", q) if q else None
    for key, rx in (("maximum", _CMP_MAX), ("minimum", _CMP_MIN)):
        m = rx.match(s, pos)
        if m:
            q = _qty(s, m.end())
            if q:
                return key, q
    return None


def _target_at(s: str, pos: int) -> tuple[dict, int] | None:
    """Read a target after a property keyword; returns ({value/tolerance/minimum/maximum}, end)."""
    for _ in range(10):
        # between X and Y / from X to Y
        m = re.compile(r"\s*(?i:between|from|in\s+the\s+range(?:\s+of)?|range)\s*").match(s, pos)
        if m:
            q1 = _qty(s, m.end())
            sep = _RANGE_SEP.match(s, q1.end) if q1 else None
            q2 = _qty(s, sep.end()) if sep else None
            if q1 and q2:
                return _continue(s, {"minimum": (q1, q2.unit), "maximum": (q2, None)}, q2.end)
        b = _bound(s, pos)
        if b:
            return _continue(s, {b[0]: (b[1], None)}, b[1].end)
        q = _qty(s, pos)
        if q:
            tol = _TOL.match(s, q.end)
            if tol:
                t = _qty(s, tol.end())
                if t:
                    end = t.end + (1 if s[t.end : t.end + 1] == ")" else 0)
                    return {"value": (q, t.unit), "tolerance": (t, q.unit)}, end
            sep = _RANGE_SEP.match(s, q.end)
            if sep and not s[q.end : sep.end()].strip().lower() == "and":
                q2 = _qty(s, sep.end())
                if q2 and (q.value < q2.value):
                    return _continue(s, {"minimum": (q, q2.unit), "maximum": (q2, None)}, q2.end)
            more = _OR_MORE.match(s, q.end)
            if more:
                return _continue(s, {"minimum": (q, None)}, more.end())
            less = _OR_LESS.match(s, q.end)
            if less:
                return _continue(s, {"maximum": (q, None)}, less.end())
            return _continue(s, {"value": (q, None)}, q.end)
        lead = _LEAD.match(s, pos)
        if not lead or lead.end() == pos:
            return None
        pos = lead.end()
    return None


def _continue(s: str, parts: dict, end: int) -> tuple[dict, int]:
    """Second bound joined with and/but: "above 1 eV and below 2 eV"."""
    while True:
        m = _CONTINUE.match(s, end)
        if not m:
            return parts, end
        b = _bound(s, m.end())
        if not b or b[0] in parts:
            return parts, end
        parts[b[0]] = (b[1], None)
        end = b[1].end


def _resolve_units(parts: dict, default: str | None) -> dict:
    units = [q.unit for q, _ in parts.values() if q.unit]
    fallback = units[-1] if units else default
    return {k: _ev(q, q.unit or hint or fallback) for k, (q, hint) in parts.items()}


_GAP_KW = (  # "GaP" is gallium phosphide, not a gap
    r"(?:(?i:(?:electronic|optical|direct|indirect|fundamental)\s+)?(?-i:(?!GaPs?\b))(?i:band[\s_-]*gaps?|gaps?)|"
    r"(?-i:E_?g(?:ap)?))"
)
_FORM_KW = (
    r"(?:(?i:formation[\s_-]*(?:energy|energies|enthalpy|enthalpies)|(?:energy|enthalpy|heat)\s+of\s+formation)|"
    r"(?-i:E_?f(?:orm)?|ΔH_?f|dH_?f))"
)
_PROPS = {"band_gap": (_GAP_KW, "band gap"), "formation_energy": (_FORM_KW, "formation energy")}


def _add_target(state: _State, prop: str, values: dict, pos: int) -> None:
    target = state.targets.setdefault(prop, {})
    label = _PROPS[prop][1]
    for key, value in values.items():
        if key in target and target[key] != value:
            state.errors.append(
                f"the {label} {key} is given twice with different values ({target[key]:g} and {value:g})"
            )
        target[key] = value


def _read_properties(state: _State) -> None:
    # clearing phrases (multi-turn)
    clear = re.compile(
        r"(?i:\b(?:drop|remove|forget|ignore|delete|clear|no\s+more|without\s+(?:a|the|any))\s+(?:the\s+|any\s+)?"
        r"(?P<a>band[\s-]*gap|gap|formation[\s-]*energy)(?:\s+(?:target|requirement|constraint|condition|"
        r"restriction|limit|wish|value))?s?\b|\b(?:any|no)\s+(?P<b>band[\s-]*gap|gap|formation[\s-]*energy)\s+"
        r"(?:target|requirement|constraint|condition|restriction|limit|preference)s?\b|"
        r"\bany\s+(?P<c>band[\s-]*gap|formation[\s-]*energy)\b(?:\s+is\s+(?:fine|ok|okay))?)"
    )
    for m in _finditer(state, clear):
        which = (m.group("a") or m.group("b") or m.group("c")).lower()
        state.flags.add("clear_band_gap" if "gap" in which else "clear_formation_energy")
        state.take(*m.span())

    # words for the band gap
    value_ahead = (
        r"\s*(?:[:=~<>(]|\+/-|\d|[-+.]\d|(?i:of|around|about|above|below|over|under|between|from|near|at\b|is\b|"
        r"approx|roughly|close|greater|larger|higher|more|less|lower|smaller|within|exceed|in\s+the\s+range|up\s+to|"
        r"should|must))"
    )
    words = [
        (rf"(?i:\b(?:wide|large|big|high)[\s-]*(?:band[\s-]*)?gap)(?!{value_ahead})", "wide"),
        (rf"(?i:\b(?:narrow|small|low)[\s-]*(?:band[\s-]*)?gap)(?!{value_ahead})", "narrow"),
        (r"(?i:\b(?:wide|large|big|high|narrow|small|low)[\s-]*(?=(?:band[\s-]*)?gap\b))", "adjective"),
        (
            r"(?i:\b(?:zero|vanishing|no)[\s-]*(?:band[\s-]*)?gap\b|\bgapless\b|\bmetallic\b(?!\s+(?:oxide|bond)))",
            "metal",
        ),
        (
            r"(?i:\b(?:a|be|is|are|as|being)\s+metals?\b(?![\s-]*(?:oxide|oxides|nitride|sulfide|halide|carbide|"
            r"boride|hydride|organic|free|cation|cations|ion|ions|atom|atoms|site|sites|framework|compound|"
            r"compounds|element|elements|center|centre)))",
            "metal",
        ),
        (r"(?i:\binsulat(?:or|ors|ing)\b)", "wide"),
    ]
    for pattern, kind in words:
        for m in _finditer(state, re.compile(pattern)):
            state.take(*m.span())
            if kind != "adjective":
                state.gap_words.append((m.start(), kind, m.group(0).strip()))

    view = state.view()
    for prop, (kw, label) in _PROPS.items():
        default = "eV"
        # value before the keyword: "a 3 eV band gap", "-2.5 eV/atom formation energy"
        before = re.compile(
            rf"(?:(?i:between|from)\s+(?<![\w.])(?P<lo>{_NUM})\s*(?P<lounit>(?i:m?ev))?\s*(?i:and|to|-)\s*|"
            rf"(?P<cmp>(?i:>=|<=|>|<|~|above|below|over|under|at\s+least|at\s+most|around|about|near|"
            rf"approximately|roughly))\s*)?(?<![\w.])(?P<num>{_NUM})\s*(?P<unit>(?i:m?ev)(?:\s*(?:/|per)\s*atom)?)"
            rf"[\s-]*{kw}\b"
        )
        for m in before.finditer(state.view()):
            q = _qty(m.group(0), m.start("num") - m.start())
            if not q:
                continue
            if m.group("lo"):
                lo = _Qty(Decimal(m.group("lo")), None, 0)
                values = {"minimum": _ev(lo, q.unit), "maximum": _ev(q, default)}
                if m.group("lounit"):
                    values["minimum"] = _ev(_qty(m.group(0), m.start("lo") - m.start()), default)
                _add_target(state, prop, values, m.start())
                state.take(*m.span())
                continue
            cmp = (m.group("cmp") or "").lower()
            key = "value"
            if cmp and (cmp in (">=", ">", "above", "over") or cmp.startswith("at least")):
                key = "minimum"
            elif cmp and (cmp in ("<=", "<", "below", "under") or cmp.startswith("at most")):
                key = "maximum"
            _add_target(state, prop, {key: _ev(q, default)}, m.start())
            state.take(*m.span())
        for m in re.compile(rf"(?<![\w-]){kw}(?![\w])").finditer(state.view()):
            view = state.view()
            if state.consumed[m.start()]:
                continue
            found = _target_at(view, m.end())
            if found is None:
                state.take(*m.span())
                if prop == "band_gap" and any(abs(p - m.start()) < 25 for p, _, _ in state.gap_words):
                    continue
                if prop == "formation_energy" and re.search(r"(?i)\bnegative\s*$", view[: m.start()]):
                    state.take(re.search(r"(?i)\bnegative\s*$", view[: m.start()]).start(), m.start())
                    _add_target(state, prop, {"maximum": 0.0}, m.start())
                    continue
                state.note(m.start(), f"'{m.group(0)}' without a value (give one, e.g. '{label} around ...')")
                continue
            parts, end = found
            _add_target(state, prop, _resolve_units(parts, default), m.start())
            state.take(m.start(), end)


def _read_stability(state: _State) -> None:
    hull = re.compile(
        r"(?i:(?P<zero>\bzero\s+)?\b(?:energy\s+above\s+(?:the\s+)?(?:convex\s+)?hull|e_?above_?hull|e_?hull|distance\s+to\s+"
        r"(?:the\s+)?(?:convex\s+)?hull)(?:\s+(?:energy|value))?)"
    )
    for m in _finditer(state, hull):
        found = _target_at(state.view(), m.end())
        end = found[1] if found else m.end()
        values = _resolve_units(found[0], "eV") if found else {}
        if m.group("zero") or (values and all(v == 0 for k, v in values.items() if k != "tolerance")):
            state.set_field("stable", True, "stability")
        else:
            state.note(
                m.start(), f"'{state.text[m.start() : end]}' (only 'stable' = on the convex hull can be requested)"
            )
        state.take(m.start(), end)
    unstable_ok = re.compile(
        r"(?i:\b(?:not\s+necessarily|need\s+not|needn't|doesn't\s+(?:need|have)\s+to|does\s+not\s+(?:need|have)\s+to|"
        r"don't\s+(?:need|have)\s+to|do\s+not\s+(?:need|have)\s+to|no\s+need\s+to)\s+(?:be\s+)?(?:thermodynamically\s+)?"
        r"stable\b|\bstability\s+(?:does\s*n[o']t|doesn't|is\s+not|isn't)\s+(?:matter|important|needed|required)\b|"
        r"\b(?:meta|un)stable(?:\s+(?:ones|structures|candidates|phases))?\s+(?:is|are)\s+(?:fine|ok|okay|allowed|"
        r"acceptable)\b|\b(?:drop|remove|forget|ignore)\s+(?:the\s+)?stab(?:le|ility)(?:\s+(?:requirement|"
        r"constraint|condition|filter))?\b|\ballow\s+(?:meta|un)stable(?:\s+(?:ones|structures|candidates))?\b)"
    )
    for m in _finditer(state, unstable_ok):
        state.set_field("stable", False, "stability")
        state.take(*m.span())
    stable = re.compile(
        r"(?i:\b(?:thermodynamically|thermally|energetically)\s+stable\b|(?<![\w-])stable\b|\bon\s+the\s+(?:convex\s+)?"
        r"hull\b|\bon\s+hull\b|\bzero\s+energy\s+above\s+(?:the\s+)?(?:convex\s+)?hull\b|"
        r"\bthermodynamic(?:al)?\s+stability\b|\be_?(?:above_?)?hull\s*=\s*0(?:\.0+)?\b(?!\.\d))"
    )
    for m in _finditer(state, stable):
        before = state.view()[max(0, m.start() - 12) : m.start()].lower()
        if re.search(r"\bnot\s+$|\bun$|\bmeta$", before):
            continue
        state.set_field("stable", True, "stability")
        state.take(*m.span())
    for m in _finditer(state, re.compile(r"(?i:\b(?:meta|un|not\s+)stable\b)")):
        state.take(*m.span())
        state.note(m.start(), f"'{m.group(0)}' (only 'stable' = on the convex hull can be requested)")


# ---------------------------------------------------------------------------------------------
# Composition
# ---------------------------------------------------------------------------------------------

_FORMULA = r"(?<![\w'’/-])(?:[A-Z][a-z]?\d*(?:\.\d+)?)+(?![\w'’])"


def _classify_formula(token: str) -> tuple[str, str | None]:
    """('formula'|'lone'|'placeholder'|'acronym'|'error'|'none', message) for a formula-shaped word."""
    symbols, _ = _element_data()
    parts = re.findall(r"([A-Z][a-z]?)(\d*(?:\.\d+)?)", token)
    has_digit = any(n for _, n in parts)
    has_lower = any(len(s) == 2 for s, _ in parts)
    bad = [s for s, _ in parts if s not in symbols]
    if len(parts) == 1 and not has_digit:
        return ("lone", None) if not bad else ("none", None)
    if not has_digit and not has_lower:  # all capitals: an acronym unless every letter is an element
        if bad or token in _ENGLISH_CAPS:
            return "acronym", None
    if bad:
        long_bad = [s for s in bad if len(s) == 2]
        if long_bad and (has_digit or len(bad) < len(parts)):  # "Qq2O3", "XxO": a chemistry slot
            return "error", f"unknown element {long_bad[0]!r} in {token!r}"
        if all(len(s) == 1 for s in bad):
            return "placeholder", f"'{token}' (prototype formula with placeholder letters; give the elements)"
        return "none", None
    try:
        parse_counts(token)
    except InputError as exc:
        return "error", str(exc)
    return "formula", None


def _multiply(token: str, times: int) -> str:
    return "".join(
        f"{s}{int(n or 1) * times if int(n or 1) * times > 1 else ''}"
        for s, n in re.findall(r"([A-Z][a-z]?)(\d*)", token)
    )


def _read_cell_formula(state: _State) -> None:
    cell = (
        r"(?i:(?:(?:the|a|one|each|every|its|per)\s+)?"
        r"(?:(?:conventional|primitive|crystallographic|unit|full)[\s-]+)?cell\b)"
    )
    rules = [
        re.compile(rf"(?i:\bexactly\s+)?(?P<f>{_FORMULA})(?i:\s+(?:atoms\s+)?(?:in|per|inside|for)\s+{cell})"),
        re.compile(
            rf"(?i:\b(?:(?:unit[\s-]+)?cell\s+(?:formula|content|contents|composition|stoichiometry)|"
            rf"(?:unit|conventional|primitive|full)[\s-]+cell(?:\s+(?:of|with|containing|content|contents|formula|"
            rf"composition))?|(?:a|one)\s+cell\s+(?:of|with|containing)|exactly)\s*(?:of|is|=|:|being)?\s*)(?P<f>{_FORMULA})"
        ),
        re.compile(rf"(?P<f>{_FORMULA})(?i:\s+(?:unit\s+|conventional\s+|primitive\s+)?cell\b)"),
    ]
    for rx in rules:
        for m in _finditer(state, rx):
            kind, message = _classify_formula(m.group("f"))
            if kind == "error":
                state.errors.append(message)
            elif kind != "formula":
                continue
            else:
                state.comps.append(("formula", m.group("f"), m.start()))
            state.take(*m.span())
    units = re.compile(rf"(?i:\b(?P<n>{_NUMW})\s+formula\s+units?\s+(?:of\s+)?)(?P<f>{_FORMULA})")
    for m in _finditer(state, units):
        kind, message = _classify_formula(m.group("f"))
        if kind == "error":
            state.errors.append(message)
        elif kind == "formula":
            state.comps.append(("formula", _multiply(m.group("f"), _int_word(m.group("n"))), m.start()))
        else:
            continue
        state.take(*m.span())


def _list_items(state: _State, text: str, start: int) -> list[str] | None:
    """Element symbols of a matched list, or None after recording an error / a placeholder note."""
    out = []
    for m in re.finditer(rf"(?<![\w'])(?:{_patterns()['name']}|[A-Z][a-z]?)(?![\w'])", text):
        word = m.group(0)
        symbol = _element_of(word)
        if symbol is None:
            if len(word) == 2 and word[0].isupper() and word[1].islower():
                state.errors.append(f"unknown element {word!r} in {text.strip()!r}")
                return None
            state.note(start, f"'{text.strip()}' (placeholder letter {word!r}; give the elements)")
            return None
        if symbol not in out:
            out.append(symbol)
    return out


_LIST_SEP = r"(?:\s*,\s*(?:(?i:and|&)\s+)?|\s+(?:(?i:and)|&)\s+)"
_OR_SEP = r"(?:\s*,\s*(?:(?i:and|or|nor)\s+)?|\s+(?i:and|or|nor|&)\s+)"


def _read_exclusions(state: _State) -> None:
    p = _patterns()
    neg = (
        r"(?i:\b(?:without|excluding|exclude|excluded|except(?:\s+for)?|avoid|avoiding|free\s+of|but\s+not|no\s+more|"
        r"not\s+containing|no|not|does\s+not\s+contain|doesn't\s+contain|don't\s+want|do\s+not\s+want|"
        r"never)\s+(?:(?:any|the)\s+)?(?:elements?\s+)?)"
    )
    item = p["list_item"]
    for m in _finditer(state, re.compile(rf"{neg}(?P<list>{item}(?:{_OR_SEP}{item})*)")):
        words = re.findall(item, m.group("list"))
        if all(len(w) == 1 and _element_of(w) is None for w in words):
            continue  # "no A" is no element
        items = _list_items(state, m.group("list"), m.start())
        state.take(*m.span())
        if items is not None:
            state.ex_elements.extend(x for x in items if x not in state.ex_elements)
    for m in _finditer(state, re.compile(rf"(?P<item>{p['element']})[\s-]*(?i:free)\b")):
        symbol = _element_of(m.group("item"))
        if symbol not in state.ex_elements:
            state.ex_elements.append(symbol)
        state.take(*m.span())


_STRUCTURE_PHRASES = re.compile(
    r"(?i:\b(?:zinc[\s-]*blende|rock[\s-]*salt|(?:half|full)[\s-]*heusler|anti[\s-]*perovskite|double[\s-]*perovskite|"
    r"ruddlesden[\s-]*popper|cesium[\s-]*chloride|sodium[\s-]*chloride|nickel[\s-]*arsenide|cadmium[\s-]*iodide)"
    r"(?:[\s-]+(?:type|structure|prototype|like))?\b)"
)


def _read_structure_types(state: _State) -> None:
    for m in _finditer(state, _STRUCTURE_PHRASES):
        state.note(
            m.start(), f"'{m.group(0)}' (structure types are not supported; give a space group or crystal system)"
        )
        state.take(*m.span())


def _read_substitution(state: _State) -> None:
    """ "Se instead of S", "replace S with Se", "swap S for Se": (old, new) pairs for a refinement."""
    li = _patterns()["list_item"]
    rules = [
        rf"(?i:\bwith\s+)?(?P<new>{li})\s+(?i:instead\s+of|rather\s+than|in\s+place\s+of)\s+(?P<old>{li})",
        rf"(?i:\b(?:replace|substitute|swap|exchange)\s+)(?P<old>{li})\s+(?i:with|by|for)\s+(?P<new>{li})",
    ]
    for rule in rules:
        for m in _finditer(state, re.compile(rule)):
            old, new = _element_of(m.group("old")), _element_of(m.group("new"))
            if old is None or new is None:
                continue
            state.substitutions.append((old, new))
            state.take(*m.span())


def _read_elements(state: _State) -> None:
    p = _patterns()
    symbols, names = _element_data()
    # dash / slash joined lists: Ti-O, Li-Fe-P-O, Ti/O, lithium-iron-oxygen
    dash_item = rf"(?:{p['name']}|[A-Z][a-z]?)(?![\w'])"
    dash = re.compile(rf"(?<![\w'/-]){dash_item}(?:\s*[-/]\s*{dash_item})+(?![-/]?\d)")
    for m in _finditer(state, dash):
        items = _list_items(state, m.group(0), m.start())
        state.take(*m.span())
        if items is not None:
            state.comps.append(("elements", items, m.start()))

    # formula tokens
    structure_type = re.compile(r"[\s-]*(?i:type|like|structured|prototype)\b")
    for m in _finditer(state, re.compile(_FORMULA)):
        token = m.group(0)
        kind, message = _classify_formula(token)
        typed = structure_type.match(state.view(), m.end())
        if kind in ("formula", "placeholder") and typed:
            state.note(m.start(), f"'{state.text[m.start() : typed.end()]}' (structure types are not supported)")
            state.take(m.start(), typed.end())
            continue
        if kind == "formula":
            state.comps.append(("composition", token, m.start()))
        elif kind == "error":
            state.errors.append(message)
        elif kind == "placeholder":
            state.note(m.start(), message)
        else:
            continue
        state.take(*m.span())

    # comma / and lists: "Li, Fe, P and O", "lithium and oxygen"
    el = p["element"]
    li = p["list_item"]
    for m in _finditer(state, re.compile(rf"{li}(?:{_LIST_SEP}{li})+")):
        words = re.findall(li, m.group(0))
        if not any(_element_of(w) is not None and w not in _ENGLISH_SHORT for w in words):
            continue
        items = _list_items(state, m.group(0), m.start())
        state.take(*m.span())
        if items is not None:
            state.comps.append(("elements", items, m.start()))

    # names or symbols before an anion word: titanium oxide, lithium iron phosphate, Ti oxide
    el = p["element"]
    anion = re.compile(rf"(?P<items>{el}(?:[\s-]+{el}){{0,5}})[\s-]+(?P<anion>(?i:{_ANION}))\b")
    for m in _finditer(state, anion):
        elems = [_element_of(w) for w in re.findall(el, m.group("items"))]
        elems += _ANIONS[m.group("anion").lower().rstrip("s")]
        state.comps.append(("elements", list(dict.fromkeys(elems)), m.start()))
        state.take(*m.span())

    # anion words alone or with a list elsewhere: "an oxide containing Li and Mn"
    for m in _finditer(state, re.compile(rf"(?i:\b{_ANION}\b)")):
        state.anions.append((m.start(), _ANIONS[m.group(0).lower().rstrip("s")], m.group(0)))
        state.take(*m.span())

    # one element on purpose: pure silicon, elemental C, carbon allotropes
    pure = re.compile(
        rf"(?i:\b(?:pure|elemental)\s+)(?P<a>{el})|(?P<b>{el})(?i:\s+allotropes?\b)|(?i:\ballotropes?\s+of\s+)(?P<c>{el})"
    )
    for m in _finditer(state, pure):
        symbol = _element_of(m.group("a") or m.group("b") or m.group("c"))
        state.comps.append(("elements", [symbol], m.start()))
        state.take(*m.span())

    # lone elements: names anywhere ("lead" only in context); symbols after a composition word
    ctx = (
        r"(?i:\b(?:containing|contains?|with|of|made\s+of|composed\s+of|consisting\s+of|based\s+on|from|"
        r"including|includes?)\s+)"
    )
    for m in _finditer(state, re.compile(rf"{ctx}(?P<w>{p['shape']})")):
        word = m.group("w")
        if _element_of(word) is None and len(word) == 2 and word not in _ENGLISH_SHORT:
            state.errors.append(f"unknown element {word!r}")
            state.take(*m.span())
    for m in _finditer(state, re.compile(rf"(?P<ctx>{ctx})?(?P<w>{el})")):
        word = m.group("w")
        symbol = _element_of(word)
        is_name = word not in symbols
        if is_name and word.lower() == "lead" and not m.group("ctx"):
            continue
        if not is_name and len(word) == 1 and not m.group("ctx"):
            continue
        state.comps.append(("lone", [symbol], m.start()))
        state.take(m.start("w"), m.end("w"))


# ---------------------------------------------------------------------------------------------
# Symmetry, size, count
# ---------------------------------------------------------------------------------------------

# what a count of candidates is a count of ("10 candidates", "5 new structures")
_COUNT_NOUN = (
    r"(?:candidates?|structures?|crystals?|materials?|compounds?|options?|proposals?|suggestions?|designs?|"
    r"results?|hits?|ones|examples?|samples?|variants?|polymorphs?|guesses|predictions?|phases)"
)
_COUNT_ADJ = (
    r"(?:more|new|different|distinct|unique|other|possible|additional|extra|further|candidate|crystal|plausible|"
    r"hypothetical|promising|good|best|top|diverse|random|such)"
)
# a number that belongs to another setting ("225, 10 candidates", "62 or 14, 8 atoms"): ends a list
_OTHER_SETTING = (
    rf"(?!\d|\.\d|\s*-?\s*(?i:(?:{_COUNT_ADJ}\s+)*{_COUNT_NOUN}\b|atoms?\b|m?ev\b|more\b|of\s+them\b|"
    r"formula\s+units?\b|%|k\b))"
)

_EXCLUDED_AFTER = re.compile(
    r"(?i:\s*,?\s+(?:is\s+|are\s+)?(?:excluded|not\s+allowed|forbidden|not\s+wanted|disallowed)\b)"
)
_NEG_PREFIX = (
    r"(?P<neg>(?i:\b(?:no\s+more|no\s+longer|not\s+anymore|not|no|non|never|excluding|exclude|excluded|except(?:\s+for)?|avoid|avoiding|without|"
    r"other\s+than|anything\s+but|but\s+not|nothing)(?:\s+|-)(?:(?:in|a|an|any|the)\s+)?))?"
    r"(?P<drop>(?i:\b(?:instead\s+of|rather\s+than)\s+(?:(?:a|an|the)\s+)?))?"
)


def _read_symmetry(state: _State) -> None:
    # clearing phrases
    clear = re.compile(
        r"(?i:\bany\s+(?:crystal\s+system|symmetry|space[\s-]*group|lattice)s?(?:\s+is\s+(?:fine|ok|okay))?\b|"
        r"\b(?:no|drop|remove|forget|ignore)\s+(?:the\s+)?(?:symmetry|space[\s-]*group|crystal[\s-]*system)\s*"
        r"(?:constraint|requirement|restriction|wish|preference|condition)?s?\b(?!\s*(?:#|no\b|number|\d|[A-Z]))|"
        r"\bsymmetry\s+(?:does\s*n[o']t|doesn't)\s+matter\b)"
    )
    for m in _finditer(state, clear):
        state.flags.add("clear_symmetry")
        state.take(*m.span())

    # space groups by number, with optional negation
    numlist = rf"(?P<nums>\d+(?:\s*(?:,|or|and|/|&)\s*(?:#\s*)?\d+{_OTHER_SETTING})*)"
    kw = (
        r"(?i:space[\s_-]*groups?|spacegroups?|sg|spg|s\.g\.|groups?)"
        r"(?:\s*(?:#|(?i:no\b\.?|number|num\b\.?|nr\b\.?)|:|=|of|is))*\s*"
    )
    rx = re.compile(rf"{_NEG_PREFIX}(?<![\w]){kw}#?\s*{numlist}\b(?!\.\d)(?P<post>{_EXCLUDED_AFTER.pattern})?")
    for m in _finditer(state, rx):
        numbers = [int(n) for n in re.findall(r"\d+", m.group("nums"))]
        for n in numbers:
            try:
                check_spacegroup(n)
            except InputError as exc:
                state.errors.append(str(exc))
                break
        else:
            _add_groups(state, numbers, m)
        state.take(*m.span())

    # Hermann–Mauguin symbols; a list after a negation is negated as a whole ("not P1 or P-1")
    view = state.view()
    pos = 0
    last: tuple[int, str] = (-1, "")  # end and kind (neg/drop/wish) of the previous symbol
    joined = re.compile(r"\s*(?:,|/|&|(?i:and|or|nor))?\s*(?:(?i:and|or|nor)\s+)?(?:(?i:the)\s+)?")
    while True:
        m = _HM_START.search(view, pos)
        if not m:
            break
        found = _hm_at(view, m.start())
        if not found:
            pos = m.start() + 1
            continue
        end, number = found
        start = m.start()
        paren = re.compile(r"\s*\(\s*(?i:no\.?|#|sg|space\s+group)?\s*(\d+)\s*\)").match(view, end)
        if paren:
            if int(paren.group(1)) != number:
                state.errors.append(f"{view[start:end]} is space group {number}, not {paren.group(1)}")
            end = paren.end()
        before = view[max(0, start - 60) : start]
        pre = re.search(rf"{_NEG_PREFIX}(?:(?i:space[\s-]*group|sg|symmetry)\s*)?$", before)
        post = _EXCLUDED_AFTER.match(view, end)
        sep = joined.fullmatch(view, last[0], start) if last[0] >= 0 else None
        if post:
            kind = "neg"
            end = post.end()
        elif pre and (pre.group("neg") or pre.group("drop")):
            start -= len(before) - pre.start()
            kind = "neg" if pre.group("neg") else "drop"
        elif sep and last[1] in ("neg", "drop"):
            kind = last[1]
        else:
            kind = "wish"
        target = {"neg": state.ex_groups, "wish": state.groups}.get(kind)
        if target is not None and number not in target:
            target.append(number)
        last = (end, kind)
        state.take(start, end)
        view = state.view()
        pos = end

    # "space group" followed by something that is not a group
    rx = re.compile(r"(?i:\b(?:space[\s-]*group|spacegroup|sg)\s*(?:symbol\s*)?(?::|=|is)?\s*)(?P<sym>[A-Z][\w/-]*)")
    for m in _finditer(state, rx):
        state.errors.append(f"space group {m.group('sym')!r} is not a known symbol or number (e.g. 'Fm-3m' or 225)")
        state.take(*m.span())

    # crystal systems, with optional negation
    sep = r"(?:\s*(?:,|/)\s*(?:(?i:or|and|nor)\s+)?|\s+(?i:or|and|nor)\s+)"
    article = r"(?:(?i:a|an|any)\s+)?"
    rx = re.compile(
        rf"{_NEG_PREFIX}(?P<list>(?i:{_SYS})(?:{sep}{article}(?i:{_SYS}))*)\b"
        rf"(?P<post>(?i:\s+(?:structures?|ones|phases|crystals))?{_EXCLUDED_AFTER.pattern})?"
    )
    for m in _finditer(state, rx):
        names = [_SYSTEM_WORDS[w.lower()] for w in re.findall(rf"(?i:{_SYS})", m.group("list"))]
        if m.group("neg") or m.group("post"):
            target = state.ex_systems
        elif m.group("drop"):
            target = state.dropped_systems
        else:
            target = state.systems
        target.extend(n for n in names if n not in target)
        state.take(*m.span())


def _add_groups(state: _State, numbers: list[int], m: re.Match) -> None:
    if m.group("neg") or m.groupdict().get("post"):
        target = state.ex_groups
    elif m.group("drop"):
        return
    else:
        target = state.groups
    target.extend(n for n in numbers if n not in target)


def _read_size(state: _State) -> None:
    cell_words = r"(?i:(?:/|per|in\s+(?:the|a|each|one)?|in)\s*(?:unit\s+|conventional\s+|primitive\s+)?cells?\b)"
    atoms = rf"(?i:[\s-]*atoms?\b(?:\s*{cell_words})?)"
    n = rf"(?P<n>{_NUMW})"
    for m in _finditer(
        state,
        re.compile(
            rf"(?i:\bat\s+least|(?<!no\s)(?<!not\s)\bmore\s+than|(?<!not\s)\bover|\bminimum(?:\s+of)?|>=?)\s*{n}{atoms}"
        ),
    ):
        state.note(m.start(), f"'{m.group(0).strip()}' (only a maximum number of atoms can be requested)")
        state.take(*m.span())
    rules = [
        (rf"(?i:\b(?:fewer|less)\s+than|<(?!=)|\bunder|\bbelow)\s*{n}{atoms}", -1),
        (
            rf"(?i:\bat\s+most|\bno\s+more\s+than|\bnot\s+more\s+than|\bup\s+to|\bmax(?:imum)?\.?(?:\s+of)?|<=|=<|"
            rf"\bmaximally|\bwithin|\ba\s+maximum\s+of|\bat\s+max|\b(?:less|fewer)\s+than\s+or\s+equal\s+to|"
            rf"\bnot\s+exceeding|\bnot\s+to\s+exceed|\bnever\s+more\s+than|\bno\s+(?:larger|bigger|greater)\s+than)"
            rf"\s*{n}{atoms}",
            0,
        ),
        (rf"(?<![\w.]){n}{atoms}(?i:\s*(?:or\s+(?:fewer|less)|max(?:imum)?|at\s+most|tops))\b", 0),
        (rf"(?<![\w.]){n}(?i:\s+or\s+(?:fewer|less)){atoms}", 0),  # "12 or fewer atoms"
        (
            r"(?i:\b(?:number\s+of\s+atoms|atom\s+count|atoms\s+per\s+(?:unit\s+)?cell|max[_\s]atoms|cell\s+size)"
            r"\s*(?:(?P<cmp><=|=<|<|=|:|of|at\s+most|below|under|up\s+to|is|\s)\s*))(?P<n>\d+)\b",
            0,
        ),
        (  # "atoms <= 12", "atoms per cell: at most 12", "atoms below 13"
            rf"(?i:\batoms?(?:\s*{cell_words})?\s*(?P<cmp><=|=<|<|at\s+most|no\s+more\s+than|up\s+to|below|under|"
            rf"fewer\s+than|less\s+than|max(?:imum)?\.?|:)\s*){n}\b(?!\s*(?i:m?ev|%|k\b))",
            0,
        ),
        (rf"(?i:\bexactly\s+){n}{atoms}", 0),
        (rf"(?<![\w.]){n}[\s-]*(?i:atoms?[\s-]*(?:unit\s+)?cells?\b|atoms?\s*{cell_words})", 0),
        (rf"(?<![\w.]){n}-atom\b", 0),
        (rf"(?<![\w.]){n}\s+(?i:atoms)\b", 0),
    ]
    for pattern, shift in rules:
        for m in _finditer(state, re.compile(pattern)):
            value = _int_word(m.group("n"))
            if shift:
                value += shift
            elif m.groupdict().get("cmp") and re.fullmatch(
                r"<|below|under|(?:fewer|less)\s+than", m.group("cmp").strip().lower()
            ):
                value -= 1
            if m.group(0).lower().startswith("exactly"):
                state.note(m.start(), f"'{m.group(0).strip()}' (read as at most {value} atoms)")
            state.set_field("max_atoms", value, "the maximum number of atoms")
            state.take(*m.span())


def _read_count(state: _State) -> None:
    noun, adj = _COUNT_NOUN, _COUNT_ADJ
    n = rf"(?P<n>{_NUMW})"
    gap = rf"(?:[\s{_X}-]|(?i:{adj})\b)*"
    rules = [
        r"(?i:\bn(?:_candidates)?\s*[=:]\s*|(?<!\w)-n\s+|\b(?:number\s+of\s+(?:candidates|structures)|"
        r"n_candidates)\s*(?:[=:]|of|is)?\s*)(?P<n>\d+)\b",
        rf"(?i:\b(?:top|best|first)\s+){n}\b",
        rf"(?<![\w.-]){n}(?i:{gap}{noun})\b",
        rf"(?<![\w.-]){n}(?i:\s+more)\b",
        rf"(?i:\banother\s+){n}\b",
        rf"(?i:\b(?:give|generate|propose|suggest|show|find|make|produce|create|return|list|output|want|need)"
        rf"\s+(?:me\s+|us\s+)?(?:another\s+|about\s+|around\s+)?){n}\b(?!\s*(?i:atoms?|ev|mev|%|k\b|elements?))",
        rf"(?<![\w.-]){n}(?i:\s+of\s+(?:them|those|these|each|it))\b",  # "10 of them"
        r"(?i:\b(?P<n>(?:half\s+)?a\s+dozen)\b)(?!\s*(?i:atoms?|ev|mev|%|k\b|elements?))",  # "TiO2, a dozen"
    ]
    for pattern in rules:
        for m in _finditer(state, re.compile(pattern)):
            value = _int_word(m.group("n"))
            state.set_field("n_candidates", value, "the number of candidates")
            state.take(*m.span())


# ---------------------------------------------------------------------------------------------
# Leftovers
# ---------------------------------------------------------------------------------------------

_LEFT_TOKEN = re.compile(
    rf"(?P<word0>\d+[A-Za-z][\w-]*)|(?P<num>{_NUM}(?:\s*(?:%|°C|°|(?i:k|kelvin|gpa|mpa|ev/atom|mev/atom|ev|mev|nm|å|angstroms?|g/cm3|g/cm\^3|"
    r"s/cm|w/mk|t|tesla|emu/g|v|mah/g)\b))?)|(?P<word>[A-Za-zΔ][\w'’.-]*[\w]|[A-Za-z])"
)


def _read_leftovers(state: _State, has_gap: bool) -> None:
    view = state.view()
    phrase: list[tuple[int, int]] = []

    def flush() -> None:
        if phrase:
            text = state.text[phrase[0][0] : phrase[-1][1]]
            state.note(phrase[0][0], f"'{text}' (not understood)")
            phrase.clear()

    last_end = 0
    for m in _LEFT_TOKEN.finditer(view):
        if phrase and re.search(rf"[{_X},;:.!?()]", view[last_end : m.start()]):
            flush()
        last_end = m.end()
        if m.group("num"):
            flush()
            state.note(m.start(), f"'{m.group(0)}' (number not attached to any setting)")
            continue
        word = m.group("word") or m.group("word0")
        low = word.lower().strip(".'’")
        if low in _FILLER or low.rstrip("s") in _FILLER:
            flush()
            continue
        if low in _PROPERTY_WORDS:
            flush()
            state.note(m.start(), f"'{word}' (no property model for it)")
        elif low in _STRUCTURE_WORDS:
            flush()
            state.note(m.start(), f"'{word}' (structure types are not supported; give a space group or crystal system)")
        elif low.startswith("semiconduct"):
            flush()
            if not has_gap:
                state.note(m.start(), f"'{word}' (no band-gap range assumed; give one, e.g. 'band gap around 1.5 eV')")
        else:
            phrase.append(m.span())
    flush()


# ---------------------------------------------------------------------------------------------
# Assembly
# ---------------------------------------------------------------------------------------------


def _composition(state: _State) -> dict | None:
    """The one composition of the text as DesignRequest fields (None if the text names none)."""
    comps = sorted(state.comps, key=lambda c: c[2])
    main = [c for c in comps if c[0] != "lone"]
    lone = [c[1][0] for c in comps if c[0] == "lone"]
    anion_elems = [e for _, elems, _ in state.anions for e in elems]
    if not main and lone and (anion_elems or len(lone) > 1):
        main = [("elements", list(dict.fromkeys(lone)), 0)]
        lone = []
    if not main:
        if lone:
            other = "Fe" if lone[0] != "Fe" else "Ni"
            state.questions.append(
                f"Should the crystal contain only {lone[0]}, or which other elements? "
                f"(e.g. '{lone[0]}-O' or '{lone[0]}, {other} and O')"
            )
        elif state.anions:
            word = state.anions[0][2].lower()
            state.questions.append(f"Which elements besides {'-'.join(state.anions[0][1])} should the {word} contain?")
        return None

    def elements_of(c) -> list[str]:
        return list(c[1]) if c[0] == "elements" else list(parse_counts(c[1]))

    order = {"formula": 0, "composition": 1, "elements": 2}
    best = min(main, key=lambda c: order[c[0]])
    best_elems = set(elements_of(best))
    if best[0] == "elements" and anion_elems:
        for c_i, c in enumerate(main):
            if c[0] == "elements":
                merged = list(dict.fromkeys(list(c[1]) + anion_elems))
                main[c_i] = ("elements", merged, c[2])
        best = min(main, key=lambda c: order[c[0]])
        best_elems = set(elements_of(best))
    for c in main:
        if set(elements_of(c)) != best_elems:
            names = ", ".join(c[1] if isinstance(c[1], str) else "-".join(c[1]) for c in main)
            state.questions.append(f"Several compositions were named ({names}): which one should the crystal have?")
            return None
        if c[0] != "elements" and best[0] != "elements" and not _same_ratio(c[1], best[1]):
            state.questions.append(f"Several compositions were named ({c[1]}, {best[1]}): which one should it be?")
            return None
    missing = [e for e in lone + anion_elems if e not in best_elems]
    if missing:
        shown = best[1] if isinstance(best[1], str) else "-".join(best[1])
        state.questions.append(f"Should {', '.join(missing)} be added to {shown}? Please give the full composition.")
        return None
    if best[0] == "elements":
        return {"elements": list(best[1])}
    return {best[0]: best[1]}


def _substitute(state: _State, data: dict) -> dict | None:
    """The previous composition with elements swapped ("Se instead of S")."""
    for key in ("formula", "composition", "elements"):
        value = data.get(key)
        if not value:
            continue
        for old, new in state.substitutions:
            present = value if key == "elements" else list(parse_counts(value))
            if old not in present:
                state.errors.append(f"{old} is not in the previous composition ({', '.join(present)})")
                return None
            if key == "elements":
                value = [new if e == old else e for e in value]
            else:
                value = re.sub(rf"{old}(?![a-z])", new, value)
        return {key: value}
    for _, new in state.substitutions:
        state.comps.append(("lone", [new], 0))
    state.questions.append("Which composition should the substitution apply to? Please give the full composition.")
    return None


def _same_ratio(a: str, b: str) -> bool:
    ca, cb = parse_counts(a), parse_counts(b)
    if set(ca) != set(cb):
        return False
    first = next(iter(ca))
    return all(ca[e] * cb[first] == cb[e] * ca[first] for e in ca)


def _band_gap_from_words(state: _State) -> dict | None:
    kinds = {k for _, k, _ in state.gap_words}
    if not kinds:
        return None
    if len(kinds) > 1:
        words = ", ".join(f"'{w}'" for _, _, w in state.gap_words)
        state.errors.append(f"contradictory band-gap wishes: {words}")
        return None
    kind = kinds.pop()
    if kind == "wide":
        return {"minimum": WIDE_GAP_MIN}
    if kind == "narrow":
        return {"maximum": NARROW_GAP_MAX}
    return {"value": 0.0, "maximum": METAL_GAP_MAX}


def _merge(state: _State, previous: DesignRequest | None, composition: dict | None) -> dict:
    """Request fields: the text's findings on top of ``previous`` (see the module docstring)."""
    # only what ``previous`` and the text state, so the request's ``model_fields_set`` tells stated
    # settings ("10 candidates") from defaults
    data = previous.model_dump(exclude_unset=True) if previous is not None else {}
    if composition is None and state.substitutions:
        composition = _substitute(state, data)
    if composition is not None:
        for key in ("formula", "composition", "elements"):
            data[key] = None
        data.update(composition)
        text = composition.get("formula") or composition.get("composition")
        new = composition.get("elements") or list(parse_counts(text))
        data["exclude_elements"] = [e for e in data.get("exclude_elements", []) if e not in new]
    for prop in ("band_gap", "formation_energy"):
        if f"clear_{prop}" in state.flags:
            data[prop] = None
        target = state.targets.get(prop)
        if prop == "band_gap" and target is None:
            target = _band_gap_from_words(state)
        if target:
            data[prop] = dict(target)
    for key in ("stable", "max_atoms", "n_candidates"):
        if key in state.fields:
            data[key] = state.fields[key]
    additive = "additive" in state.flags
    systems = list(data.get("crystal_systems", []))
    groups = list(data.get("spacegroups", []))
    if "clear_symmetry" in state.flags:
        systems, groups = [], []
    if state.systems or state.groups:
        if not additive:
            systems, groups = [], []
        systems += [s for s in state.systems if s not in systems]
        groups += [g for g in state.groups if g not in groups]
    systems = [s for s in systems if s not in state.dropped_systems]
    ex_systems = [s for s in data.get("exclude_crystal_systems", []) if s not in state.systems]
    ex_groups = [g for g in data.get("exclude_spacegroups", []) if g not in state.groups]
    ex_elements = list(data.get("exclude_elements", []))
    if previous is not None:  # new exclusions leave the previous wishes
        systems = [s for s in systems if s not in state.ex_systems or s in state.systems]
        groups = [g for g in groups if g not in state.ex_groups or g in state.groups]
    ex_systems += [s for s in state.ex_systems if s not in ex_systems]
    ex_groups += [g for g in state.ex_groups if g not in ex_groups]
    ex_elements += [e for e in state.ex_elements if e not in ex_elements]
    data.update(
        crystal_systems=systems,
        spacegroups=groups,
        exclude_crystal_systems=ex_systems,
        exclude_spacegroups=ex_groups,
        exclude_elements=ex_elements,
    )
    # space groups and crystal systems that contradict each other within one text
    if previous is None and state.groups and state.ex_systems:
        clash = [g for g in state.groups if crystal_system(g) in state.ex_systems]
        if clash:
            state.errors.append(f"space group {clash[0]} is {crystal_system(clash[0])}, which is excluded")
    return {k: v for k, v in data.items() if v is not None or k in ("formula", "composition", "elements")}


def _parse(text: str, previous: DesignRequest | None) -> ParseResult:
    if not isinstance(text, str):
        return ParseResult(error="the request must be text")
    if len(text) > MAX_TEXT_LENGTH:
        return ParseResult(error=f"the request is too long ({len(text)} characters; at most {MAX_TEXT_LENGTH})")
    state = _State(_normalise(text))
    if re.search(r"(?i)\b(?:also|too|as\s+well|in\s+addition|additionally)\b", state.text):
        state.flags.add("additive")
    _read_properties(state)
    _read_stability(state)
    _read_structure_types(state)
    _read_substitution(state)
    _read_cell_formula(state)
    _read_size(state)
    _read_symmetry(state)
    _read_exclusions(state)
    _read_elements(state)
    _read_count(state)
    if state.errors:
        return ParseResult(error=_sentence(state.errors[0]))
    composition = _composition(state)
    has_gap = "band_gap" in state.targets or bool(state.gap_words)
    _read_leftovers(state, has_gap)
    data = _merge(state, previous, composition)
    if state.errors:
        return ParseResult(error=_sentence(state.errors[0]))
    try:
        request = DesignRequest.model_validate(data)
    except ValidationError as exc:
        return ParseResult(error=_sentence(validation_message(exc)))
    except (InputError, ValueError) as exc:
        return ParseResult(error=_sentence(str(exc)))
    questions = list(dict.fromkeys(state.questions))
    if not request.has_composition() and not questions:
        questions.append(COMPOSITION_QUESTION)
    notes = [msg for _, msg in sorted(state.notes, key=lambda n: n[0])]
    return ParseResult(request=request, not_understood=list(dict.fromkeys(notes)), questions=questions)


def _sentence(message: str) -> str:
    message = message.strip()
    fields = {
        "band_gap": "band gap",
        "formation_energy": "formation energy",
        "max_atoms": "the maximum number of atoms per cell",
        "n_candidates": "the number of candidates",
        "spacegroups": "space group",
        "exclude_spacegroups": "excluded space group",
    }
    m = re.match(r"^(\w+)(?:\.\d+)?(?:\.\w+)?:\s*", message)
    if m and m.group(1) in fields:
        rest = message[m.end() :]
        message = f"{fields[m.group(1)]}: {rest[:1].lower()}{rest[1:]}"
    message = message[0].upper() + message[1:] if message else "Invalid request"
    return message if message.endswith((".", "?", "!")) else message + "."


def parse_request(text: str, previous: DesignRequest | None = None) -> ParseResult:
    """Understand a design request (see the module docstring); never raises."""
    try:
        return _parse(text, previous)
    except Exception as exc:  # the parser must answer, never show a traceback
        return ParseResult(error=f"Could not read the request ({type(exc).__name__}: {exc}); please rephrase it.")
