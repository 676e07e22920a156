"""Scoring through vLLM's OpenAI-compatible completions endpoint (``xtalagent serve``).

The endpoint is one server that serves both stages (models ``sg`` and ``wyckoff``, e.g. two LoRA
adapters) or several, comma-separated (``serve``'s split layout: one server per stage); each
stage's requests go to the server whose ``/v1/models`` lists its model.

A continuation's log-probability is the sum, along its tokens, of each token's log-probability
given the prompt and the tokens before it. The continuations of one decoder call share most of
those prefixes (a beam step extends the beams of the step before by one site; the 230 groups of
stage 1 share their first digits), so the scorer asks for each distinct prefix once: the prompt
plus that prefix, as token ids, with ``max_tokens=1`` and ``logprob_token_ids`` set to the tokens
that follow it somewhere. Every such request ends in the same prompt, which vLLM's prefix cache
(``--enable-prefix-caching``, blocks of 32 tokens) computes once; the prompt alone is sent first
so that its blocks are cached before the other requests are scheduled. Prefixes answered by an
earlier call with the same prompt are not asked again.

Why not ``echo=True`` with prompt log-probabilities, one text per continuation: vLLM does not
read its prefix cache for a request that asks for prompt log-probabilities, so every continuation
recomputed the whole prompt; and its ``text_offset`` adds up token strings without the
whitespace between them, so offsets cannot locate the answer in the text.

Token ids come from the model folder's own tokenizer, exactly as :class:`LocalScorer` makes them,
and are checked once against the server's ``/tokenize``: a server that reads text with another
tokenizer (vLLM takes a Qwen2 model's tokenizer from ``config.json`` unless ``--tokenizer`` says
otherwise) is one clear error, not wrong answers.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import urllib.error
import urllib.request
from collections import OrderedDict
from pathlib import Path

from xtalagent.errors import XtalAgentError
from xtalagent.finetune.scorers import STAGES, continuation_ids, leading_special_ids, splits_at_whitespace

logger = logging.getLogger(__name__)

#: vLLM's limit on ``logprob_token_ids`` per request (``vllm.sampling_params.MAX_LOGPROB_TOKEN_IDS``)
MAX_TOKEN_IDS = 128

Prefix = tuple[int, ...]


class EndpointScorer:
    """Scores through an OpenAI-compatible ``/v1/completions`` endpoint (vLLM)."""

    #: safe to call from several threads at once; the server batches what arrives together
    concurrent = True

    def __init__(
        self,
        url: str,
        tokenizer,
        *,
        models: dict[str, str] | None = None,
        api_key: str | None = None,
        timeout: float = 300.0,
        batch_size: int = 512,
        kept_prompts: int = 256,
    ):
        # one server with both stages (LoRA adapters), or one per stage (``serve``'s split layout)
        self.roots = [part.strip().rstrip("/").removesuffix("/v1") for part in url.split(",") if part.strip()]
        if not self.roots:
            raise XtalAgentError("no endpoint URL given")
        self.url = ",".join(self.roots)
        self._stage_roots: dict[str, str] = {}  # stage -> the server that serves its model (from /v1/models)
        self.tokenizer = tokenizer
        self.models = models or {stage: stage for stage in STAGES}
        self.api_key = api_key or os.environ.get("XTALAGENT_API_KEY") or os.environ.get("OPENAI_API_KEY") or "EMPTY"
        self.timeout = timeout
        self.batch_size = batch_size  # prompts per /v1/completions call
        # prompts whose known prefixes are kept: each decoder step re-reads the prefixes of the steps
        # before, so a prompt still being decoded must not be dropped; with 8 requests in flight and
        # their groups side by side, 40+ prompts are open at once (16 made that run slower than one
        # request at a time: 47 s against 21 s)
        self.kept_prompts = kept_prompts
        self._start = leading_special_ids(tokenizer)  # as LocalScorer puts before every prompt
        self._whitespace_splits = splits_at_whitespace(tokenizer)
        self._known: OrderedDict[tuple[str, str], dict[Prefix, dict[int, float]]] = OrderedDict()
        self._lock = threading.Lock()
        self._checked = False

    @classmethod
    def for_model(cls, url: str, model_dir: str | Path, **kwargs) -> EndpointScorer:
        """A scorer that reads text with the tokenizer of ``model_dir`` (the folder the server serves)."""
        from xtalagent.finetune.tokenizer import load_tokenizer
        from xtalagent.finetune.workflow import resolve_base

        return cls(url, load_tokenizer(resolve_base(Path(model_dir))), **kwargs)

    # --- HTTP --------------------------------------------------------------------------------
    def _request(self, path: str, payload: dict | None = None, root: str | None = None) -> dict:
        root = root or self.roots[0]
        request = urllib.request.Request(
            root + path,
            data=None if payload is None else json.dumps(payload).encode(),
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {self.api_key}"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raise XtalAgentError(f"endpoint {root} answered {exc.code}: {exc.read()[:300]!r}") from None
        except TimeoutError:
            raise XtalAgentError(
                f"endpoint {root} did not answer within {self.timeout:g} s (raise --timeout)"
            ) from None
        except (urllib.error.URLError, ConnectionError) as exc:
            raise XtalAgentError(f"endpoint {root} not reachable: {getattr(exc, 'reason', exc)}") from None

    def check(self, prompt: str) -> None:
        """Once: find the server of each stage's model, and check that each tokenises ``prompt`` as
        this scorer does."""
        served: dict[str, str] = {}
        for root in self.roots:
            for item in self._request("/v1/models", root=root).get("data", []):
                served.setdefault(item.get("id"), root)
        missing = [name for name in self.models.values() if name not in served]
        if missing:
            raise XtalAgentError(
                f"endpoint {self.url} serves {sorted(served)}, not the models {missing} "
                "(start it with 'xtalagent serve --model DIR')"
            )
        self._stage_roots = {stage: served[name] for stage, name in self.models.items()}
        ours = self._start + self.tokenizer(prompt, add_special_tokens=False).input_ids
        for root, stage in {root: stage for stage, root in self._stage_roots.items()}.items():
            try:
                theirs = self._request("/tokenize", {"model": self.models[stage], "prompt": prompt}, root).get("tokens")
            except XtalAgentError as exc:
                logger.warning("cannot check the endpoint's tokenizer (%s); scoring with token ids anyway", exc)
                continue
            if theirs != ours:
                raise XtalAgentError(
                    f"endpoint {root} tokenises the prompt into {len(theirs or [])} tokens, the model folder's "
                    f"tokenizer into {len(ours)}: the server reads text with another tokenizer (start it with "
                    "'xtalagent serve', which passes the folder's own --tokenizer, or give --model the folder served)"
                )

    # --- scoring -----------------------------------------------------------------------------
    def score(self, stage: str, prompt: str, continuations: list[str], end: list[bool]) -> list[float]:
        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r}")
        if not self._checked:
            self.check(prompt)
            self._checked = True
        prompt_ids = self.tokenizer(prompt, add_special_tokens=False).input_ids
        eos = self.tokenizer.eos_token_id
        conts = [
            ids + ([eos] if stop else [])
            for ids, stop in zip(
                continuation_ids(self.tokenizer, prompt, prompt_ids, continuations, self._whitespace_splits), end
            )
        ]
        known = self._prefixes(stage, prompt)
        wanted: dict[Prefix, set[int]] = {}
        for ids in conts:
            for t, token in enumerate(ids):
                prefix = tuple(ids[:t])
                if token not in known.get(prefix, {}):
                    wanted.setdefault(prefix, set()).add(token)
        if wanted:
            self._fetch(stage, self._start + prompt_ids, wanted, known)
        return [sum(known[tuple(ids[:t])][token] for t, token in enumerate(ids)) for ids in conts]

    def _prefixes(self, stage: str, prompt: str) -> dict[Prefix, dict[int, float]]:
        """Next-token log-probabilities known for this prompt, per prefix (the last few prompts kept)."""
        key = (stage, prompt)
        with self._lock:
            if key in self._known:
                self._known.move_to_end(key)
            else:
                while len(self._known) >= self.kept_prompts:
                    self._known.popitem(last=False)
                self._known[key] = {}
            return self._known[key]

    def _fetch(
        self, stage: str, prompt_ids: list[int], wanted: dict[Prefix, set[int]], known: dict[Prefix, dict[int, float]]
    ) -> None:
        """Ask for the next-token log-probabilities of every wanted prefix; the prompt alone first,
        so that the prompt's cache blocks exist before the rest is scheduled."""
        pending = dict(wanted)
        if () in pending and len(pending) > 1:
            self._call(stage, prompt_ids, {(): pending.pop(())}, known)
        for batch in _batches(pending, self.batch_size):
            self._call(stage, prompt_ids, batch, known)

    def _call(
        self, stage: str, prompt_ids: list[int], batch: dict[Prefix, set[int]], known: dict[Prefix, dict[int, float]]
    ) -> None:
        tokens = sorted(set().union(*batch.values()))
        prefixes = list(batch)
        reply = self._request(
            "/v1/completions",
            {
                "model": self.models[stage],
                "prompt": [prompt_ids + list(prefix) for prefix in prefixes],
                "max_tokens": 1,
                "temperature": 0.0,
                "logprobs": len(tokens),
                "logprob_token_ids": tokens,
                "return_tokens_as_token_ids": True,
            },
            self._stage_roots.get(stage),
        )
        choices = sorted(reply.get("choices", []), key=lambda c: c.get("index", 0))
        if len(choices) != len(prefixes):
            raise XtalAgentError(f"endpoint {self.url} returned {len(choices)} choices for {len(prefixes)} prompts")
        for prefix, choice in zip(prefixes, choices):
            top = ((choice.get("logprobs") or {}).get("top_logprobs") or [None])[0]
            if not top:
                raise XtalAgentError(
                    f"endpoint {self.url} returned no log-probabilities for the requested tokens "
                    "(needs vLLM's logprob_token_ids, vLLM >= 0.2x)"
                )
            values = {int(name.removeprefix("token_id:")): value for name, value in top.items()}
            if not batch[prefix] <= values.keys():
                raise XtalAgentError(
                    f"endpoint {self.url} left out requested tokens {sorted(batch[prefix] - values.keys())}"
                )
            known.setdefault(prefix, {}).update(values)


def _batches(wanted: dict[Prefix, set[int]], size: int) -> list[dict[Prefix, set[int]]]:
    """Consecutive groups of at most ``size`` prefixes whose wanted tokens together stay within
    vLLM's ``logprob_token_ids`` limit (one list serves every prompt of a call)."""
    batches: list[dict[Prefix, set[int]]] = []
    batch: dict[Prefix, set[int]] = {}
    union: set[int] = set()
    for prefix, tokens in wanted.items():
        if batch and (len(batch) >= size or len(union | tokens) > MAX_TOKEN_IDS):
            batches.append(batch)
            batch, union = {}, set()
        batch[prefix] = tokens
        union |= tokens
    if batch:
        batches.append(batch)
    return batches
