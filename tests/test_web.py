"""``xtalagent web``: the server (HTTP, localhost, offline assets), upload checks, transcript reload, and the
page driven in a real headless Chromium (Debian's ``chromium`` through Playwright) on the fast path."""

from __future__ import annotations

import base64
import importlib.util
import inspect
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from xtalagent.errors import InputError

if importlib.util.find_spec("gradio") is None:  # checked, not imported: collection stays fast
    pytest.skip("the 'web' extra is not installed (pip install -e '.[web]')", allow_module_level=True)

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
FAST = {"sampler": "pyxtal", "relax_max_steps": 5, "known_phases": 2, "prerelax": "off", "potential": "chgnet",
        "top_k": 2}  # fmt: skip
REQUEST = "A stable Ti-O compound with a band gap near 3 eV, 3 candidates"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """``xtalagent web`` as a user starts it (fast settings); yields (url, session folder, seconds to ready)."""
    folder = tmp_path_factory.mktemp("web") / "session"
    port = _free_port()
    log = folder.parent / "server.log"
    cmd = [sys.executable, "-m", "xtalagent.agent.cli", "web", "-o", str(folder), "--port", str(port), "--threads", "2",
           "--settings", json.dumps(FAST)]  # fmt: skip
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
    start, url = time.monotonic(), None
    while time.monotonic() - start < 180 and proc.poll() is None:
        text = log.read_text()
        if "http://" in text:
            url = text.split("http://", 1)[1].split()[0]
            break
        time.sleep(0.2)
    if url is None:
        proc.kill()
        pytest.fail(f"xtalagent web did not start:\n{log.read_text()}")
    yield f"http://{url}", folder
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()


# --- cheap checks: no browser ---------------------------------------------------------------------------
@pytest.mark.slow
def test_server_answers_fast_on_localhost_with_local_assets(server) -> None:
    url, _folder = server
    assert url.startswith("http://127.0.0.1:")  # the default bind
    start = time.monotonic()
    with urllib.request.urlopen(url + "/", timeout=10) as page:
        html = page.read().decode()
    assert time.monotonic() - start < 2.0 and page.status == 200
    assert "/static/3Dmol-min.js" in html and "fonts.googleapis" not in html
    with urllib.request.urlopen(url + "/static/3Dmol-min.js", timeout=10) as asset:
        assert asset.status == 200 and len(asset.read()) > 400_000
    port = int(url.rsplit(":", 1)[1])
    others = {a[4][0] for a in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)} - {"127.0.0.1"}
    for address in others:  # another address of this machine (127.0.1.1, the LAN address) is refused
        with socket.socket() as s, pytest.raises(OSError):
            s.settimeout(2)
            s.connect((address, port))


def test_web_defaults_to_localhost() -> None:
    from xtalagent.agent.web import serve_web

    assert inspect.signature(serve_web).parameters["host"].default == "127.0.0.1"


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("bad/broken.cif", "pymatgen cannot read"),
        ("bad/partial_occupancy.cif", "partial occupancies"),
        ("bad_input/atoms_too_close.cif", "overlap"),
        ("crystals.csv", "upload a .cif"),
    ],
)
def test_uploaded_cifs_are_checked(fixtures, name, message) -> None:
    from xtalagent.agent.web import check_uploaded_cif

    with pytest.raises(InputError, match=message):
        check_uploaded_cif(fixtures / name)


def test_uploaded_cif_size_and_a_good_one(fixtures, tmp_path) -> None:
    from xtalagent.agent.web import UPLOAD_MAX_BYTES, check_uploaded_cif

    big = tmp_path / "big.cif"
    big.write_text("#" * (UPLOAD_MAX_BYTES + 1))
    with pytest.raises(InputError, match="too large"):
        check_uploaded_cif(big)
    assert check_uploaded_cif(fixtures / "cifs" / "rutile_TiO2.cif").composition.reduced_formula == "TiO2"


@pytest.mark.slow
def test_upload_is_screened_into_the_session_and_reloaded(fixtures, tmp_path) -> None:
    from xtalagent.agent.pipeline import DesignSettings
    from xtalagent.agent.web import WebChat

    chat = WebChat(tmp_path / "session", DesignSettings(**FAST))
    upload = tmp_path / "upload" / "rutile.cif"  # where Gradio would have put the browser's file
    upload.parent.mkdir()
    shutil.copy(fixtures / "cifs" / "rutile_TiO2.cif", upload)
    shown = list(chat.turn({"text": "relax and screen this one", "files": [str(upload)]}))
    last = shown[-1]
    assert last[-1]["content"].startswith("Screened your structure TiO2 (upload_01) [screen_uploaded_structure")
    assert any(m.get("metadata", {}).get("title") == "tool screen_uploaded_structure" for m in last)
    assert (tmp_path / "session" / "uploads" / "upload_01" / "input.cif").is_file()
    assert chat.rounds() == ["uploads/upload_01"]
    assert chat.table(chat.rows("uploads/upload_01"))[0][3] == "TiO2"
    assert chat.downloads("../upload") == [] and chat.rows("/etc") == []  # only listed folders are read
    reopened = WebChat(tmp_path / "session")
    assert [m["content"] for m in reopened.history() if m["role"] == "user"] == [
        "relax and screen this one [uploaded rutile.cif]"
    ]


# --- the page in a real browser -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (the 'web' extra)")
    if not Path(CHROMIUM).exists():
        pytest.skip("no Chromium: install Debian's 'chromium' package (.ci/run does: apt-get install chromium)")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def _chat_text(page) -> str:
    return page.inner_text("#xa-chat")


def _wait_for(page, predicate, timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        page.wait_for_timeout(500)
    raise AssertionError(f"timed out waiting for {what}; chat shows:\n{_chat_text(page)[-2000:]}")


def _non_background_pixels(png: bytes) -> int:
    import io

    import numpy as np
    from PIL import Image

    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGBA"), dtype=np.int32)
    drawn = (pixels[..., 3] > 0) & (pixels[..., :3].min(axis=-1) < 235)  # neither transparent nor white
    return int(drawn.sum())


@pytest.mark.slow
def test_design_conversation_in_the_browser(server, browser, tmp_path) -> None:
    from pymatgen.core import Structure

    url, folder = server
    page = browser.new_page(viewport={"width": 1600, "height": 1100}, accept_downloads=True)
    outside = []
    page.on("request", lambda r: outside.append(r.url) if not r.url.startswith((url, "data:", "blob:")) else None)
    page.goto(url)
    page.wait_for_selector("#xa-input textarea")

    page.fill("#xa-input textarea", REQUEST)
    page.keyboard.press("Enter")
    _wait_for(page, lambda: "tool propose_constraints" in _chat_text(page), 60, "the first tool step")
    _wait_for(page, lambda: "Screening [screen_structures" in _chat_text(page), 420, "the design answer")
    text = _chat_text(page)
    for step in ("propose_constraints", "generate_structures", "prerelax_structures", "screen_structures"):
        assert f"tool {step}" in text

    # the table: the candidates of round_01 and the known phases beside them
    import pandas as pd

    ids = pd.read_csv(folder / "round_01" / "summary.csv")["id"].tolist()
    assert len(ids) == 3 + FAST["known_phases"]
    _wait_for(page, lambda: all(i in page.inner_text("#xa-table") for i in ids), 30, f"the table rows {ids}")
    table = page.inner_text("#xa-table")
    assert "new" in table and "known" in table and "known:mp-" in table

    # the 3D viewer drew the selected candidate (non-blank WebGL canvas)
    page.wait_for_selector("#xa-view-candidate[data-drawn]", timeout=30_000)
    page.wait_for_timeout(500)
    canvas = page.locator("#xa-view-candidate canvas").first
    assert _non_background_pixels(canvas.screenshot()) > 500
    data_url = page.evaluate(  # the pixels of the WebGL canvas itself (3Dmol keeps its drawing buffer)
        """() => [...document.querySelectorAll('#xa-view-candidate canvas')]
                   .sort((a, b) => b.width * b.height - a.width * a.height)[0].toDataURL('image/png')"""
    )
    assert _non_background_pixels(base64.b64decode(data_url.split(",", 1)[1])) > 500

    # a CIF download, parsed with pymatgen
    link = page.locator("#xa-files a[download$='.cif']").first
    with page.expect_download() as info:
        link.click()
    saved = tmp_path / info.value.suggested_filename
    info.value.save_as(saved)
    assert len(Structure.from_file(saved)) > 0

    # a follow-up in the same conversation
    page.fill("#xa-input textarea", "why is candidate 1 unstable?")
    page.keyboard.press("Enter")
    _wait_for(page, lambda: "[explain_candidate]" in _chat_text(page), 120, "the follow-up answer")

    # a bad upload: one clear error in the chat, nothing screened
    fixtures = Path(__file__).parent / "fixtures"
    page.set_input_files("#xa-input input[type=file]", str(fixtures / "bad" / "broken.cif"))
    page.fill("#xa-input textarea", "relax and screen this one")
    page.wait_for_timeout(500)
    page.keyboard.press("Enter")
    _wait_for(page, lambda: "pymatgen cannot read" in _chat_text(page), 60, "the upload error")
    assert not (folder / "uploads").exists() and (folder / ".web").is_dir()  # Gradio's upload stayed inside

    if os.environ.get("XTALAGENT_WEB_SCREENSHOT"):
        page.screenshot(path=os.environ["XTALAGENT_WEB_SCREENSHOT"], full_page=True)
    assert outside == [], f"the page fetched from outside the server: {outside}"

    # re-opening the session folder shows the earlier conversation
    from xtalagent.agent.web import WebChat

    reopened = WebChat(folder)
    shown = [m["content"] for m in reopened.history() if m["role"] == "user"]
    assert shown[0] == REQUEST and shown[1] == "why is candidate 1 unstable?"
    assert reopened.session.rounds == 1  # a new request would open round_02, not overwrite round_01
    written = [p for p in folder.parent.rglob("*") if p.is_file() and p.name != "server.log"]
    assert all(folder in p.parents for p in written)
