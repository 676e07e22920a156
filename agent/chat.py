"""``xtalagent chat``: a terminal conversation with the design agent (rich)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from langchain_core.messages import HumanMessage, SystemMessage, messages_from_dict
from rich.console import Console
from rich.panel import Panel
from rich.text import Text

from xtalagent.agent.agent import DesignAgent
from xtalagent.agent.offline_model import OfflineDesignModel
from xtalagent.agent.pipeline import DesignSettings
from xtalagent.agent.session import DesignSession
from xtalagent.agent.understanding import endpoint_chat_model
from xtalagent.errors import InputError
from xtalagent.io import check_output_dir

EXIT_WORDS = {"exit", "quit", "bye", ":q"}
WELCOME = (
    "Describe the crystal you want, e.g. 'a stable Ti-O compound with a band gap near 3 eV'. Then refine it "
    "('now only cubic', 'give me 20 more', 'why is candidate 3 unstable?'). 'exit' ends; the transcript and all "
    "outputs are saved in the output folder."
)


def make_agent(
    output: Path,
    settings: DesignSettings | None = None,
    endpoint: str | None = None,
    model: str | None = None,
    on_event: Callable[[str, dict[str, Any]], None] | None = None,
) -> DesignAgent:
    """The design agent on a session in ``output``; a folder that cannot be written is refused first."""
    check_output_dir(Path(output), "session folder")
    chat_model = endpoint_chat_model(endpoint, model) if endpoint else OfflineDesignModel()
    events = on_event or (lambda _kind, _data: None)
    session = DesignSession(
        output, settings, on_progress=lambda stage, done, total: events("progress", {"stage": stage, "done": done,
                                                                                    "total": total})
    )  # fmt: skip
    return DesignAgent(chat_model, session, on_event=on_event)


def load_transcript(agent: DesignAgent) -> int:
    """Continue the conversation saved in the session folder (``transcript.json``, as ``save_transcript``
    writes it); returns the user turns restored (0 for a new folder). The system prompt stays the current one."""
    path = agent.session.out / "transcript.json"
    if not path.is_file():
        return 0
    try:
        messages = messages_from_dict(json.loads(path.read_text())["messages"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{path}: unreadable transcript ({type(exc).__name__}: {exc})") from None
    agent.messages = agent.messages[:1] + [m for m in messages if not isinstance(m, SystemMessage)]
    return sum(isinstance(m, HumanMessage) for m in messages)


def console_events(console: Console) -> Callable[[str, dict[str, Any]], None]:
    def show(kind: str, data: dict[str, Any]) -> None:
        if kind == "tool_call":
            console.print(Text(f"→ {data['name']} {json.dumps(data.get('args') or {})}", style="cyan"))
        elif kind == "progress":
            console.print(Text(f"  {data['stage']} {data['done']}/{data['total']}", style="dim"))
        elif kind == "tool_result":
            style = "red" if data.get("status") == "error" else "dim"
            text = str(data.get("content", ""))
            console.print(Text(f"← {data['name']}: {text[:300]}{'…' if len(text) > 300 else ''}", style=style))

    return show


def chat_loop(agent: DesignAgent, console: Console, lines: Iterable[str] | None = None) -> int:
    """Read turns from ``lines`` (scripted) or the terminal; returns the number of turns."""
    console.print(Panel(Text(WELCOME), title="xtalagent chat"))
    source = iter(lines) if lines is not None else None
    turns = 0
    while True:
        try:
            text = next(source) if source is not None else console.input("[bold green]you>[/] ")
        except (StopIteration, EOFError, KeyboardInterrupt):
            break
        text = text.strip()
        if not text:
            continue
        if text.lower() in EXIT_WORDS:
            break
        if source is not None:
            console.print(Text(f"you> {text}", style="bold green"))
        with console.status("working…"):
            answer = agent.ask(text)
        console.print(Panel(Text(answer, overflow="fold"), title="xtalagent", border_style="blue"))
        agent.save_transcript()
        turns += 1
    path = agent.save_transcript()
    console.print(f"transcript: {path} and {path.with_suffix('.md')}")
    return turns
