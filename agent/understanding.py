"""Understanding a request: the offline parser, or any chat model behind an OpenAI-compatible API.

Both give a :class:`~xtalagent.agent.request.ParseResult`, so ``xtalagent design`` and the agent
do not care which one read the words.
"""

from __future__ import annotations

import os

from pydantic import ValidationError

from xtalagent import config
from xtalagent.agent.parser import parse_request
from xtalagent.agent.request import DesignRequest, ParseResult
from xtalagent.errors import InputError, validation_message
from xtalagent.optional import require

EXTRACTION_PROMPT = (
    "Extract the crystal design request from the user's words into the DesignRequest schema. "
    "Use eV for band gaps and eV/atom for formation energies (convert meV). A formula typed by a "
    "person is a ratio ('composition'); use 'formula' only when the user says it is the full cell "
    "content. Use 'elements' when only elements are named. Leave out anything the user did not ask for."
)


def endpoint_chat_model(endpoint: str, model: str | None = None, api_key_env: str = config.AGENT_API_KEY_ENV):
    """A langchain chat model for an OpenAI-compatible server (vLLM, or any hosted API)."""
    chat_openai = require("langchain_openai", extra="endpoint", purpose="--endpoint").ChatOpenAI
    key = os.environ.get(api_key_env) or "EMPTY"  # vLLM accepts any key unless started with --api-key
    return chat_openai(
        base_url=endpoint.rstrip("/"),
        model=model or config.AGENT_ENDPOINT_MODEL,
        api_key=key,
        temperature=0.0,
        max_retries=1,
        timeout=120,
    )


def understand(prompt: str, chat_model=None, previous: DesignRequest | None = None) -> ParseResult:
    """Read a prompt with the offline parser (no model) or a chat model's structured output."""
    if chat_model is None:
        return parse_request(prompt, previous)
    if not prompt or not prompt.strip():
        return ParseResult(error="the request is empty")
    extractor = chat_model.with_structured_output(DesignRequest, method="function_calling")
    messages = [("system", EXTRACTION_PROMPT)]
    if previous is not None:
        messages.append(("system", f"The previous request was: {previous.model_dump_json(exclude_defaults=True)}"))
    messages.append(("human", prompt))
    try:
        request = extractor.invoke(messages)
    except ValidationError as exc:
        return ParseResult(error=f"the model's reading of the request is invalid: {validation_message(exc)}")
    except InputError as exc:
        return ParseResult(error=str(exc))
    except Exception as exc:  # network or server errors: a message, not a traceback
        return ParseResult(error=f"the chat model at the endpoint failed: {type(exc).__name__}: {exc}")
    if request is None:
        return ParseResult(error="the chat model returned no request")
    questions = [] if request.has_composition() else ["Which elements or formula should the crystal contain?"]
    return ParseResult(request=request, questions=questions)
