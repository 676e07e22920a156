"""Scorers: log-probability of an answer given a prompt, from a local model or a vLLM endpoint.

Strict decoding never lets a model write free text: the decoder enumerates the valid next
pieces of an answer and asks a scorer how likely each is. Two implementations of one protocol:

* :class:`LocalScorer` — transformers + peft in process: a base model and two LoRA adapters
  (``sg``, ``wyckoff``), switched per stage. The prompt is run once and its KV cache shared by
  all candidate continuations.
* :class:`EndpointScorer` — an OpenAI-compatible completions endpoint (vLLM serving the base
  model with both adapters as ``--lora-modules sg=... wyckoff=...``); it scores with
  ``echo=True`` + ``logprobs``, which returns the log-probability of every prompt token.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Protocol

from xtalagent.errors import XtalAgentError

STAGES = ("sg", "wyckoff")


class Scorer(Protocol):
    def score(self, stage: str, prompt: str, continuations: list[str], end: list[bool]) -> list[float]:
        """Total log-probability of each continuation after ``prompt`` (plus end-of-text where ``end``)."""
        ...


class LocalScorer:
    """A causal LM with one LoRA adapter per stage, scored in process."""

    def __init__(self, model, tokenizer, device: str = "cpu", batch_size: int = 256, switch_adapters: bool = True):
        import torch

        self.torch = torch
        self.model = model
        self.tokenizer = tokenizer
        self.device = device
        self.batch_size = batch_size
        self.switch_adapters = switch_adapters  # False while training one adapter
        self._prompts: dict[tuple[str, str], tuple] = {}

    @classmethod
    def load(cls, model_dir: str | Path, device: str = "cpu", threads: int | None = None, **kwargs) -> LocalScorer:
        """Load ``model_dir/base`` with the adapters ``model_dir/sg`` and ``model_dir/wyckoff``."""
        import torch
        from peft import PeftModel
        from transformers import AutoModelForCausalLM
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
        model = PeftModel.from_pretrained(base, model_dir / "sg", adapter_name="sg")
        model.load_adapter(model_dir / "wyckoff", adapter_name="wyckoff")
        return cls(model.to(device).eval(), tokenizer, device, **kwargs)

    def _ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False).input_ids

    def score(self, stage: str, prompt: str, continuations: list[str], end: list[bool]) -> list[float]:
        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r}")
        torch = self.torch
        if self.switch_adapters:
            self.model.set_adapter(stage)
        prompt_ids = self._ids(prompt)
        conts = []
        for text, stop in zip(continuations, end):
            full = self._ids(prompt + text)
            ids = full[len(prompt_ids) :] if full[: len(prompt_ids)] == prompt_ids else self._ids(text)
            conts.append(ids + ([self.tokenizer.eos_token_id] if stop else []))
        scores: list[float] = []
        with torch.inference_mode():
            cache, first_logp = self._prompt_state(stage, prompt, prompt_ids)
            for start in range(0, len(conts), self.batch_size):
                scores.extend(
                    self._score_batch(cache, first_logp, len(prompt_ids), conts[start : start + self.batch_size])
                )
        return scores

    def _prompt_state(self, stage: str, prompt: str, prompt_ids: list[int]):
        """KV cache and next-token log-probabilities after the prompt, memoised (beam steps reuse them)."""
        key = (stage, prompt)
        if key not in self._prompts:
            out = self.model(self.torch.tensor([prompt_ids], device=self.device), use_cache=True)
            if len(self._prompts) >= 8:
                self._prompts.pop(next(iter(self._prompts)))
            self._prompts[key] = (out.past_key_values, self.torch.log_softmax(out.logits[0, -1].float(), dim=-1))
        return self._prompts[key]

    def _score_batch(self, prompt_cache, first_logp, prompt_len: int, conts: list[list[int]]) -> list[float]:
        import copy

        torch = self.torch
        width = max(len(c) for c in conts)
        pad = self.tokenizer.pad_token_id or 0
        ids = torch.full((len(conts), width), pad, dtype=torch.long, device=self.device)
        mask = torch.zeros((len(conts), prompt_len + width), dtype=torch.long, device=self.device)
        mask[:, :prompt_len] = 1
        for i, c in enumerate(conts):
            ids[i, : len(c)] = torch.tensor(c)
            mask[i, prompt_len : prompt_len + len(c)] = 1
        cache = copy.deepcopy(prompt_cache)
        cache.batch_repeat_interleave(len(conts))
        positions = torch.arange(prompt_len, prompt_len + width, device=self.device).expand(len(conts), -1)
        logits = self.model(input_ids=ids, attention_mask=mask, past_key_values=cache, position_ids=positions).logits
        logp = torch.log_softmax(logits.float(), dim=-1)
        results = []
        for i, c in enumerate(conts):
            total = first_logp[c[0]].item()
            if len(c) > 1:
                steps = torch.tensor(c[1:], device=self.device)
                total += logp[i, : len(c) - 1].gather(1, steps[:, None]).sum().item()
            results.append(total)
        return results


class EndpointScorer:
    """Scores through an OpenAI-compatible ``/v1/completions`` endpoint (vLLM, multi-LoRA)."""

    def __init__(
        self,
        url: str,
        models: dict[str, str] | None = None,
        end_text: str = "</s>",
        api_key: str | None = None,
        timeout: float = 60.0,
    ):
        self.url = url.rstrip("/")
        if not self.url.endswith("/v1"):
            self.url += "/v1"
        self.models = models or {"sg": "sg", "wyckoff": "wyckoff"}
        self.end_text = end_text
        self.api_key = api_key or os.environ.get("XTALAGENT_API_KEY") or os.environ.get("OPENAI_API_KEY") or "EMPTY"
        self.timeout = timeout

    def _post(self, payload: dict) -> dict:
        request = urllib.request.Request(
            f"{self.url}/completions",
            data=json.dumps(payload).encode(),
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {self.api_key}"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raise XtalAgentError(f"endpoint {self.url} answered {exc.code}: {exc.read()[:300]!r}") from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            raise XtalAgentError(f"endpoint {self.url} not reachable: {exc}") from None

    def score(self, stage: str, prompt: str, continuations: list[str], end: list[bool]) -> list[float]:
        texts = [prompt + c + (self.end_text if stop else "") for c, stop in zip(continuations, end)]
        reply = self._post(
            {
                "model": self.models[stage],
                "prompt": texts,
                "max_tokens": 1,
                "temperature": 0.0,
                "echo": True,
                "logprobs": 0,
            }
        )
        choices = sorted(reply.get("choices", []), key=lambda c: c.get("index", 0))
        if len(choices) != len(texts):
            raise XtalAgentError(f"endpoint {self.url} returned {len(choices)} choices for {len(texts)} prompts")
        scores = []
        for choice in choices:
            logprobs = choice.get("logprobs") or {}
            offsets, values = logprobs.get("text_offset"), logprobs.get("token_logprobs")
            if offsets is None or values is None:
                raise XtalAgentError(
                    f"endpoint {self.url} returned no prompt log-probabilities (needs echo + logprobs)"
                )
            # the echoed prompt is followed by one generated token, which is not part of the answer
            n_prompt_tokens = len(values) - 1
            scores.append(
                sum(
                    v
                    for off, v in zip(offsets[:n_prompt_tokens], values[:n_prompt_tokens])
                    if off >= len(prompt) and v is not None
                )
            )
        return scores
