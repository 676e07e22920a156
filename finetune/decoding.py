"""Strict two-stage decoding: only valid answers can come out.

Stage 1 scores every space group that can host the composition (the validity mask) and keeps
the best (or samples). Stage 2 builds the site list one Wyckoff orbit at a time with beam search
(or sampling), offering the model only sites after which a valid completion still exists, and
stopping only where the composition is complete. Scores are log-probabilities.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from xtalagent import prompts
from xtalagent.finetune.scorers import Scorer
from xtalagent.finetune.wyckoff_solver import State, Target, canonical_sites, positions


@dataclass(frozen=True)
class Context:
    """What the prompts say about a request."""

    pattern: str
    elements: tuple[str, ...]
    counts: tuple[int, ...] | None  # as shown in the prompt (cell counts or ratio; None for elements)
    band_gap: float | None
    formation_energy: float | None

    def sg_prompt(self) -> str:
        return prompts.spacegroup_prompt(self.pattern, self.elements, self.counts, self.band_gap, self.formation_energy)

    def wyckoff_prompt(self, spacegroup: int) -> str:
        return prompts.wyckoff_prompt(
            self.pattern, self.elements, self.counts, spacegroup, self.band_gap, self.formation_energy
        )


def _softmax_sample(logps: list[float], temperature: float, rng: random.Random) -> int:
    top = max(logps)
    weights = [math.exp((lp - top) / temperature) for lp in logps]
    return rng.choices(range(len(logps)), weights=weights)[0]


def rank_spacegroups(
    scorer: Scorer,
    ctx: Context,
    groups: list[int],
    k: int,
    temperature: float = 0.0,
    rng: random.Random | None = None,
    bonus: dict[int, float] | None = None,
) -> list[tuple[int, float]]:
    """Best ``k`` groups by log-probability (+ ``bonus``, a prior's log-weight), or ``k`` draws at ``temperature``."""
    scores = scorer.score("sg", ctx.sg_prompt(), [prompts.spacegroup_answer(g) for g in groups], [True] * len(groups))
    if bonus:
        scores = [s + bonus.get(g, 0.0) for g, s in zip(groups, scores)]
    ranked = sorted(zip(groups, scores), key=lambda gs: -gs[1])
    if temperature <= 0:
        return ranked[:k]
    rng = rng or random.Random(0)
    pool: list[tuple[int, float]] = list(ranked)
    picked: list[tuple[int, float]] = []
    while pool and len(picked) < k:
        picked.append(pool.pop(_softmax_sample([s for _, s in pool], temperature, rng)))
    return picked


def _text(spacegroup: int, ctx: Context, state: State) -> str:
    table = positions(spacegroup)
    return "".join(prompts.site_answer(ctx.elements[e], table[i].label, n == 0) for n, (e, i) in enumerate(state.sites))


def rank_sites(
    scorer: Scorer,
    ctx: Context,
    target: Target,
    spacegroup: int,
    k: int,
    beam: int | None = None,
    temperature: float = 0.0,
    rng: random.Random | None = None,
    max_steps: int = 200,
) -> list[tuple[State, float]]:
    """Best ``k`` complete site assignments (beam search), or ``k`` draws at ``temperature``."""
    prompt = ctx.wyckoff_prompt(spacegroup)
    if temperature > 0:
        return _sample_sites(
            scorer, ctx, target, spacegroup, prompt, k, temperature, rng or random.Random(0), max_steps
        )
    width = max(beam or k, k)
    active: list[tuple[State, float]] = [(State.empty(len(ctx.elements)), 0.0)]
    finished: list[tuple[State, float]] = []
    for _ in range(max_steps):
        texts: list[str] = []
        ends: list[bool] = []
        parents: list[State] = []
        children: list[State | None] = []  # None: the parent's answer ends here
        for state, _score in active:
            prefix = _text(spacegroup, ctx, state)
            if state.sites and target.can_end(spacegroup, state):
                texts.append(prefix)
                ends.append(True)
                parents.append(state)
                children.append(None)
            for element, pos in target.allowed_next(spacegroup, state):
                child = state.add(spacegroup, element, pos)
                texts.append(_text(spacegroup, ctx, child))
                ends.append(False)
                parents.append(state)
                children.append(child)
        if not texts:
            break
        scores = scorer.score("wyckoff", prompt, texts, ends)
        next_active: list[tuple[State, float]] = []
        for parent, grown, score in zip(parents, children, scores):
            if grown is None:
                finished.append((parent, score))
            else:
                next_active.append((grown, score))
        finished.sort(key=lambda s: -s[1])
        finished = finished[:k]
        floor = finished[-1][1] if len(finished) >= k else -math.inf
        # log-probabilities only fall as an answer grows, so beams below the k-th finished are done
        active = sorted((s for s in next_active if s[1] > floor), key=lambda s: -s[1])[:width]
        if not active:
            break
    return finished[:k]


def state_from_sites(spacegroup: int, sites: list[tuple[str, str]], elements: tuple[str, ...]) -> State | None:
    """The decoder state of an (element, Wyckoff label) list, or None if it is not one the decoder could write."""
    index = {p.label: p for p in positions(spacegroup)}
    if any(el not in elements or label not in index for el, label in sites):
        return None
    state = State.empty(len(elements))
    for el, label in canonical_sites(spacegroup, sites, elements):
        pos = index[label]
        if pos.fixed and pos.index in state.used:
            return None
        state = state.add(spacegroup, elements.index(el), pos)
    return state


def fitting_state(target: Target, spacegroup: int, sites, elements: tuple[str, ...]) -> State | None:
    """The decoder state of a site list from elsewhere (a known crystal's), or None unless the
    decoder could have written it as a complete answer to this request."""
    state = state_from_sites(spacegroup, list(sites), elements)
    if state is None or not all(state.so_far) or not target.can_end(spacegroup, state):
        return None
    return state


def score_states(scorer: Scorer, ctx: Context, spacegroup: int, states: list[State]) -> list[float]:
    """Log-probability of complete site lists, as :func:`rank_sites` scores its finished beams."""
    texts = [_text(spacegroup, ctx, state) for state in states]
    return scorer.score("wyckoff", ctx.wyckoff_prompt(spacegroup), texts, [True] * len(texts))


def _sample_sites(scorer, ctx, target, spacegroup, prompt, k, temperature, rng, max_steps):
    results: dict[tuple, tuple[State, float]] = {}
    for _ in range(3 * k):
        state, total = State.empty(len(ctx.elements)), 0.0
        for _ in range(max_steps):
            options = [(e, p) for e, p in target.allowed_next(spacegroup, state)]
            texts = [_text(spacegroup, ctx, state.add(spacegroup, e, p)) for e, p in options]
            ends = [False] * len(texts)
            can_end = bool(state.sites) and target.can_end(spacegroup, state)
            if can_end:
                texts.append(_text(spacegroup, ctx, state))
                ends.append(True)
            scores = scorer.score("wyckoff", prompt, texts, ends)
            choice = _softmax_sample([s - total for s in scores], temperature, rng)
            total = scores[choice]
            if ends[choice]:
                results.setdefault(state.sites, (state, total))
                break
            state = state.add(spacegroup, *options[choice])
        if len(results) >= k:
            break
    return sorted(results.values(), key=lambda s: -s[1])[:k]
