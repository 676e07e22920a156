"""The offline chat model: the deterministic parser behind langchain-core's chat-model interface.

It plays the part a tool-calling LLM plays (``bind_tools``, then ``invoke`` returns an AIMessage
with tool calls or a final answer), so the agent loop, the transcript and the tests are the same
for both. It is stateless: each reply is derived from the message history alone — the previous
request is the last ``propose_constraints`` call, the stages already run this turn are the tool
calls after the last user message. Its answers quote only numbers found in tool results, or in
xtalagent's own checks of the request (a refusal such as "space group 999 does not exist (valid:
1-230)"): those texts travel with the answer in ``response_metadata[SYSTEM_TEXT]`` so the agent's
number check treats them like a tool result.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import ValidationError

from xtalagent.agent.parser import parse_request
from xtalagent.agent.request import DesignRequest

DESIGN_STEPS = ("propose_constraints", "generate_structures", "prerelax_structures", "screen_structures")
MORE_STEPS = DESIGN_STEPS[1:]

_EXPLAIN = re.compile(
    r"\b(?:why|explain|tell me (?:more )?about|details?|what about|how about|describe)\b.*?"
    r"(?:\b(?:candidate|rank|number|no\.?)\s*#?\s*(\d+)\b|#(\d+)\b|\b(S\d{3})\b)",
    re.IGNORECASE,
)
SYSTEM_TEXT = "xtalagent_system_text"  # response_metadata key: texts of xtalagent's own checks quoted in the answer

_MORE = re.compile(r"\b(?:more|another|again|additional|extra)\b", re.IGNORECASE)
_LOOKUP = re.compile(r"\b(?:known|already exist\w*|look ?up|existing|reported|what exists)\b", re.IGNORECASE)


class OfflineDesignModel(BaseChatModel):
    """Deterministic request understanding + a fixed plan over the stage tools."""

    tool_names: tuple[str, ...] = ()

    @property
    def _llm_type(self) -> str:
        return "xtalagent-offline"

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> OfflineDesignModel:
        names = []
        for tool in tools:
            name = getattr(tool, "name", None) or (
                tool.get("function", {}).get("name") if isinstance(tool, dict) else None
            )
            names.append(str(name))
        return self.model_copy(update={"tool_names": tuple(names)})

    def _generate(self, messages: list[BaseMessage], stop=None, run_manager=None, **kwargs: Any) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=self.respond(messages))])

    # --- the policy -----------------------------------------------------------------------------
    def respond(self, messages: Sequence[BaseMessage]) -> AIMessage:
        last = max((i for i, m in enumerate(messages) if isinstance(m, HumanMessage)), default=None)
        if last is None:
            return AIMessage(content="What would you like to design? Give a composition and, if you like, targets.")
        text = str(messages[last].content)
        turn = list(messages[last + 1 :])
        results = [(m.name, m) for m in turn if isinstance(m, ToolMessage)]
        for name, msg in results:
            if msg.status == "error":
                return AIMessage(content=f"The {name} step failed: {_payload(msg).get('error', msg.content)}")
        previous = previous_request(messages[:last])
        match = _EXPLAIN.search(text)
        if match:
            which = next(g for g in match.groups() if g)
            return self._plan(["explain_candidate"], [{"candidate": which}], results, text, previous)
        if _LOOKUP.search(text):
            return self._lookup(text, previous, results)
        parsed = parse_request(text, previous)
        checks = [t for t in (parsed.error, *parsed.questions, *parsed.not_understood) if t]
        if parsed.error:
            return _system_answer(f"I cannot run this request: {parsed.error}", checks)
        if parsed.questions or parsed.request is None:
            note = _not_understood(parsed.not_understood)
            return _system_answer(" ".join(parsed.questions) + note, checks)
        request = parsed.request
        if previous is not None and _same_but_count(request, previous):
            if not _MORE.search(text):  # nothing in the words changes the request: do not act on it
                return AIMessage(
                    content="That does not change the current request, so I ran nothing."
                    + _not_understood(parsed.not_understood)
                    + " Say what to change (composition, targets, symmetry, size) or ask for more candidates."
                )
            steps = list(MORE_STEPS)
            args: list[dict[str, Any]] = [{"n": request.n_candidates}, {}, {}]
        else:
            steps = list(DESIGN_STEPS)
            args = [{"request": request.model_dump(exclude_defaults=True)}, {"n": request.n_candidates}, {}, {}]
        return self._plan(steps, args, results, text, previous, parsed.not_understood)

    def _plan(self, steps, args, results, text, previous, not_understood=()) -> AIMessage:
        done = len(results)
        if done < len(steps):
            name = steps[done]
            if self.tool_names and name not in self.tool_names:
                return AIMessage(content=f"I would need the {name} tool, which is not available here.")
            call = {"name": name, "args": args[done], "id": f"call_{name}_{done}", "type": "tool_call"}
            return AIMessage(content="", tool_calls=[call])
        payloads = {name: _payload(msg) for name, msg in results}
        if "explain_candidate" in payloads:
            return AIMessage(content=explain_answer(payloads["explain_candidate"]))
        return AIMessage(content=design_answer(payloads) + _not_understood(list(not_understood)))

    def _lookup(self, text: str, previous: DesignRequest | None, results) -> AIMessage:
        parsed = parse_request(text, None)
        req = parsed.request if parsed.request is not None and parsed.request.has_composition() else previous
        if req is None:
            return AIMessage(content="Which formula or elements should I look up?")
        args: dict[str, Any]
        if req.formula or req.composition:
            args = {"formula": req.formula or req.composition}
        else:
            args = {"elements": list(req.elements or [])}
        if not results:
            return self._plan(["lookup_known_materials"], [args], results, text, previous)
        return AIMessage(content=lookup_answer(_payload(results[0][1])))


def _system_answer(content: str, checks: list[str]) -> AIMessage:
    """An answer that quotes the parser's own words (its refusal, questions, notes)."""
    return AIMessage(content=content, response_metadata={SYSTEM_TEXT: checks})


def previous_request(messages: Sequence[BaseMessage]) -> DesignRequest | None:
    """The request of the last ``propose_constraints`` call in the history (None if there is none)."""
    for m in reversed(messages):
        if isinstance(m, AIMessage):
            for call in reversed(m.tool_calls or []):
                if call["name"] == "propose_constraints":
                    try:
                        return DesignRequest.model_validate(call["args"].get("request", {}))
                    except (ValidationError, ValueError):
                        return None
    return None


def _same_but_count(a: DesignRequest, b: DesignRequest) -> bool:
    return a.model_dump(exclude={"n_candidates"}) == b.model_dump(exclude={"n_candidates"})


def _payload(msg: ToolMessage) -> dict[str, Any]:
    try:
        data = json.loads(msg.content)  # type: ignore[arg-type]  # a list content is caught below
    except (TypeError, json.JSONDecodeError):
        return {"error": str(msg.content)}
    return data if isinstance(data, dict) else {"result": data}


def _not_understood(items: list[str]) -> str:
    return f" (Not understood: {'; '.join(items)}.)" if items else ""


# --- answers, built only from tool results ------------------------------------------------------
def design_answer(p: dict[str, dict[str, Any]]) -> str:
    lines = []
    c = p.get("propose_constraints")
    if c:
        shown = ", ".join(f"{x['id']} {x['formula']} {x['symbol']} (#{x['spacegroup']})" for x in c["constraints"])
        lines.append(f"Constraints [propose_constraints]: {shown}.")
    g = p.get("generate_structures")
    if g:
        lines.append(
            f"Structures [generate_structures]: {g['passed_checks']} of {g['generated']} new ones passed the "
            f"symmetry checks ({g['candidates_in_round']} candidates in this round"
            + (
                f", {g['structures_per_candidate']} structures generated per candidate of which screening "
                "relaxes the most promising by single-point energy"
                if g.get("structures_per_candidate", 1) > 1
                else ""
            )
            + f"; {g['sampler']})."
        )
    pr = p.get("prerelax_structures")
    if pr:
        if pr.get("prerelaxed"):
            lines.append(
                f"Pre-relaxation [prerelax_structures]: {pr['reached_reference_environment']} of {pr['prerelaxed']} "
                f"reached the reference environment."
            )
        else:
            lines.append(f"Pre-relaxation [prerelax_structures]: {pr.get('note')}.")
    s = p.get("screen_structures")
    if s:
        lines.append(
            f"Screening [screen_structures, energies by {s['energies_by']}]: {s['relaxed']} relaxed, {s['stable']} "
            f"within {s['stable_threshold_eV_per_atom']} eV/atom of the hull. Best:"
        )
        for b in s["best"]:
            lines.append(
                f"  {b['rank']}. {b['id']} {b['formula']}, "
                f"group {b['spacegroup_requested']} → {b['spacegroup_final']}: "
                f"E_form {b['e_form_eV_per_atom']} eV/atom, E_hull {b['e_hull_eV_per_atom']} eV/atom"
                + (" (stable)" if b.get("stable") else "")
            )
        lines.append(f"Full report: {s['report']}")
    return "\n".join(lines)


def explain_answer(e: dict[str, Any]) -> str:
    head = f"Candidate {e['rank']} ({e['id']}, {e['formula']}) [explain_candidate]: "
    if e.get("status") == "failed":
        return head + f"its relaxation failed: {e.get('failure')}."
    parts = [
        f"E_form {e['e_form_eV_per_atom']} eV/atom and E_hull {e['e_hull_eV_per_atom']} eV/atom by {e['energies_by']}"
    ]
    if e.get("verdict"):
        parts.append(e["verdict"])
    if e.get("hull_energy_eV_per_atom") is not None:
        parts.append(f"the reference hull lies at {e['hull_energy_eV_per_atom']} eV/atom for this composition")
    if e.get("decomposes_to"):
        phases = " + ".join(f"{d['fraction']} {d['phase']}" for d in e["decomposes_to"])
        parts.append(f"it would decompose into {phases}")
    parts.append(
        f"space group {e['spacegroup_requested']} requested, {e['spacegroup_final']} after relaxation"
        + (" (kept)" if e.get("symmetry_kept") else " (changed)")
    )
    if e.get("charge_balanced") is False:
        parts.append("its composition is not charge balanced (SMACT)")
    return head + "; ".join(parts) + "."


def lookup_answer(r: dict[str, Any]) -> str:
    table = r.get("hull_table") or {}
    extra = ""
    if table.get("n_found"):
        shown = ", ".join(f"{e['formula']} {e['e_form_eV_per_atom']}" for e in table["entries"])
        extra = f"\nThe {table['source']} lists {table['n_found']} composition(s) (eV/atom): {shown}."
    if not r.get("n_found"):
        return (
            f"No known crystal structure with {r.get('query')} in the {r.get('source')} [lookup_known_materials]."
            + extra
        )
    rows = [
        f"  {k['formula']} {k['spacegroup_symbol']} (#{k['spacegroup']}, {k['id']}): E_form "
        f"{k['formation_energy_eV_per_atom']} eV/atom, E_hull {k['e_above_hull_eV_per_atom']} eV/atom"
        + (f", band gap {k['band_gap_eV']} eV" if k.get("band_gap_eV") is not None else "")
        for k in r["known"]
    ]
    head = f"{r['n_found']} known crystal(s) with {r['query']} [lookup_known_materials, {r['source']}]:\n"
    return head + "\n".join(rows) + extra
