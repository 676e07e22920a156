"""The constraint generator: request in, ranked valid symmetry constraints out.

``ConstraintPredictor`` wraps a scorer (local model or endpoint) with the strict two-stage decoder
and the JSONL contract. Every candidate it returns is re-validated as a
:class:`~xtalagent.records.SymmetryConstraint` whose counts match the request.
"""

from __future__ import annotations

import itertools
import json
import math
import random
from collections.abc import Callable, Collection, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import fields
from pathlib import Path
from typing import Any, TypeVar

from pydantic import ValidationError

from xtalagent import config
from xtalagent.composition import format_counts
from xtalagent.errors import InputError, XtalAgentError, validation_message
from xtalagent.finetune.decoding import Context, fitting_state, rank_sites, rank_spacegroups, score_states
from xtalagent.finetune.endpoint_scorer import EndpointScorer
from xtalagent.finetune.group_classifier import CLASSIFIER_FILE, GroupClassifier, load_classifier
from xtalagent.finetune.neighbour_prior import PRIOR_FILE, NeighbourPrior, load_prior
from xtalagent.finetune.ratio_classifier import RATIO_FILE, RatioClassifier, load_ratio_classifier, ratio_key
from xtalagent.finetune.requests import ConstraintCandidate, ConstraintRequest, Pattern, Prediction
from xtalagent.finetune.scorers import LocalScorer, Scorer
from xtalagent.finetune.settings import ConstraintSettings
from xtalagent.finetune.voters import VoterWeights
from xtalagent.finetune.wyckoff_solver import ExactCounts, RatioCounts, State, Target, feasible_groups, site_labels
from xtalagent.io import json_lines
from xtalagent.records import SiteSpec, SymmetryConstraint

T = TypeVar("T")
R = TypeVar("R")


def default_model_dir() -> Path:
    """The embedded constraint model shipped with the package."""
    return config.CONSTRAINT_MODEL_DIR


def load_predictor(
    model: str | Path | None = None,
    endpoint: str | None = None,
    use_prior: bool = True,
    *,
    variant: str = "eval",
    **kwargs: Any,
) -> ConstraintPredictor:
    """A predictor on the embedded model, a local model folder, or an OpenAI-compatible endpoint.

    The model folder's voters beside the language model, the neighbour prior (``neighbours.json.gz``,
    both stages), the composition classifier (``group_classifier.pt``, stage 1) and, for
    elements-only requests, the ratio classifier (``ratio_classifier.pt``, stage 1), join unless
    ``use_prior`` is false. With an endpoint, ``model`` names the folder the server serves (default:
    the embedded one, which ``xtalagent serve`` serves by default): its tokenizer makes the token ids
    sent to the server and its voters join as in process, so both paths give the same answers.
    They speak with the folder's own weights (``voters.json``, :class:`VoterWeights`; neutral ones
    when the folder has none), so a user's model never runs with weights tuned for another.
    ``variant`` chooses the known crystals the prior hears: ``release`` adds the folder's lookup
    crystals (``neighbours_lookup.json.gz``) to the training ones, which is what the front doors
    (``design``, ``chat``, ``constraints predict``) give users; ``eval``, the library default so
    that no measurement can see a held-out crystal by accident, keeps the training crystals only.
    """
    folder = Path(model or default_model_dir())
    scorer: Scorer
    if endpoint:
        if not folder.is_dir():
            raise XtalAgentError(f"{folder}: no such model folder (give --model the folder the endpoint serves)")
        scorer = EndpointScorer.for_model(endpoint, folder, **kwargs)
    else:
        scorer = LocalScorer.load(folder, **kwargs)
    if not use_prior:
        predictor = ConstraintPredictor(scorer)
    else:
        weights = VoterWeights.load(folder)
        prior = load_prior(folder, variant)
        if prior is not None:
            prior.settings = weights.prior_settings()
        predictor = ConstraintPredictor(
            scorer,
            prior=prior,
            classifier=load_classifier(folder),
            ratios=load_ratio_classifier(folder),
            weights=weights,
        )
    predictor.variant = variant
    return predictor


def voters_in_use(
    model: str | Path | None = None, endpoint: str | None = None, pattern: str | None = None
) -> tuple[bool, bool]:
    """Whether :func:`load_predictor` with these arguments lets (the neighbour prior, the composition
    classifier) vote (for ``pattern``): each needs its file in the model folder and a weight there."""
    folder = Path(model or default_model_dir())
    weights = VoterWeights.load(folder)
    prior = pattern is None or weights.prior_speaks(pattern)
    classifier = pattern is None or bool(weights.classifier_weight(pattern))
    return prior and (folder / PRIOR_FILE).exists(), classifier and (folder / CLASSIFIER_FILE).exists()


def ratio_vote_in_use(model: str | Path | None = None, endpoint: str | None = None, pattern: str | None = None) -> bool:
    """Whether :func:`load_predictor` with these arguments lets the ratio classifier vote (for
    ``pattern``: elements-only requests only): it needs its file in the model folder and a weight there."""
    if pattern not in (None, Pattern.ELEMENTS.value):
        return False
    folder = Path(model or default_model_dir())
    return bool(VoterWeights.load(folder).ratio_weight) and (folder / RATIO_FILE).exists()


def ratio_vote(
    shares: list[tuple[float, dict[int, float]]], groups: list[int], weight: float, floor: float
) -> dict[int, float]:
    """``weight * log(average share + floor)`` per group, the shares of each ratio averaged with its
    probability as weight; zero everywhere without shares."""
    mass = sum(probability for probability, _ in shares)
    if mass == 0:
        return dict.fromkeys(groups, 0.0)
    average = {g: sum(p * share.get(g, 0.0) for p, share in shares) / mass for g in groups}
    return {g: weight * math.log(average[g] + floor) for g in groups}


def weigh_ratios(
    pool: list[tuple[tuple[int, ...], float]], shares: list[float], weight: float, floor: float
) -> list[tuple[tuple[int, ...], float]]:
    """(ratio, probability) pairs re-weighed by ``(share + floor) ** weight`` (one share per pair),
    renormalised, likeliest first (ties keep their order)."""
    if not pool:
        return []
    scores = [math.log(p) + weight * math.log(share + floor) for (_, p), share in zip(pool, shares, strict=True)]
    top = max(scores)
    weights = [math.exp(score - top) for score in scores]
    total = sum(weights)
    return sorted(((counts, w / total) for (counts, _), w in zip(pool, weights)), key=lambda cp: -cp[1])


class ConstraintPredictor:
    """The two-stage decoder on a scorer, with the voters beside it.

    ``weights`` are the voters' weights of the model folder (:class:`VoterWeights`; neutral when not
    given). The neighbour prior carries its own part settings (:attr:`NeighbourPrior.settings`,
    set from the same weights by :func:`load_predictor`).
    """

    def __init__(
        self,
        scorer: Scorer,
        sg_candidates: int | None = None,
        prior: NeighbourPrior | None = None,
        classifier: GroupClassifier | None = None,
        ratios: RatioClassifier | None = None,
        *,
        weights: VoterWeights | None = None,
    ):
        self.scorer = scorer
        self.sg_candidates = sg_candidates  # groups expanded in stage 2 (default: top_k)
        self.prior = prior
        self.classifier = classifier
        self.ratios = ratios
        self.weights = weights or VoterWeights.neutral()
        self.variant = "eval"  # the known crystals its prior hears (set by load_predictor)

    def voters(self, pattern: str) -> dict[str, bool]:
        """Which voters join the language model on ``pattern`` requests: loaded here and given a
        weight. Asked of the loaded predictor, so a report states what really ran."""
        prior = self.prior.settings.get(pattern) if self.prior is not None else None
        return {
            "prior": prior is not None and any(getattr(prior, f.name).weight for f in fields(prior)),
            "classifier": self.classifier is not None and bool(self.weights.classifier_weight(pattern)),
            "ratio_vote": pattern == Pattern.ELEMENTS.value
            and self.ratios is not None
            and bool(self.weights.ratio_weight),
        }

    def rank_groups(
        self,
        ctx: Context,
        groups: list[int],
        k: int,
        temperature: float = 0.0,
        rng: random.Random | None = None,
        max_atoms: int = config.MAX_ATOMS_PER_CELL,
    ) -> list[tuple[int, float]]:
        """Stage 1: the best ``k`` of ``groups`` by LM log-probability plus the votes of the neighbour
        prior, the composition classifier and (elements-only requests of up to ``max_atoms`` atoms)
        the ratio classifier."""
        request = (ctx.pattern, ctx.elements, ctx.counts, groups, ctx.band_gap, ctx.formation_energy)
        bonus = dict.fromkeys(groups, 0.0)
        votes = []
        if self.prior is not None:
            votes.append(self.prior.bonus(*request))
        if self.classifier is not None:
            votes.append(self.classifier.bonus(*request, weight=self.weights.classifier_weight(ctx.pattern)))
        for vote in votes:
            for group, value in vote.items():
                bonus[group] += value
        if ctx.pattern == Pattern.ELEMENTS.value:
            for group, value in self.ratio_bonus(ctx, groups, max_atoms).items():
                bonus[group] += value
        return rank_spacegroups(self.scorer, ctx, groups, k, temperature, rng, bonus)

    def ratio_bonus(
        self, ctx: Context, groups: list[int], max_atoms: int, weight: float | None = None
    ) -> dict[int, float]:
        """The vote of the likeliest ratios on an elements-only request's groups.

        The softmax shares of :meth:`ratio_shares`, averaged with the ratios' probabilities as
        weights, vote ``weight * log(share + floor)``. A group no likely ratio fits gets the floor:
        it stays possible (another ratio may hold it), only less likely. Zero everywhere without a
        ratio classifier or a likely ratio. ``weight`` defaults to the model folder's ``ratio_weight``.
        """
        weight = self.weights.ratio_weight if weight is None else weight
        if self.ratios is None or weight == 0:
            return dict.fromkeys(groups, 0.0)
        return ratio_vote(self.ratio_shares(ctx, groups, max_atoms), groups, weight, self.weights.ratio_floor)

    def likely_ratios(self, ctx: Context, max_atoms: int, k: int | None = None) -> list[tuple[tuple[int, ...], float]]:
        """The ``k`` likeliest ratios of an elements-only request (default: the model folder's
        ``ratio_candidates``), as counts in the order of its elements, with their probabilities.

        The ratio classifier's ``ratio_pool`` likeliest ratios, each weighed by
        ``(share + floor) ** weight``, its share of the chemically closest known crystals (the
        prior's ``ratios`` part, :meth:`NeighbourPrior.ratio_shares`), and renormalised. Without a
        prior or with that part off: the classifier's own ranking."""
        assert self.ratios is not None, "likely ratios need the ratio classifier"
        k = self.weights.ratio_candidates if k is None else k
        settings = self.prior.settings.get(ctx.pattern) if self.prior else None
        part = settings.ratios if settings else None
        if part is None or part.weight == 0:
            return self.ratios.ratios(ctx.elements, ctx.band_gap, ctx.formation_energy, max_atoms, k)
        pool = self.ratios.ratios(
            ctx.elements, ctx.band_gap, ctx.formation_energy, max_atoms, max(k, self.weights.ratio_pool)
        )
        assert self.prior is not None  # the part came from it
        share = self.prior.ratio_shares(ctx.elements, part, ctx.band_gap, ctx.formation_energy)
        known = [share.get(ratio_key(dict(zip(ctx.elements, counts))), 0.0) for counts, _ in pool]
        return weigh_ratios(pool, known, part.weight, part.floor)[:k]

    def ratio_shares(
        self, ctx: Context, groups: list[int], max_atoms: int, k: int | None = None
    ) -> list[tuple[float, dict[int, float]]]:
        """For each of the ``k`` likeliest ratios (:meth:`likely_ratios`) that some of ``groups`` can
        host: its probability and the softmax shares of its hosts, ranked as a ratio request would be."""
        asked = []
        for counts, probability in self.likely_ratios(ctx, max_atoms, k):
            target = RatioCounts(ctx.elements, counts, max_atoms)
            hosts = [g for g in groups if target.feasible(g)]
            if hosts:
                as_ratio = Context(Pattern.COMPOSITION.value, ctx.elements, counts, ctx.band_gap, ctx.formation_energy)
                asked.append((probability, as_ratio, hosts))

        def shares(item: tuple[float, Context, list[int]]) -> tuple[float, dict[int, float]]:
            probability, as_ratio, hosts = item
            ranked = self.rank_groups(as_ratio, hosts, len(hosts))
            top = max(score for _, score in ranked)
            weights = {group: math.exp(score - top) for group, score in ranked}
            total = sum(weights.values())
            return probability, {group: value / total for group, value in weights.items()}

        return self._side_by_side(shares, asked)

    def rank_site_lists(
        self,
        ctx: Context,
        target: Target,
        spacegroup: int,
        k: int,
        temperature: float = 0.0,
        rng: random.Random | None = None,
    ) -> list[tuple[State, float]]:
        """Stage 2: the LM's best site lists, joined (greedy decoding only) by those of the nearest
        same-prototype crystals in this group, all scored by LM log-probability plus the sites prior."""
        ranked = rank_sites(self.scorer, ctx, target, spacegroup, k, temperature=temperature, rng=rng)
        part = self.prior.settings[ctx.pattern].sites if self.prior and ctx.pattern in self.prior.settings else None
        if part is None or part.weight == 0:
            return ranked
        assert self.prior is not None  # the part came from it

        def fits(sites) -> bool:
            return fitting_state(target, spacegroup, sites, ctx.elements) is not None

        proposals = self.prior.site_proposals(
            ctx.pattern, ctx.elements, ctx.counts, spacegroup, ctx.band_gap, ctx.formation_energy, fits
        )
        share: dict[tuple, tuple[State, float]] = {}
        for sites, weight in proposals:
            state = fitting_state(target, spacegroup, sites, ctx.elements)
            if state is not None:
                share[state.sites] = (state, weight)
        if not share:
            return ranked
        if temperature <= 0:
            seen = {state.sites for state, _ in ranked}
            new = [state for key, (state, _) in share.items() if key not in seen]
            ranked = ranked + list(zip(new, score_states(self.scorer, ctx, spacegroup, new))) if new else ranked
        rescored = [
            (state, score + part.weight * math.log(share.get(state.sites, (None, 0.0))[1] + part.floor))
            for state, score in ranked
        ]
        return sorted(rescored, key=lambda s: -s[1])[:k]

    def _site_lists(
        self,
        ctx: Context,
        target: Target,
        groups: list[tuple[int, float]],
        k: int,
        temperature: float,
        rng: random.Random,
    ) -> list[list[tuple[State, float]]]:
        """Stage 2 for each group, in order. Through a server (a scorer marked ``concurrent``) the
        groups' beam searches run side by side, so that each decoder step's prompts of all groups
        reach the server together and are batched; greedy decoding only (sampling shares ``rng``)."""

        def site_lists(group: tuple[int, float]) -> list[tuple[State, float]]:
            return self.rank_site_lists(ctx, target, group[0], k, temperature, rng)

        if temperature > 0:
            return [site_lists(group) for group in groups]
        return self._side_by_side(site_lists, groups)

    def _side_by_side(self, work: Callable[[T], R], items: list[T]) -> list[R]:
        """``work`` on each item, in order: in threads when the scorer is a server (a scorer marked
        ``concurrent``), so that the items' prompts reach it together and are batched; else in turn."""
        if len(items) > 1 and getattr(self.scorer, "concurrent", False):
            with ThreadPoolExecutor(len(items)) as pool:
                return list(pool.map(work, items))
        return [work(item) for item in items]

    @staticmethod
    def context(request: ConstraintRequest) -> Context:
        target = request.target()
        counts = None
        if isinstance(target, ExactCounts):
            counts = target.counts
        elif isinstance(target, RatioCounts):
            counts = target.ratio
        return Context(request.pattern.value, target.elements, counts, request.band_gap, request.formation_energy)

    def predict(
        self,
        request: ConstraintRequest | dict,
        *,
        top_k: int = ConstraintSettings.top_k,
        temperature: float = ConstraintSettings.temperature,
        seed: int = ConstraintSettings.seed,
        allowed_groups: Collection[int] | None = None,
    ) -> list[ConstraintCandidate]:
        """Ranked valid candidates, best first; raises :class:`InputError` if none can exist.

        Best first means: the best site list of each of stage 1's groups, in stage-1 order, then
        the second-best lists, and so on (one group given: its lists by score). ``score`` is the
        group's plus the list's log-probability (with the votes of the prior and the classifier).

        ``allowed_groups`` restricts stage 1 to these groups (a user's symmetry wishes such as
        "cubic, not 221"), so the model ranks only groups the user accepts instead of its top-k
        being filtered afterwards into nothing.
        """
        if not isinstance(request, ConstraintRequest):
            request = ConstraintRequest.model_validate(request)
        if top_k < 1:
            raise InputError("top_k must be at least 1")
        target = request.target()
        ctx = self.context(request)
        rng = random.Random(seed)
        what = request.formula or request.composition or "-".join(request.elements or [])
        if request.spacegroup is not None:
            if not target.feasible(request.spacegroup):
                raise InputError(
                    f"space group {request.spacegroup} cannot host {what}"
                    + ("" if request.pattern is Pattern.FORMULA else f" within {request.max_atoms} atoms")
                )
            groups = [(request.spacegroup, 0.0)]
        else:
            feasible = feasible_groups(target)
            if allowed_groups is not None:
                feasible = [g for g in feasible if g in set(allowed_groups)]
            if not feasible:
                raise InputError(
                    f"no {'allowed ' if allowed_groups is not None else ''}space group can host {what}"
                    + ("" if request.pattern is Pattern.FORMULA else f" within {request.max_atoms} atoms")
                )
            groups = self.rank_groups(ctx, feasible, self.sg_candidates or top_k, temperature, rng, request.max_atoms)
        per_group: list[list[ConstraintCandidate]] = []
        site_lists_per_group = self._site_lists(ctx, target, groups, top_k, temperature, rng)
        for (spacegroup, sg_score), site_lists in zip(groups, site_lists_per_group):
            candidates: list[ConstraintCandidate] = []
            per_group.append(candidates)
            for state, site_score in site_lists:
                sites = [
                    SiteSpec(element=el, wyckoff=label) for el, label in site_labels(spacegroup, state, target.elements)
                ]
                constraint = SymmetryConstraint(spacegroup=spacegroup, sites=sites)  # re-validates
                counts = dict(zip(target.elements, state.so_far))
                if isinstance(target, ExactCounts):
                    constraint.check_counts(dict(zip(target.elements, target.counts)))
                candidates.append(
                    ConstraintCandidate(
                        spacegroup=spacegroup,
                        formula=format_counts(counts),
                        sites=sites,
                        score=round(sg_score + site_score, 4),
                    )
                )
        # The two stages decide in turn, as in CrystalGF: the group is stage 1's choice, the sites the
        # best for that group. So the best list of every group comes first, in stage-1 order, then
        # the second-best lists, and so on. Sorting by the summed score instead lets the site
        # lists' log-probabilities (which vary with their length) overrule stage 1: on MP val half B,
        # elements + formation energy, the top group was right 31.0 % of the time that way, 34.1 %
        # this way.
        ordered = [c for rank in itertools.zip_longest(*per_group) for c in rank if c is not None]
        return ordered[:top_k]

    def predict_line(
        self,
        data: Any,
        *,
        top_k: int = ConstraintSettings.top_k,
        temperature: float = ConstraintSettings.temperature,
        seed: int = ConstraintSettings.seed,
    ) -> Prediction:
        """One JSONL request to one output record; errors become an ``error`` field."""
        checked = check_request(data)
        if isinstance(checked, Prediction):
            return checked
        return self.predict_request(checked, top_k=top_k, temperature=temperature, seed=seed)

    def predict_request(
        self,
        request: ConstraintRequest,
        *,
        top_k: int = ConstraintSettings.top_k,
        temperature: float = ConstraintSettings.temperature,
        seed: int = ConstraintSettings.seed,
    ) -> Prediction:
        """One validated request to one output record; a request no group can host becomes an error."""
        try:
            candidates = self.predict(request, top_k=top_k, temperature=temperature, seed=seed)
            return Prediction(id=request.id, candidates=candidates)
        except ValidationError as exc:
            return Prediction(id=request.id, error=validation_message(exc))
        except XtalAgentError as exc:
            return Prediction(id=request.id, error=str(exc))

    def predict_jsonl(
        self,
        lines: Iterable[str],
        *,
        top_k: int = ConstraintSettings.top_k,
        temperature: float = ConstraintSettings.temperature,
        seed: int = ConstraintSettings.seed,
    ) -> Iterator[Prediction]:
        """One output record per non-blank line, in order."""
        for item in read_request_lines(lines):
            if isinstance(item, Prediction):
                yield item
            else:
                yield self.predict_request(item, top_k=top_k, temperature=temperature, seed=seed)


def check_request(data: Any, number: int | None = None) -> ConstraintRequest | Prediction:
    """A parsed JSON value as a validated request, or a :class:`Prediction` holding its one-line error.

    Kept apart from the model so a whole request file can be checked before the model loads.
    """
    ident = data.get("id") if isinstance(data, dict) else None
    where = f"line {number}: " if number is not None else ""
    try:
        if not isinstance(data, dict):
            raise InputError("a request must be a JSON object")
        return ConstraintRequest.model_validate(data)
    except ValidationError as exc:
        return Prediction(id=ident, error=where + validation_message(exc))
    except XtalAgentError as exc:
        return Prediction(id=ident, error=where + str(exc))


def read_request_lines(lines: Iterable[str]) -> Iterator[ConstraintRequest | Prediction]:
    """Each non-blank JSONL line as a validated request or an error record (never raises)."""
    for number, data, reason in json_lines(lines):
        if reason is not None:
            yield Prediction(id=None, error=f"line {number}: not valid JSON ({reason})")
            continue
        yield check_request(data, number)


def duplicate_ids(requests: Iterable[ConstraintRequest | Prediction]) -> list[str]:
    """Request ids given more than once (as JSON text), in first-seen order; ``None`` ids are ignored."""
    seen: dict[str, int] = {}
    for item in requests:
        if item.id is not None:
            key = json.dumps(item.id, sort_keys=True, default=str)
            seen[key] = seen.get(key, 0) + 1
    return [key for key, count in seen.items() if count > 1]
