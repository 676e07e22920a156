"""Which elements replace each other in known structure types, learned from the known crystals.

Pettifor (Mendeleev) numbers put the elements on one line, so Na sits between Li and K but also
next to nothing else. A data-mined substitution table (the idea behind Hautier et al.'s ionic
substitution probabilities, Inorg. Chem. 2011) asks the crystals instead: two crystals built on
the same template (anonymous cell formula, space group, anonymised Wyckoff sites) show which
element took which place. Counted over all template pairs, the pointwise mutual information of an
element pair (shrunk towards 0 when the counts are small) says how much more often they swap than
chance would have them; its distance is ``CAP - PMI``, clipped to [0, CAP]. Elements that never
swap, or that no known crystal has, sit at ``CAP``.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence

import numpy as np

#: PMI (natural log) at which two elements count as perfectly interchangeable; distances are
#: ``CAP - PMI`` clipped to [0, CAP]. Na/K or O/S, which swap ~7x more often than chance, sit at ~2.
CAP = 4.0
#: Members of one template whose pairs are counted (the first ones, in the order given): a template
#: with 500 members would otherwise add 125,000 pairs and drown the rest.
MAX_MEMBERS = 60
#: Pseudo-count added to the observed and the expected pair count: a pair seen once is weak evidence.
PAIR_PSEUDO = 2.0


def substitution_distances(templates: Iterable[tuple[tuple, Sequence[str]]]) -> tuple[dict[str, int], np.ndarray]:
    """(element -> row, distance matrix) from (template key, elements in template order) items.

    The matrix has one extra last row/column for elements never seen, at distance ``CAP`` from
    everything; the diagonal is 0."""
    members: dict[tuple, list[Sequence[str]]] = defaultdict(list)
    for key, elements in templates:
        members[key].append(tuple(elements))
    pair: Counter = Counter()
    single: Counter = Counter()
    for group in members.values():
        for a, b in itertools.combinations(group[:MAX_MEMBERS], 2):
            for x, y in zip(a, b):
                if x != y:
                    pair[x, y] += 1
                    pair[y, x] += 1
                    single[x] += 1
                    single[y] += 1
    symbols = sorted({el for group in members.values() for elements in group for el in elements})
    row = {el: i for i, el in enumerate(symbols)}
    distance = np.full((len(symbols) + 1, len(symbols) + 1), CAP, dtype=np.float32)
    total = sum(single.values()) or 1
    for (x, y), n in pair.items():
        expected = single[x] * single[y] / total
        pmi = math.log((n + PAIR_PSEUDO) / (expected + PAIR_PSEUDO))  # shrunk towards 0 on little evidence
        distance[row[x], row[y]] = min(CAP, max(0.0, CAP - pmi))  # rarer than chance: as if never seen
    np.fill_diagonal(distance, 0.0)
    distance[-1, -1] = CAP  # two unknown elements are not known to be alike
    return row, distance
