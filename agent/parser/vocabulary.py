"""The words the parser knows: crystal systems, element names and symbols, anion words, number words,
property and structure-type words it reports, and the filler words it ignores.

The regex fragments that depend on the element names (:func:`element_patterns`) are built once, from
pymatgen's element table, on first use.
"""

from __future__ import annotations

import re
from functools import cache

SYSTEM_WORDS = {
    "cubic": "cubic",
    "hexagonal": "hexagonal",
    "tetragonal": "tetragonal",
    "trigonal": "trigonal",
    "rhombohedral": "trigonal",
    "orthorhombic": "orthorhombic",
    "monoclinic": "monoclinic",
    "triclinic": "triclinic",
}
SYSTEMS = r"(?:cubic|hexagonal|tetragonal|trigonal|rhombohedral|orthorhombic|monoclinic|triclinic)"

# Capitalised short English words; those that are element symbols are only read inside lists.
ENGLISH_SHORT = {
    "A", "I", "An", "At", "As", "Be", "By", "Do", "Go", "He", "Hi", "If", "In", "Is", "It", "Me", "My",
    "No", "Of", "Oh", "Ok", "On", "Or", "So", "To", "Up", "Us", "We", "Am", "Pa", "Ha", "Eh", "Ah",
}  # fmt: skip
ENGLISH_CAPS = {
    "IS", "IN", "ON", "OF", "SO", "US", "NO", "BY", "OK", "HI", "OH", "CIF", "SOS", "NOS", "IF", "BS", "UK", "NB", "PS",
    "PC", "PCS", "FYI", "CPU", "SOC", "UV", "BCC", "FCC", "HCP", "YS", "CV", "IV", "VI", "VII", "II", "III",
}  # fmt: skip
_I_VERBS = (
    r"want|need|would|am|think|like|prefer|guess|hope|have|had|was|will|can|could|should|must|mean|do|"
    r"don|just|also|only|really|wish|expect|care|see|know|did|said|asked|meant"
)

ANIONS: dict[str, tuple[str, ...]] = {
    "oxide": ("O",), "nitride": ("N",), "sulfide": ("S",), "sulphide": ("S",), "fluoride": ("F",),
    "chloride": ("Cl",), "bromide": ("Br",), "iodide": ("I",), "carbide": ("C",), "boride": ("B",),
    "hydride": ("H",), "selenide": ("Se",), "telluride": ("Te",), "phosphide": ("P",),
    "arsenide": ("As",), "silicide": ("Si",), "antimonide": ("Sb",), "germanide": ("Ge",),
    "phosphate": ("P", "O"), "silicate": ("Si", "O"), "carbonate": ("C", "O"), "sulfate": ("S", "O"),
    "sulphate": ("S", "O"), "nitrate": ("N", "O"), "borate": ("B", "O"), "titanate": ("Ti", "O"),
    "oxynitride": ("O", "N"), "oxyfluoride": ("O", "F"), "hydroxide": ("O", "H"),
}  # fmt: skip
ANION = r"(?:" + "|".join(sorted(ANIONS, key=len, reverse=True)) + r")s?"

PROPERTY_WORDS = {
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
STRUCTURE_WORDS = {
    "perovskite", "perovskites", "spinel", "spinels", "rutile", "anatase", "wurtzite", "zincblende",
    "zinc-blende", "rocksalt", "rock-salt", "fluorite", "garnet", "olivine", "layered", "2d", "zeolite",
    "heusler", "half-heusler", "pyrochlore", "delafossite", "chalcopyrite", "kesterite", "antiperovskite",
    "brownmillerite", "ruddlesden-popper", "clathrate", "skutterudite", "mof", "framework", "fcc", "bcc", "hcp",
}  # fmt: skip

FILLER = set(
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
NUMBER = (
    r"(?:\d+|"
    + "|".join(sorted((re.escape(w).replace(r"\ ", r"\s+") for w in _NUMBER_WORDS), key=len, reverse=True))
    + ")"
)


def int_word(text: str) -> int:
    """The integer of a count written in digits or words ("12", "a dozen", "half a dozen")."""
    text = re.sub(r"\s+", " ", text.strip().lower())
    return int(text) if text.isdigit() else _NUMBER_WORDS[text]


# what a count of candidates is a count of ("10 candidates", "5 new structures")
COUNT_NOUN = (
    r"(?:candidates?|structures?|crystals?|materials?|compounds?|options?|proposals?|suggestions?|designs?|"
    r"results?|hits?|ones|examples?|samples?|variants?|polymorphs?|guesses|predictions?|phases)"
)
COUNT_ADJ = (
    r"(?:more|new|different|distinct|unique|other|possible|additional|extra|further|candidate|crystal|plausible|"
    r"hypothetical|promising|good|best|top|diverse|random|such)"
)


@cache
def element_data() -> tuple[frozenset[str], dict[str, str]]:
    """(element symbols, lower-case name -> symbol), from pymatgen."""
    from pymatgen.core import Element

    symbols = frozenset(e.symbol for e in Element)
    names = {e.long_name.lower(): e.symbol for e in Element}
    names.update({"aluminum": "Al", "sulphur": "S", "cesium": "Cs", "caesium": "Cs"})
    return symbols, names


@cache
def element_patterns() -> dict[str, str]:
    """Regex fragments that depend on the element names (built once)."""
    symbols, names = element_data()
    name = "(?i:(?:" + "|".join(sorted(names, key=len, reverse=True)) + "))"
    guard_i = rf"(?!I\b(?:\s+(?:{_I_VERBS})\b|'))"  # "I want", "I'd": never iodine
    pre, post = r"(?<![\w'/-])", r"(?![\w'])"
    english = "|".join(sorted(ENGLISH_SHORT, key=len, reverse=True))
    english_non_element = "|".join(w for w in sorted(ENGLISH_SHORT, key=len, reverse=True) if w not in symbols)
    valid = "|".join(sorted((s for s in symbols if s not in ENGLISH_SHORT), key=len, reverse=True))
    return {
        "name": name,
        # any symbol-shaped word: where an unknown symbol is an error (exclusions, after "containing")
        "shape": rf"{pre}(?:{name}|{guard_i}[A-Z][a-z]?){post}",
        # list items: short English words that are no element are never items; I/In/As/... are
        "list_item": rf"{pre}(?:{name}|{guard_i}(?!(?:{english_non_element})\b)[A-Z][a-z]?){post}",
        # real elements outside lists: names and symbols that are not English words
        "element": rf"{pre}(?:{name}|(?!(?:{english})\b)(?:{valid})){post}",
    }


def symbol_of(word: str) -> str:
    """The symbol of a word one of the element patterns matched (a KeyError for any other word)."""
    symbol = element_of(word)
    if symbol is None:
        raise KeyError(word)
    return symbol


def element_of(word: str) -> str | None:
    """Symbol for a correctly capitalised symbol or an element name, else None."""
    symbols, names = element_data()
    if word in symbols:
        return word
    return names.get(word.lower())
