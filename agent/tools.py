"""The pipeline stages as langchain-core tools with pydantic argument schemas.

Safety by construction: no tool takes a path, runs a shell command or evaluates code; everything a
tool writes goes into the session folder. Arguments from a model are validated against the schema
before anything runs, and a bad call or a failing stage comes back to the model as an error
message (``run_tool_call``), never as an exception out of the agent.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, cast

from langchain_core.messages import ToolMessage
from langchain_core.tools import StructuredTool
from pydantic import BaseModel, Field, ValidationError

from xtalagent.agent.request import DesignRequest
from xtalagent.agent.session import DesignSession
from xtalagent.errors import XtalAgentError, validation_message


class ProposeConstraintsArgs(BaseModel):
    request: DesignRequest = Field(description="the design request: composition, targets, symmetry wishes, size")
    top_k: int | None = Field(default=None, ge=1, le=20, description="constraint candidates to propose")


class GenerateArgs(BaseModel):
    n: int | None = Field(default=None, ge=1, le=200, description="structures to add (default: the request's count)")


class NoArgs(BaseModel):
    pass


class LookupArgs(BaseModel):
    formula: str | None = Field(default=None, description="a formula such as TiO2 (any number of formula units)")
    elements: list[str] | None = Field(default=None, description="element symbols, e.g. ['Ti', 'O']")
    limit: int = Field(default=10, ge=1, le=50)


class ExplainArgs(BaseModel):
    candidate: str = Field(description="rank in the current round ('3') or structure id ('S007')")


TOOL_DESCRIPTIONS = {
    "propose_constraints": "Start a new design round: propose space groups and Wyckoff sites for a request "
    "with the fine-tuned constraint model (every answer valid and consistent with the composition).",
    "generate_structures": "Generate n crystal structures from the current round's constraints (checked "
    "symmetry); calling it again adds more.",
    "prerelax_structures": "LEGO descriptor pre-relaxation of the round's new structures (symmetry kept).",
    "screen_structures": "Relax the round's structures with the ML potential, compute formation energy and "
    "energy above hull, check validity/uniqueness/novelty, rank, and write the report.",
    "lookup_known_materials": "Known crystals (Materials Project reference set) of a formula or element set, "
    "with DFT formation energy, energy above hull and band gap.",
    "explain_candidate": "Details of one screened candidate: energies, the hull phases it would decompose "
    "into, symmetry kept or not, checks.",
}


def build_tools(session: DesignSession) -> list[StructuredTool]:
    def propose_constraints(request: DesignRequest, top_k: int | None = None) -> dict[str, Any]:
        return session.propose_constraints(request, top_k)

    def generate_structures(n: int | None = None) -> dict[str, Any]:
        return session.generate_structures(n)

    def lookup_known_materials(formula: str | None = None, elements: list[str] | None = None, limit: int = 10):
        return session.lookup_known_materials(formula, elements, limit)

    def explain_candidate(candidate: str) -> dict[str, Any]:
        return session.explain_candidate(candidate)

    specs: list[tuple[Any, ...]] = [  # (function, argument schema[, tool name])
        (propose_constraints, ProposeConstraintsArgs),
        (generate_structures, GenerateArgs),
        (lambda: session.prerelax_structures(), NoArgs, "prerelax_structures"),
        (lambda: session.screen_structures(), NoArgs, "screen_structures"),
        (lookup_known_materials, LookupArgs),
        (explain_candidate, ExplainArgs),
    ]
    tools = []
    for spec in specs:
        func, schema = spec[0], spec[1]
        name = spec[2] if len(spec) > 2 else func.__name__
        tools.append(
            StructuredTool.from_function(func=func, name=name, description=TOOL_DESCRIPTIONS[name], args_schema=schema)
        )
    return tools


def run_tool_call(tools: dict[str, StructuredTool], call: dict[str, Any]) -> ToolMessage:
    """Validate and run one tool call; every failure becomes an error ToolMessage for the model."""
    name, args, call_id = call.get("name"), call.get("args") or {}, call.get("id") or ""

    def error(text: str) -> ToolMessage:
        return ToolMessage(content=json.dumps({"error": text}), tool_call_id=call_id, name=name or "", status="error")

    tool = tools.get(name or "")
    if tool is None:
        return error(f"unknown tool {name!r}; available: {', '.join(tools)}")
    if not isinstance(args, dict):
        return error("arguments must be a JSON object")
    try:
        parsed = cast(type[BaseModel], tool.args_schema).model_validate(args)  # build_tools gives pydantic schemas
    except ValidationError as exc:
        return error(f"invalid arguments: {validation_message(exc)}")
    except XtalAgentError as exc:
        return error(f"invalid arguments: {exc}")
    try:
        result = cast(Callable[..., Any], tool.func)(**{k: getattr(parsed, k) for k in type(parsed).model_fields})
    except (XtalAgentError, ValidationError) as exc:
        text = validation_message(exc) if isinstance(exc, ValidationError) else str(exc)
        return error(text)
    except Exception as exc:  # a stage crashed: tell the model, keep the conversation alive
        return error(f"{name} failed: {type(exc).__name__}: {exc}")
    return ToolMessage(content=json.dumps(result, default=str), tool_call_id=call_id, name=name)
