"""Scorers: log-probability of an answer given a prompt, from a local model or a vLLM endpoint.

Strict decoding never lets a model write free text: the decoder enumerates the valid next
pieces of an answer and asks a scorer how likely each is. Two implementations of one protocol:

* :class:`LocalScorer` — transformers + peft in process: a base model and two LoRA adapters
  (``sg``, ``wyckoff``). A small base gets one merged copy per stage (no LoRA layers left to run,
  no adapter switching: about a third of the time of a request on the embedded model); a large one
  keeps one copy and switches adapters per stage. The prompt is run once and its KV cache shared
  by all candidate continuations.
* :class:`~xtalagent.finetune.endpoint_scorer.EndpointScorer` — vLLM's OpenAI-compatible
  completions endpoint serving the base model with both adapters (``xtalagent serve``).
"""

from __future__ import annotations

import functools
import inspect
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from xtalagent.errors import XtalAgentError

STAGES = ("sg", "wyckoff")


class Scorer(Protocol):
    def score(self, stage: str, prompt: str, continuations: list[str], end: list[bool]) -> list[float]:
        """Total log-probability of each continuation after ``prompt`` (plus end-of-text where ``end``)."""
        ...


def splits_at_whitespace(tokenizer) -> bool:
    """Whether a tokenizer reads text on either side of whitespace independently: no normalizer,
    a first pre-tokenizer that splits at whitespace, no added token containing whitespace.

    True for the embedded word-level tokenizer; false for byte-level BPE (GPT-2, Qwen), whose
    tokens carry their leading space. Tokenising a continuation alone is then exact and far
    cheaper than tokenising the long prompt again with each of hundreds of continuations.
    """
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return False
    spec = json.loads(backend.to_str())
    pre = spec.get("pre_tokenizer") or {}
    first = (pre.get("pretokenizers") or [{}])[0] if pre.get("type") == "Sequence" else pre
    added = [token.get("content", "") for token in spec.get("added_tokens") or []]
    return (
        spec.get("normalizer") is None
        and first.get("type") in ("WhitespaceSplit", "Whitespace")
        and not any(ch.isspace() for token in added for ch in token)
    )


def leading_special_ids(tokenizer) -> list[int]:
    """The special tokens a tokenizer puts before every text (a Llama BOS; none for Qwen or the
    embedded tokenizer). trl tokenises training prompts with them and vLLM scores with them, so the
    local scorer reads a prompt after them too."""
    marked = tokenizer("Si", add_special_tokens=True).input_ids
    plain = tokenizer("Si", add_special_tokens=False).input_ids
    for start in range(len(marked) - len(plain) + 1):
        if marked[start : start + len(plain)] == plain:
            return marked[:start]
    return []


def continuation_ids(
    tokenizer, prompt: str, prompt_ids: list[int], continuations: list[str], whitespace_splits: bool
) -> list[list[int]]:
    """Token ids of each continuation as the model reads it after ``prompt``.

    Tokenised alone where whitespace at the boundary keeps the tokenizer from merging across it
    (``whitespace_splits``, see :func:`splits_at_whitespace`); otherwise together with the prompt,
    and alone only where the prompt's own tokens then come first. Shared by both scorers so that
    the endpoint scores exactly the tokens the local model scores.
    """
    alone = tokenizer(continuations, add_special_tokens=False).input_ids
    safe = [whitespace_splits and (prompt[-1:].isspace() or text[:1].isspace()) for text in continuations]
    if all(safe):
        return alone
    unsafe = [i for i, ok in enumerate(safe) if not ok]
    fulls = tokenizer([prompt + continuations[i] for i in unsafe], add_special_tokens=False).input_ids
    n = len(prompt_ids)
    for i, full in zip(unsafe, fulls):
        if full[:n] == prompt_ids:
            alone[i] = full[n:]
    return alone


class LocalScorer:
    """A causal LM per stage (or one LM whose LoRA adapter is switched per stage), scored in process."""

    def __init__(
        self,
        models: Mapping[str, Any],
        tokenizer,
        device: str = "cpu",
        batch_tokens: int = 1024,
        adapters: Mapping[str, str] | None = None,
    ):
        import torch

        if set(models) != set(STAGES):
            raise ValueError(f"need a model for each stage {STAGES}, got {sorted(models)}")
        self.torch = torch
        self.models = dict(models)
        self.tokenizer = tokenizer
        self.device = device
        self.batch_tokens = batch_tokens  # new tokens per forward pass (its mask is this squared)
        self.adapters = dict(adapters or {})  # stage -> adapter to activate on a shared peft model
        self._rows: dict[tuple[str, str], dict[tuple[int, ...], tuple[_Rows, int]]] = {}
        self._whitespace_splits: bool | None = None
        self._start = leading_special_ids(tokenizer)  # put before every prompt, as in training

    @classmethod
    def single(cls, model, tokenizer, **kwargs) -> LocalScorer:
        """Both stages scored by ``model`` as it is (training scores the adapter being trained)."""
        return cls(dict.fromkeys(STAGES, model), tokenizer, **kwargs)

    @classmethod
    def load(
        cls,
        model_dir: str | Path,
        device: str = "cpu",
        threads: int | None = None,
        merge: bool | None = None,
        **kwargs,
    ) -> LocalScorer:
        """Load ``model_dir/base`` with the adapters ``model_dir/sg`` and ``model_dir/wyckoff``.

        ``merge`` (default: when the base has at most ``config.CONSTRAINT_MERGE_MAX_PARAMS``
        parameters) folds each adapter into its own copy of the base; otherwise one copy holds both
        adapters and the active one is switched per stage (half the memory, slower).
        """
        import copy

        import torch
        from peft import PeftModel
        from transformers import AutoModelForCausalLM

        from xtalagent import config
        from xtalagent.finetune.tokenizer import load_tokenizer
        from xtalagent.finetune.workflow import resolve_base

        model_dir = Path(model_dir)
        if not model_dir.is_dir():
            raise XtalAgentError(f"{model_dir}: no such model folder (train one with 'xtalagent finetune')")
        base_model = resolve_base(model_dir)
        for stage in STAGES:
            if not (model_dir / stage).exists():
                raise XtalAgentError(
                    f"{model_dir}: not a constraint model (missing '{stage}/'; train one with 'xtalagent finetune')"
                )
        if threads:
            torch.set_num_threads(threads)
        tokenizer = load_tokenizer(base_model)
        base = AutoModelForCausalLM.from_pretrained(base_model, dtype=torch.float32)
        if merge is None:
            merge = base.num_parameters() <= config.CONSTRAINT_MERGE_MAX_PARAMS
        if merge:
            models = {}
            for n, stage in enumerate(STAGES):
                copy_of_base = base if n == len(STAGES) - 1 else copy.deepcopy(base)
                merged = PeftModel.from_pretrained(copy_of_base, model_dir / stage).merge_and_unload()
                models[stage] = merged.to(device).eval()
            return cls(models, tokenizer, device, **kwargs)
        model = PeftModel.from_pretrained(base, model_dir / "sg", adapter_name="sg")
        model.load_adapter(model_dir / "wyckoff", adapter_name="wyckoff")
        model = model.to(device).eval()
        return cls(dict.fromkeys(STAGES, model), tokenizer, device, adapters={s: s for s in STAGES}, **kwargs)

    def _ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False).input_ids

    def _continuation_ids(self, prompt: str, prompt_ids: list[int], continuations: list[str]) -> list[list[int]]:
        if self._whitespace_splits is None:
            self._whitespace_splits = splits_at_whitespace(self.tokenizer)
        return continuation_ids(self.tokenizer, prompt, prompt_ids, continuations, self._whitespace_splits)

    def score(self, stage: str, prompt: str, continuations: list[str], end: list[bool]) -> list[float]:
        """All continuations of one call run packed into one sequence after the prompt (a mask
        keeps each to the prompt and its own tokens), so the prompt's keys and values are never
        copied per continuation. Each runs only the tokens after its longest prefix kept from the
        previous call with this prompt: a beam step extends the beams of the step before by one
        site, so it runs that site's tokens, not the whole answer again."""
        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r}")
        torch = self.torch
        model = self.models[stage]
        if stage in self.adapters:
            model.set_adapter(self.adapters[stage])
        prompt_ids = self._ids(prompt)
        eos = self.tokenizer.eos_token_id
        conts = [
            ids + ([eos] if stop else [])
            for ids, stop in zip(self._continuation_ids(prompt, prompt_ids, continuations), end)
        ]
        scores: list[float] = [0.0] * len(conts)
        with torch.inference_mode():
            known = self._known(model, stage, prompt, prompt_ids)
            jobs: list[tuple[int, _Rows, int, list[int]]] = []
            for i, ids in enumerate(conts):
                cut = next(cut for cut in range(len(ids), -1, -1) if tuple(ids[:cut]) in known)
                rows, row = known[tuple(ids[:cut])]
                if cut == len(ids):
                    scores[i] = rows.total[row].item()
                else:
                    jobs.append((i, rows, row, ids[cut:]))
            kept: dict[tuple[int, ...], tuple[_Rows, int]] = {(): known[()]}
            for batch in _token_batches(jobs, self.batch_tokens):
                rows = self._extend(model, known[()][0], [(p, r, new, end[i]) for i, p, r, new in batch])
                for n, (i, *_rest) in enumerate(batch):
                    scores[i] = rows.total[n].item()
                    if not end[i]:  # an answer that ended is never extended
                        kept[tuple(conts[i])] = (rows, n)
            self._rows[(stage, prompt)] = kept
        return scores

    def _known(self, model, stage: str, prompt: str, prompt_ids: list[int]) -> dict[tuple[int, ...], tuple[_Rows, int]]:
        """The sequences whose keys and values are kept for this prompt: the prompt itself
        (memoised for the last few prompts) and the continuations of the last call with it."""
        key = (stage, prompt)
        if key not in self._rows:
            out = model(self.torch.tensor([self._start + prompt_ids], device=self.device), use_cache=True)
            keys, values = _cache_tensors(_output_cache(out))
            root = _Rows(
                keys=keys,
                values=values,
                columns=[self.torch.zeros(0, dtype=self.torch.long, device=self.device)],
                last_logp=self.torch.log_softmax(out.logits[:, -1].float(), dim=-1),
                total=self.torch.zeros(1, device=self.device),
            )
            while len(self._rows) >= 8:
                self._rows.pop(next(iter(self._rows)))
            self._rows[key] = {(): (root, 0)}
        else:
            self._rows[key] = self._rows.pop(key)  # most recently used last
        return self._rows[key]

    def _extend(self, model, root: _Rows, jobs: list[tuple[_Rows, int, list[int], bool]]) -> _Rows:
        """Run the ``new`` tokens after row ``row`` of each parent, all in one packed sequence.

        The cache holds the prompt, then each distinct parent's continuation once, then the new
        tokens of every job back to back; a 4-D mask lets each new token see the prompt, its
        parent's tokens and its own earlier tokens, and position ids count as in the unpacked
        sequence. The last token of an ended answer is scored but not run (nothing follows it).
        """
        torch = self.torch
        device = self.device
        prompt_len = root.keys[0].shape[2]
        blocks: dict[tuple[int, int], int] = {}
        parents: list[tuple[_Rows, int]] = []
        for parent, row, _, _ in jobs:
            if (id(parent), row) not in blocks:
                blocks[(id(parent), row)] = len(parents)
                parents.append((parent, row))
        block_len = torch.tensor([len(p.columns[r]) for p, r in parents], device=device)
        block_start = prompt_len + torch.cumsum(block_len, 0) - block_len
        past_len = prompt_len + int(block_len.sum())
        keys = [
            torch.cat([root.keys[n]] + [p.keys[n].index_select(2, p.columns[r]) for p, r in parents], dim=2)
            for n in range(len(root.keys))
        ]
        values = [
            torch.cat([root.values[n]] + [p.values[n].index_select(2, p.columns[r]) for p, r in parents], dim=2)
            for n in range(len(root.values))
        ]
        job_block = torch.tensor([blocks[(id(p), r)] for p, r, _, _ in jobs], device=device)
        fed = [new[:-1] if ended else new for _, _, new, ended in jobs]  # tokens run through the model
        fed_len = torch.tensor([len(f) for f in fed], device=device)
        fed_start = torch.cumsum(fed_len, 0) - fed_len
        n_fed = int(fed_len.sum())
        parent_last = torch.stack([p.last_logp[r] for p, r, _, _ in jobs])
        parent_total = torch.stack([p.total[r] for p, r, _, _ in jobs])
        first = torch.tensor([new[0] for _, _, new, _ in jobs], device=device)
        total = parent_total + parent_last.gather(1, first[:, None]).squeeze(1)
        last_logp = parent_last
        columns = [
            torch.arange(s, s + n, device=device)
            for s, n in zip(block_start[job_block].tolist(), block_len[job_block].tolist())
        ]
        out_keys, out_values = keys, values
        if n_fed:
            row_job = torch.repeat_interleave(torch.arange(len(jobs), device=device), fed_len)
            row_step = torch.arange(n_fed, device=device) - fed_start[row_job]
            col_block = torch.repeat_interleave(torch.arange(len(parents), device=device), block_len)
            sees = torch.cat(
                [
                    torch.ones((n_fed, prompt_len), dtype=torch.bool, device=device),
                    col_block[None, :] == job_block[row_job][:, None],
                    (row_job[None, :] == row_job[:, None]) & (row_step[None, :] <= row_step[:, None]),
                ],
                dim=1,
            )
            dtype = keys[0].dtype
            mask = torch.zeros(sees.shape, dtype=dtype, device=device).masked_fill(~sees, torch.finfo(dtype).min)
            ids = torch.tensor([t for f in fed for t in f], device=device)
            positions = prompt_len + block_len[job_block][row_job] + row_step
            out = model(
                input_ids=ids[None],
                attention_mask=mask[None, None],
                position_ids=positions[None],
                **{_cache_argument(model): _make_cache(keys, values)},
                use_cache=True,
            )
            out_keys, out_values = _cache_tensors(_output_cache(out))
            logp = torch.log_softmax(out.logits[0].float(), dim=-1)
            # each fed token scores the token after it (none after a kept answer's last token)
            following = torch.tensor(
                [new[t + 1] if t + 1 < len(new) else -1 for (_, _, new, _), f in zip(jobs, fed) for t in range(len(f))],
                device=device,
            )
            scored = following >= 0
            step_logp = logp.gather(1, following.clamp(min=0)[:, None]).squeeze(1) * scored
            total = total.index_add(0, row_job, step_logp)
            last_fed = fed_start + fed_len - 1
            has_fed = fed_len > 0
            last_logp = torch.where(has_fed[:, None], logp[last_fed.clamp(min=0)], parent_last)
            columns = [
                torch.cat([c, torch.arange(past_len + s, past_len + s + n, device=device)])
                for c, s, n in zip(columns, fed_start.tolist(), fed_len.tolist())
            ]
        return _Rows(keys=out_keys, values=out_values, columns=columns, last_logp=last_logp, total=total)


def _token_batches(jobs: list, budget: int) -> Iterator[list]:
    """Consecutive groups of jobs with at most ``budget`` new tokens each (at least one job)."""
    batch: list = []
    used = 0
    for job in jobs:
        if batch and used + len(job[-1]) > budget:
            yield batch
            batch, used = [], 0
        batch.append(job)
        used += len(job[-1])
    if batch:
        yield batch


def _cache_argument(model) -> str:
    """The forward argument that takes a cache: ``cache`` from transformers 5.2x (where
    ``past_key_values`` warns on every call), ``past_key_values`` before. A peft wrapper passes
    either on to the model it wraps, so that model's signature decides."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    return _cache_argument_of(type(inner))  # type: ignore[arg-type]  # classes are hashable


@functools.cache
def _cache_argument_of(cls) -> str:
    return "cache" if "cache" in inspect.signature(cls.forward).parameters else "past_key_values"


def _output_cache(out):
    """The cache a forward pass returned, under either name."""
    cache = out.get("cache") if hasattr(out, "get") else None
    return cache if cache is not None else out.past_key_values


def _cache_tensors(cache) -> tuple[list, list]:
    """Per-layer key and value tensors of a transformers cache (5.x layers or 4.x lists)."""
    if hasattr(cache, "layers"):
        return [layer.keys for layer in cache.layers], [layer.values for layer in cache.layers]
    return list(cache.key_cache), list(cache.value_cache)


def _make_cache(keys: list, values: list):
    """A transformers ``DynamicCache`` holding these per-layer keys and values."""
    from transformers import DynamicCache

    try:
        return DynamicCache(ddp_cache_data=list(zip(keys, values)))
    except TypeError:  # transformers 4.x
        return DynamicCache.from_legacy_cache(tuple(zip(keys, values)))  # type: ignore[attr-defined]  # 4.x only


@dataclass
class _Rows:
    """Continuations scored in one forward pass, kept so the next beam step runs only its new tokens.

    Per layer, ``keys``/``values`` are (1, heads, columns, head_dim): the prompt, then packed
    continuation tokens; ``columns[n]`` lists the columns of row n's continuation, in order;
    ``last_logp`` is the next-token distribution after each row; ``total`` its continuation's
    log-probability.
    """

    keys: list[Any]
    values: list[Any]
    columns: list[Any]
    last_logp: Any
    total: Any
