"""``xtalagent web``: the agent of ``xtalagent chat`` in a local browser page (Gradio + vendored 3Dmol.js).

The page drives the very agent ``chat`` builds (:func:`~xtalagent.agent.chat.make_agent`: same tools, same
session folder, same transcript), so it adds no pipeline of its own. Its parts:

* the chat (``gr.Chatbot``): each tool call is a collapsible step with its arguments, its result and, while
  it runs, its progress (the agent's ``on_event`` callbacks, streamed through a queue);
* the results of a round, read from the round folder the tools wrote: ``summary.csv`` as a sortable table,
  an interactive 3D view of a candidate beside a known phase (3Dmol.js, shipped in ``web_static/``),
  ``ehull.png``, and downloads of every CIF, ``summary.csv`` and ``report.md``.

Nothing is fetched from the internet: Gradio ships its own JavaScript and CSS, the theme uses system fonts,
analytics are off. The server binds 127.0.0.1 unless ``host`` says otherwise. A CIF uploaded for "relax and
screen this one" is checked (size, pymatgen parse, ordered, atom count, no overlapping atoms) before it is
copied into the session folder (``uploads/upload_NN/``) and screened by the screening stage
(:func:`xtalagent.tools.screen.screen`, as ``xtalagent screen`` runs it); a bad file gets one error line in
the chat. Gradio's own upload and cache files go to ``<session>/.web/``, so everything stays in the folder.
"""

from __future__ import annotations

import json
import logging
import math
import os
import queue
import shutil
import socket
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

from xtalagent.agent.chat import WELCOME, load_transcript, make_agent
from xtalagent.agent.pipeline import DesignSettings
from xtalagent.errors import InputError

logger = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "web_static"
#: An uploaded CIF larger than this is refused (bytes).
UPLOAD_MAX_BYTES: int = 200_000
#: An uploaded structure with more sites than this is refused (relaxation cost).
UPLOAD_MAX_SITES: int = 100
#: Atoms closer than this (Å) make an uploaded structure unphysical.
UPLOAD_MIN_DISTANCE: float = 0.5
#: Characters of a tool result shown in its chat step (the whole result is in transcript.json).
SHOWN_RESULT_CHARS: int = 3000

TABLE_COLUMNS = ["rank", "kind", "id", "formula", "group asked → final", "E_form eV/at", "E_hull eV/at",
                 "gap eV", "gap ±", "wishes met", "stable", "source"]  # fmt: skip

DRAW_JS = """
(payload) => {
  const data = JSON.parse(payload || "{}");
  const draw = (id, item, tries) => {
    const el = document.getElementById(id);
    if (!el || !window.$3Dmol) {
      if ((tries || 0) < 50) setTimeout(() => draw(id, item, (tries || 0) + 1), 100);
      return;
    }
    el.innerHTML = "";
    const caption = document.getElementById(id + "-caption");
    if (caption) caption.textContent = item ? item.label : "nothing to show";
    if (!item) return;
    const viewer = $3Dmol.createViewer(el, {backgroundColor: "white", antialias: true,
                                            preserveDrawingBuffer: true});
    const model = viewer.addModel(item.cif, "cif", {doAssembly: true, normalizeAssembly: true,
                                                    duplicateAssemblyAtoms: true});
    viewer.setStyle({}, {sphere: {scale: 0.3, colorscheme: "Jmol"}, stick: {radius: 0.12, colorscheme: "Jmol"}});
    viewer.addUnitCell(model, {box: {color: "#333333"}, alabel: "a", blabel: "b", clabel: "c"});
    viewer.zoomTo();
    viewer.render();
    el.dataset.drawn = item.id;
  };
  draw("xa-view-candidate", data.candidate, 0);
  draw("xa-view-known", data.known, 0);
  return [];
}
"""

VIEWER_HTML = """
<div style="display:flex; gap:8px">
  <div style="flex:1; min-width:0">
    <div id="xa-view-candidate-caption" style="font-size:0.85em">candidate</div>
    <div id="xa-view-candidate" style="width:100%; height:320px; position:relative; border:1px solid #ddd"></div>
  </div>
  <div style="flex:1; min-width:0">
    <div id="xa-view-known-caption" style="font-size:0.85em">known phase</div>
    <div id="xa-view-known" style="width:100%; height:320px; position:relative; border:1px solid #ddd"></div>
  </div>
</div>
"""


# --- input checks ---------------------------------------------------------------------------------------
def check_uploaded_cif(path: str | Path) -> Any:
    """The structure in an uploaded CIF, or an :class:`InputError` that says in one line what is wrong."""
    import numpy as np
    from pymatgen.core import Structure

    path = Path(path)
    name = path.name
    if path.suffix.lower() != ".cif":
        raise InputError(f"{name}: upload a .cif file")
    size = path.stat().st_size
    if size == 0:
        raise InputError(f"{name}: the file is empty")
    if size > UPLOAD_MAX_BYTES:
        raise InputError(f"{name}: {size:,} bytes is too large (at most {UPLOAD_MAX_BYTES:,} bytes)")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InputError(f"{name}: not a text CIF (not UTF-8)") from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            structure = Structure.from_str(text, fmt="cif")
    except Exception as exc:
        first = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
        raise InputError(f"{name}: pymatgen cannot read this CIF ({first})") from None
    if not structure.is_ordered:
        raise InputError(f"{name}: partial occupancies (a disordered structure) cannot be relaxed")
    if not 1 <= len(structure) <= UPLOAD_MAX_SITES:
        raise InputError(f"{name}: {len(structure)} atoms in the cell (at most {UPLOAD_MAX_SITES})")
    if not math.isfinite(structure.volume) or structure.volume <= 1.0:
        raise InputError(f"{name}: the cell volume {structure.volume:.3g} Å^3 is not physical")
    if len(structure) > 1:
        dist = structure.distance_matrix + np.eye(len(structure)) * 1e9
        if float(dist.min()) < UPLOAD_MIN_DISTANCE:
            closest = float(dist.min())
            raise InputError(f"{name}: atoms {closest:.2f} Å apart overlap (at least {UPLOAD_MIN_DISTANCE} Å)")
    if any(el.Z > 94 for el in structure.composition.elements):
        raise InputError(f"{name}: elements beyond Pu (Z > 94) are outside the ML potential's range")
    return structure


# --- the agent behind the page --------------------------------------------------------------------------
def _fmt(x: Any, digits: int = 3) -> Any:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return None
    return round(float(x), digits) if isinstance(x, int | float) else x


def _json_block(data: Any) -> str:
    text = data if isinstance(data, str) else json.dumps(data, indent=1, default=str)
    try:
        text = json.dumps(json.loads(text), indent=1)
    except (TypeError, ValueError):
        pass
    if len(text) > SHOWN_RESULT_CHARS:
        text = text[:SHOWN_RESULT_CHARS] + "\n… (the whole result is in transcript.json)"
    return f"```json\n{text}\n```"


def _bar(done: int, total: int, width: int = 20) -> str:
    filled = round(width * done / total) if total else 0
    return f"`{'█' * filled}{'░' * (width - filled)}` {done}/{total}"


class WebChat:
    """One design agent on one session folder, shared by the page's tabs; one turn runs at a time."""

    def __init__(
        self,
        output: str | Path,
        settings: DesignSettings | None = None,
        endpoint: str | None = None,
        model: str | None = None,
    ) -> None:
        self._events: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue()
        self.agent = make_agent(Path(output), settings, endpoint, model, on_event=self._on_event)
        self.session = self.agent.session
        self.out = self.session.out.resolve()
        self.restored_turns = load_transcript(self.agent)
        self.lock = threading.Lock()
        self._last_result: Any = None

    def _on_event(self, kind: str, data: dict[str, Any]) -> None:
        self._events.put((kind, data))

    # --- the conversation as chat messages ----------------------------------------------------------
    def history(self) -> list[dict[str, Any]]:
        """The conversation so far (restored transcript included), tool calls as collapsed steps."""
        shown: list[dict[str, Any]] = []
        steps: dict[str, dict[str, Any]] = {}
        for m in self.agent.messages[1:]:
            if isinstance(m, HumanMessage):
                shown.append({"role": "user", "content": str(m.content)})
            elif isinstance(m, AIMessage) and m.tool_calls:
                for call in m.tool_calls:
                    step = self._step(call["name"], call.get("args") or {})
                    step["metadata"]["status"] = "done"
                    steps[call.get("id") or str(len(steps))] = step
                    shown.append(step)
            elif isinstance(m, ToolMessage):
                called = steps.get(m.tool_call_id)
                if called is not None:
                    self._finish(called, {"content": m.content, "status": m.status})
            elif isinstance(m, AIMessage):
                shown.append({"role": "assistant", "content": str(m.content)})
        return shown

    @staticmethod
    def _step(name: str, args: dict[str, Any]) -> dict[str, Any]:
        return {
            "role": "assistant",
            "content": f"**arguments**\n{_json_block(args)}",
            "metadata": {"title": f"tool {name}", "status": "pending"},
            "_args": f"**arguments**\n{_json_block(args)}",
        }

    @staticmethod
    def _finish(step: dict[str, Any], data: dict[str, Any], seconds: float | None = None) -> None:
        error = data.get("status") == "error"
        step["metadata"]["status"] = "done"
        step["metadata"].pop("log", None)
        if seconds is not None:
            step["metadata"]["duration"] = round(seconds, 1)
        if error:
            step["metadata"]["title"] = step["metadata"]["title"].replace("tool ", "failed ", 1)
        step["content"] = f"{step['_args']}\n\n**{'error' if error else 'result'}**\n{_json_block(data.get('content'))}"

    @staticmethod
    def _public(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{k: v for k, v in m.items() if not k.startswith("_")} for m in messages]

    # --- one user turn, streamed ------------------------------------------------------------------------
    def turn(self, message: dict[str, Any] | str | None) -> Iterator[list[dict[str, Any]]]:
        """Run one user turn; yields the conversation after every event (tool call, progress, result)."""
        if isinstance(message, dict):
            text, files = str(message.get("text") or "").strip(), list(message.get("files") or [])
        else:
            text, files = str(message or "").strip(), []
        if not text and not files:
            yield self._public(self.history())
            return
        with self.lock:
            before = self.history()
            if files:
                yield from self._upload_turn(text, files, before)
            else:
                live = [{"role": "user", "content": text}]
                yield from self._stream(lambda: self.agent.ask(text), before, live)
                self.agent.save_transcript()
            yield self._public(self.history())

    def _stream(
        self, work: Callable[[], Any], before: list[dict[str, Any]], live: list[dict[str, Any]]
    ) -> Iterator[list[dict[str, Any]]]:
        """Run ``work`` in a thread, turn its events into chat steps, and yield at least once a second."""
        self._events = queue.Queue()
        result: dict[str, Any] = {}

        def target() -> None:
            try:
                result["value"] = work()
            except Exception as exc:  # noqa: BLE001 - shown in the chat, the server keeps running
                logger.exception("turn failed")
                result["error"] = f"{type(exc).__name__}: {exc}"
            finally:
                self._events.put(("_done", {}))

        thread = threading.Thread(target=target, daemon=True)
        thread.start()
        started: dict[int, float] = {}
        yield self._public(before + live)
        while True:
            try:
                kind, data = self._events.get(timeout=1.0)
            except queue.Empty:
                kind, data = "", {}
            if kind == "_done":
                break
            pending = next((s for s in reversed(live) if s.get("metadata", {}).get("status") == "pending"), None)
            if kind == "tool_call":
                step = self._step(str(data.get("name")), data.get("args") or {})
                started[id(step)] = time.monotonic()
                live.append(step)
            elif kind == "progress" and pending is not None:
                done, total = int(data.get("done", 0)), int(data.get("total", 0))
                pending["metadata"]["log"] = f"{data.get('stage')} {done}/{total}"
                pending["content"] = f"{pending['_args']}\n\n**{data.get('stage')}** {_bar(done, total)}"
            elif kind == "tool_result" and pending is not None:
                self._finish(pending, data, time.monotonic() - started.get(id(pending), time.monotonic()))
            if pending is not None and kind != "tool_result" and "log" not in pending["metadata"]:
                pending["metadata"]["log"] = "running"
            if pending is not None and pending["metadata"].get("status") == "pending":
                pending["metadata"]["duration"] = round(time.monotonic() - started.get(id(pending), 0.0), 0)
            yield self._public(before + live)
        thread.join()
        if "error" in result:
            live.append({"role": "assistant", "content": f"error: {result['error']}"})
            yield self._public(before + live)
        self._last_result = result.get("value")

    def _upload_turn(self, text: str, files: list[Any], before: list[dict[str, Any]]) -> Iterator[list]:
        """'relax and screen this one': check the CIF, copy it into the session folder, screen it."""
        src = Path(files[0] if isinstance(files[0], str) else files[0].get("path", ""))
        said = f"{text or 'relax and screen this one'} [uploaded {src.name}]"
        human = HumanMessage(content=said)
        try:
            if len(files) > 1:
                raise InputError("upload one CIF at a time")
            structure = check_uploaded_cif(src)
        except InputError as exc:
            self.agent.messages += [human, AIMessage(content=f"error: {exc}")]
            self.agent.save_transcript()
            return
        n = len(list((self.out / "uploads").glob("upload_[0-9][0-9]"))) + 1
        folder = self.out / "uploads" / f"upload_{n:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, folder / "input.cif")
        args = {"upload": folder.name, "file": src.name}
        call = {"name": "screen_uploaded_structure", "args": args, "id": f"upload_{n:02d}"}
        live = [{"role": "user", "content": said}]

        def work() -> dict[str, Any]:
            self._on_event("tool_call", call)
            try:
                result = self._screen_upload(structure, folder)
            except Exception as exc:  # noqa: BLE001 - a failing stage is reported, as run_tool_call does
                result = {"error": f"screening failed: {type(exc).__name__}: {exc}"}
            status = "error" if "error" in result else "success"
            self._on_event("tool_result", {"name": call["name"], "status": status, "content": result})
            return result

        yield from self._stream(work, before, live)
        result = self._last_result or {"error": "screening failed"}
        status = "error" if "error" in result else "success"
        tool = ToolMessage(content=json.dumps(result, default=str), tool_call_id=call["id"], name=call["name"],
                           status=status)  # fmt: skip
        if status == "error":
            answer = f"The screen_uploaded_structure step failed: {result['error']}"
        else:
            row = result["row"]
            answer = (
                f"Screened your structure {row['formula']} ({folder.name}) [screen_uploaded_structure, energies by "
                f"{result['energies_by']}]: space group {row['spacegroup_requested']} → {row['spacegroup_final']}, "
                f"E_form {row['e_form_eV_per_atom']} eV/atom, E_hull {row['e_hull_eV_per_atom']} eV/atom"
                + (f", band gap {row['band_gap_eV']} eV" if row.get("band_gap_eV") is not None else "")
                + f". Files: uploads/{folder.name}/ (pick it under 'Round' to view and download)."
            )
        self.agent.messages += [human, AIMessage(content="", tool_calls=[call]), tool, AIMessage(content=answer)]
        self.agent.save_transcript()

    def _screen_upload(self, structure: Any, folder: Path) -> dict[str, Any]:
        from xtalagent.tools.screen import StructureCandidate, screen

        settings = self.session.settings
        gap_model = None
        if settings.band_gap:
            from xtalagent.tools.band_gap import default_band_gap_model

            gap_model = default_band_gap_model(variant=settings.variant)
        cand = StructureCandidate(id="U001", source=f"uploads/{folder.name}/input.cif", structure=structure,
                         cif_text=(folder / "input.cif").read_text())  # fmt: skip
        report = screen([cand], folder, potential=self.session._potential or settings.potential,
                        max_steps=settings.relax_max_steps, fmax=settings.relax_fmax, band_gap_model=gap_model,
                        progress=lambda _row: self._on_event("progress", {"stage": "screening", "done": 1,
                                                                          "total": 1}))  # fmt: skip
        row = report.rows[0]
        if row.get("failure"):
            return {"error": str(row["failure"])}
        prov = report.provenance
        return {
            "folder": f"uploads/{folder.name}",
            "energies_by": f"{prov.get('potential', '?')} {prov.get('checkpoint', '')}".strip(),
            "row": {
                "formula": row.get("formula"),
                "spacegroup_requested": row.get("requested_spacegroup"),
                "spacegroup_final": row.get("final_spacegroup"),
                "e_form_eV_per_atom": _fmt(row.get("e_form")),
                "e_hull_eV_per_atom": _fmt(row.get("e_hull")),
                "band_gap_eV": _fmt(row.get("band_gap")),
                "stable": row.get("stable"),
                "novel": row.get("novel"),
            },
        }

    # --- results of a round, read from its folder -------------------------------------------------------
    def rounds(self) -> list[str]:
        """Round folders (newest first), then screened uploads, relative to the session folder."""
        names = sorted((p.name for p in self.out.glob("round_[0-9][0-9]") if (p / "summary.csv").is_file()),
                       reverse=True)  # fmt: skip
        uploads = sorted((f"uploads/{p.name}" for p in (self.out / "uploads").glob("upload_[0-9][0-9]")
                          if (p / "summary.csv").is_file()), reverse=True)  # fmt: skip
        return names + uploads

    def _folder(self, name: str | None) -> Path | None:
        """The folder of a listed round (anything else from the page is ignored: no paths from outside)."""
        return self.out / name if name and name in self.rounds() else None

    def rows(self, name: str | None) -> list[dict[str, Any]]:
        import pandas as pd

        folder = self._folder(name)
        if folder is None:
            return []
        frame = pd.read_csv(folder / "summary.csv")
        frame = frame.astype(object).where(frame.notna(), None)
        return frame.to_dict("records")

    def table(self, rows: list[dict[str, Any]]) -> list[list[Any]]:
        out = []
        for r in rows:
            rank = r.get("design_rank", r.get("rank"))
            meets = {k[6:]: v for k, v in r.items() if k.startswith("meets_") and k != "meets_all_checked"}
            checked = {k: bool(v) for k, v in meets.items() if v is not None}
            marks = ", ".join(("✓ " if ok else "✗ ") + k.replace("_", " ") for k, ok in checked.items())
            wishes = f"{sum(checked.values())}/{len(checked)}: {marks}" if checked else ""
            kind = r.get("kind") or "uploaded"
            group = f"{_int(r.get('requested_spacegroup'))} → {_int(r.get('final_spacegroup'))}"
            out.append([
                _int(rank), "known" if kind == "known" else "new", r.get("id"), r.get("formula"), group,
                _fmt(r.get("e_form")), _fmt(r.get("e_hull")), _fmt(r.get("band_gap"), 2),
                _fmt(r.get("band_gap_std"), 2), wishes, bool(r.get("stable")) if r.get("stable") is not None else None,
                r.get("source") or "",
            ])  # fmt: skip
        return out

    def cif(self, name: str | None, row: dict[str, Any] | None) -> Path | None:
        folder = self._folder(name)
        if folder is None or row is None or not row.get("cif"):
            return None
        path = (folder / str(row["cif"])).resolve()
        return path if path.is_file() and self.out in path.parents else None

    def downloads(self, name: str | None) -> list[str]:
        folder = self._folder(name)
        if folder is None:
            return []
        files = [folder / "summary.csv", folder / "report.md"]
        files += [p for p in (self.cif(name, r) for r in self.rows(name)) if p is not None]
        return [str(p) for p in files if p.is_file()]

    def viewer_payload(self, name: str | None, candidate: str | None, known: str | None) -> str:
        rows = {r.get("id"): r for r in self.rows(name)}

        def item(key: str | None) -> dict[str, Any] | None:
            row = rows.get(key)
            path = self.cif(name, row)
            if row is None or path is None:
                return None
            rank = row.get("design_rank", row.get("rank"))
            where = row.get("source") if row.get("kind") == "known" else f"#{_int(rank)}"
            label = (f"{where} {row['id']} {row.get('formula')}, group {_int(row.get('final_spacegroup'))}, "
                     f"E_hull {_fmt(row.get('e_hull'))} eV/atom")  # fmt: skip
            return {"id": row["id"], "label": label, "cif": path.read_text()}

        return json.dumps({"round": name, "candidate": item(candidate), "known": item(known)})


def _int(x: Any) -> int | None:
    return None if x is None or (isinstance(x, float) and not math.isfinite(x)) else int(x)


# --- the page -------------------------------------------------------------------------------------------
def build_app(chat: WebChat):
    """The FastAPI app: the Gradio page at ``/`` and the vendored 3Dmol.js at ``/static/``."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    os.environ["GRADIO_TEMP_DIR"] = str(chat.out / ".web")  # uploads and Gradio's cache stay in the session
    import gradio as gr
    from fastapi import FastAPI
    from fastapi.staticfiles import StaticFiles

    gr.set_static_paths([str(chat.out)])  # downloads are served from the session folder, not copied
    system = ["system-ui", "-apple-system", "Segoe UI", "Roboto", "Helvetica", "Arial", "sans-serif"]
    theme = gr.themes.Default(font=system, font_mono=["ui-monospace", "Menlo", "Consolas", "monospace"])

    def on_load():
        names = chat.rounds()
        return (chat._public(chat.history()), *show_round(names[0] if names else None, names))

    def show_round(name: str | None, names: list[str] | None = None):
        names = chat.rounds() if names is None else names
        rows = chat.rows(name)
        cands = [(f"#{_int(r.get('design_rank', r.get('rank')))} {r['id']} {r.get('formula')}", r["id"])
                 for r in rows if r.get("kind") != "known" and r.get("cif")]  # fmt: skip
        known = [(f"{r['id']} {r.get('formula')} ({r.get('source')})", r["id"])
                 for r in rows if r.get("kind") == "known" and r.get("cif")]  # fmt: skip
        folder = chat._folder(name)
        plot = str(folder / "ehull.png") if folder is not None and (folder / "ehull.png").is_file() else None
        report = (folder / "report.md").read_text() if folder is not None and (folder / "report.md").is_file() else ""
        first_c, first_k = (cands[0][1] if cands else None), (known[0][1] if known else None)
        return (
            gr.update(choices=names, value=name),
            chat.table(rows),
            gr.update(choices=cands, value=first_c),
            gr.update(choices=known, value=first_k),
            plot,
            chat.downloads(name) or None,
            report,
            chat.viewer_payload(name, first_c, first_k),
        )

    def after_turn():
        names = chat.rounds()
        return show_round(names[0] if names else None, names)

    def on_select(name: str | None, cand: str | None, known: str | None, evt: gr.SelectData):
        values = list(getattr(evt, "row_value", None) or [])
        if len(values) >= 3 and values[2]:
            if values[1] == "known":
                known = str(values[2])
            else:
                cand = str(values[2])
        return cand, known, chat.viewer_payload(name, cand, known)

    on_select.__annotations__["evt"] = gr.SelectData  # Gradio finds the event argument by its type

    with gr.Blocks(title="xtalagent web", analytics_enabled=False, fill_width=True) as demo:
        gr.Markdown(f"### xtalagent — crystal design chat\n{WELCOME} Session folder: `{chat.out}`.")
        with gr.Row():
            with gr.Column(scale=5):
                chatbot = gr.Chatbot(height=640, label="conversation", elem_id="xa-chat", feedback_options=None,
                                     buttons=["copy"])  # fmt: skip
                box = gr.MultimodalTextbox(placeholder="e.g. A stable Ti-O compound with a band gap near 3 eV "
                                           "(attach a .cif to relax and screen it)", file_types=[".cif"],
                                           file_count="single", elem_id="xa-input", show_label=False)  # fmt: skip
            with gr.Column(scale=6):
                round_pick = gr.Dropdown(label="Round", choices=[], elem_id="xa-round", interactive=True)
                table = gr.Dataframe(headers=TABLE_COLUMNS, label="candidates and known phases (click a header to "
                                     "sort, a row to view it)", interactive=False, elem_id="xa-table", wrap=True,
                                     datatype=["number", "str", "str", "str", "str", "number", "number", "number",
                                               "number", "str", "bool", "str"], max_height=340)  # fmt: skip
                with gr.Row():
                    cand_pick = gr.Dropdown(label="candidate", choices=[], elem_id="xa-candidate", interactive=True)
                    known_pick = gr.Dropdown(label="known phase", choices=[], elem_id="xa-known", interactive=True)
                gr.HTML(VIEWER_HTML)
                payload = gr.Textbox(visible="hidden", elem_id="xa-payload")
                with gr.Row():
                    plot = gr.Image(label="E_hull", type="filepath", elem_id="xa-ehull", interactive=False, height=280)
                    files = gr.File(label="downloads", file_count="multiple", elem_id="xa-files", interactive=False,
                                    height=280)  # fmt: skip
                with gr.Accordion("report.md", open=False):
                    report = gr.Markdown(elem_id="xa-report")
        results = [round_pick, table, cand_pick, known_pick, plot, files, report, payload]

        demo.load(on_load, None, [chatbot, *results])
        sent = gr.State(None)
        turn = box.submit(lambda m: (gr.update(value=None, interactive=False), m), box, [box, sent], queue=False)
        turn = turn.then(chat.turn, sent, chatbot)
        turn.then(after_turn, None, results).then(lambda: gr.update(interactive=True), None, box)
        round_pick.input(show_round, round_pick, results)
        cand_pick.input(chat.viewer_payload, [round_pick, cand_pick, known_pick], payload)
        known_pick.input(chat.viewer_payload, [round_pick, cand_pick, known_pick], payload)
        table.select(on_select, [round_pick, cand_pick, known_pick], [cand_pick, known_pick, payload])
        payload.change(None, payload, None, js=DRAW_JS)

    app = FastAPI(title="xtalagent web")
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    head = '<script src="/static/3Dmol-min.js"></script>'
    return gr.mount_gradio_app(app, demo, path="", theme=theme, head=head, ssr_mode=False, show_error=True,
                               allowed_paths=[str(chat.out)], max_file_size=5_000_000, footer_links=[])  # fmt: skip


def web_settings(potential: str = "auto", prerelax: str = "auto", settings_json: str | None = None) -> DesignSettings:
    """The session's settings: ``chat``'s options, or every field as JSON (tests and benchmarks)."""
    from pydantic import ValidationError

    from xtalagent.errors import validation_message

    if settings_json:
        try:
            return DesignSettings.model_validate_json(settings_json)
        except ValidationError as exc:
            raise InputError(f"--settings: {validation_message(exc)}") from None
    return DesignSettings(potential=potential, prerelax=prerelax)


def serve_web(
    output: Path,
    host: str = "127.0.0.1",
    port: int = 7860,
    endpoint: str | None = None,
    model: str | None = None,
    settings: DesignSettings | None = None,
    announce: Callable[[str], None] = print,
) -> None:
    """Start the page and serve until interrupted; ``announce`` gets the address once the server listens."""
    try:
        import gradio  # noqa: F401
        import uvicorn
    except ImportError:
        raise InputError("xtalagent web needs the 'web' extra: pip install -e '.[web]' (install.sh does)") from None
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise InputError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    chat = WebChat(output, settings, endpoint=endpoint, model=model)
    app = build_app(chat)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started and thread.is_alive():
        time.sleep(0.05)
    if not server.started:
        raise InputError(f"the web server did not start on {host}:{port}")
    shown = f"[{host}]" if ":" in host else host
    restored = f", {chat.restored_turns} earlier turn(s) restored" if chat.restored_turns else ""
    announce(f"xtalagent web: http://{shown}:{port}  (session folder {chat.out}{restored}; Ctrl-C stops)")
    try:
        while thread.is_alive():
            thread.join(0.5)
    except KeyboardInterrupt:
        server.should_exit = True
        thread.join(10)
