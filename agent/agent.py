"""The agent loop: a chat model with the stage tools, run turn by turn, with a saved transcript.

Works with any langchain-core chat model that supports ``bind_tools`` — the offline model
(:mod:`xtalagent.agent.offline_model`) or an OpenAI-compatible endpoint (vLLM). Every number in a
final answer must come from a tool result or the user's words; numbers that do not are flagged in
the answer itself (:func:`unsupported_numbers`), whichever model wrote it. The text of xtalagent's
own checks that an answer quotes (the offline parser's refusal "space group 999 does not exist
(valid: 1-230)", under ``response_metadata[SYSTEM_TEXT]``) counts as a tool result.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage, messages_to_dict

from xtalagent import config
from xtalagent.agent.offline_model import SYSTEM_TEXT
from xtalagent.agent.session import DesignSession
from xtalagent.agent.tools import build_tools, run_tool_call
from xtalagent.io import write_json_atomic, write_text_atomic

SYSTEM_PROMPT = """You are xtalagent, a crystal-structure design assistant for materials scientists.
Use the tools to answer: propose_constraints (starts a round for a request), generate_structures,
prerelax_structures, screen_structures, lookup_known_materials, explain_candidate. For a new design
request call them in that order. For "more" candidates call generate_structures, then prerelax and
screen again. Every number you state must come from a tool result; name the tool it came from and
which potential produced each energy. Never invent energies or band gaps: no tool predicts band
gaps, they are only a generation target. If the request lacks a composition, ask for it."""

_NUMBER = re.compile(r"(?<![\w.])[-−]?\d+(?:\.\d+)?(?![\w])")

Event = Callable[[str, dict[str, Any]], None]  # ("tool_call" | "tool_result" | "answer", data)


def numbers_in(text: str) -> set[float]:
    return {float(m.group().replace("−", "-")) for m in _NUMBER.finditer(text)}


def unsupported_numbers(answer: str, sources: Iterable[str]) -> list[str]:
    """Numbers in ``answer`` found in none of ``sources`` (tool results, user messages)."""
    known: set[float] = set()
    for text in sources:
        known |= numbers_in(text)
        known |= {abs(x) for x in numbers_in(text)}
    bad = []
    for m in _NUMBER.finditer(answer):
        x = float(m.group().replace("−", "-"))
        if not any(abs(x - k) <= 1e-9 + 1e-6 * abs(k) for k in known):
            bad.append(m.group())
    return bad


class DesignAgent:
    def __init__(
        self,
        model,
        session: DesignSession,
        max_tool_rounds: int = config.AGENT_MAX_TOOL_ROUNDS,
        on_event: Event | None = None,
    ) -> None:
        self.session = session
        self.tools = {t.name: t for t in build_tools(session)}
        self.model = model.bind_tools(list(self.tools.values()))
        self.max_tool_rounds = max_tool_rounds
        self.on_event = on_event or (lambda _kind, _data: None)
        self.messages: list[BaseMessage] = [SystemMessage(content=SYSTEM_PROMPT)]

    def ask(self, text: str) -> str:
        """One user turn: run the model and its tool calls until it answers; returns the answer."""
        self.messages.append(HumanMessage(content=text))
        self.session.prompt = text  # a round opened in this turn quotes the user's words, as ``design`` does
        turn_start = len(self.messages) - 1
        for _ in range(self.max_tool_rounds + 1):
            try:
                reply = self.model.invoke(self.messages)
            except Exception as exc:  # the endpoint went away, or returned garbage
                answer = f"The chat model failed: {type(exc).__name__}: {exc}"
                self.messages.append(AIMessage(content=answer))
                self.on_event("answer", {"text": answer})
                return answer
            self.messages.append(reply)
            calls = list(getattr(reply, "tool_calls", None) or [])
            calls += [{"name": c.get("name"), "args": c.get("args"), "id": c.get("id"), "error": c.get("error")}
                      for c in getattr(reply, "invalid_tool_calls", None) or []]  # fmt: skip
            if not calls:
                return self._answer(str(reply.content), turn_start)
            for call in calls:
                self.on_event("tool_call", {"name": call.get("name"), "args": call.get("args")})
                if call.get("error"):
                    msg = ToolMessage(
                        content=json.dumps({"error": f"malformed tool call: {call['error']}"}),
                        tool_call_id=call.get("id") or "", name=call.get("name") or "", status="error",
                    )  # fmt: skip
                else:
                    msg = run_tool_call(self.tools, call)
                self.messages.append(msg)
                self.on_event("tool_result", {"name": msg.name, "content": msg.content, "status": msg.status})
        answer = f"I stopped after {self.max_tool_rounds} tool rounds without a final answer."
        self.messages.append(AIMessage(content=answer))
        self.on_event("answer", {"text": answer})
        return answer

    def _answer(self, text: str, turn_start: int) -> str:
        sources = [str(m.content) for m in self.messages if isinstance(m, ToolMessage | HumanMessage)]
        checks = getattr(self.messages[-1], "response_metadata", {}).get(SYSTEM_TEXT) or []
        sources += [str(t) for t in checks]
        bad = unsupported_numbers(text, sources)
        if bad:
            text += (
                f"\n[xtalagent check: the number(s) {', '.join(bad)} in this answer come from no tool result or "
                "user message; treat them as unverified.]"
            )
            self.messages[-1] = AIMessage(content=text)
        self.on_event("answer", {"text": text})
        return text

    # --- transcript ---------------------------------------------------------------------------------
    def save_transcript(self, path: str | Path | None = None) -> Path:
        """JSON (langchain message dicts) and a readable Markdown copy, inside the session folder."""
        path = Path(path) if path else self.session.out / "transcript.json"
        write_json_atomic(path, {"messages": messages_to_dict(self.messages)})
        lines = []
        for m in self.messages[1:]:
            if isinstance(m, HumanMessage):
                lines.append(f"**you:** {m.content}\n")
            elif isinstance(m, AIMessage) and m.tool_calls:
                for c in m.tool_calls:
                    lines.append(f"`tool call` {c['name']}({json.dumps(c['args'])})\n")
            elif isinstance(m, ToolMessage):
                lines.append(f"`tool result` {m.name}: {m.content}\n")
            elif isinstance(m, AIMessage):
                lines.append(f"**xtalagent:** {m.content}\n")
        write_text_atomic(path.with_suffix(".md"), "\n".join(lines))
        return path
