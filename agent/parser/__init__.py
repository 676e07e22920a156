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
      ``composition``, written as typed; parentheses are expanded by pymatgen's ``Composition``
      in the order typed ("Ca(OH)2" -> "CaO2H2", "Ba(Ti)O3" -> "BaTiO3"), only when every symbol
      is an element (an unknown one is an error quoting the formula as typed).
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

Layout
======

One module per concern, each a set of readers over the shared :class:`~.state.ParseState`:
:mod:`.vocabulary` (word lists, element names), :mod:`.hermann_mauguin` (space-group symbols),
:mod:`.quantities` (numbers, units, comparisons), :mod:`.formulas` (formulas via pymatgen's
``Composition``), :mod:`.elements` (element lists, names, exclusions), :mod:`.properties` (band gap,
formation energy, stability), :mod:`.symmetry`, :mod:`.size_and_count`, :mod:`.leftovers`
(``not_understood``), :mod:`.merge` (findings -> request fields, multi-turn) and :mod:`.parse`
(:func:`parse_request`, the order of the readers).
"""

from __future__ import annotations

from .hermann_mauguin import hm_number
from .merge import METAL_GAP_MAX, NARROW_GAP_MAX, WIDE_GAP_MIN
from .parse import COMPOSITION_QUESTION, MAX_TEXT_LENGTH, READERS, parse_request

__all__ = [
    "COMPOSITION_QUESTION",
    "MAX_TEXT_LENGTH",
    "METAL_GAP_MAX",
    "NARROW_GAP_MAX",
    "READERS",
    "WIDE_GAP_MIN",
    "hm_number",
    "parse_request",
]
