"""`xtalagent web` against `xtalagent design`: page latency and the README request's wall time, same settings.

    xtalagent bench web [--reps 2] [--threads 2]

Starts `xtalagent web` on a fresh session folder, times the first HTTP answer and the page load in headless
Chromium (Debian's `chromium`, as tests/test_web.py), then runs the README request in the page and, alternately,
with `xtalagent design` on the embedded defaults; writes bench/results/web.json and a screenshot of the finished
conversation to bench/results/web_chat.png.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from xtalagent.errors import XtalAgentError
from xtalagent.eval.benchmarks.paths import results_dir
from xtalagent.eval.benchmarks.results import write_result

logger = logging.getLogger(__name__)
#: Debian's chromium, as tests/test_web.py drives it.
CHROMIUM = Path("/usr/bin/chromium")
PROMPT = "A stable Ti-O compound with a band gap near 3 eV"
N = 10
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_web(folder: Path, threads: int) -> tuple[subprocess.Popen, str, float]:
    port, log = free_port(), folder.parent / f"{folder.name}.log"
    start = time.monotonic()
    with open(log, "w") as out:
        cmd = [sys.executable, "-m", "xtalagent.agent.cli", "web", "-o", str(folder), "--port", str(port),
               "--threads", str(threads)]  # fmt: skip
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    while "http://" not in log.read_text():
        if proc.poll() is not None:
            raise XtalAgentError(f"xtalagent web stopped before serving: {log.read_text().strip()[-300:]}")
        time.sleep(0.05)
    return proc, f"http://127.0.0.1:{port}", time.monotonic() - start


def web_design(browser, url: str, screenshot: Path | None) -> dict:
    page = browser.new_page(viewport={"width": 1600, "height": 1100})
    outside = []
    page.on("request", lambda r: outside.append(r.url) if not r.url.startswith((url, "data:", "blob:")) else None)
    start = time.monotonic()
    with urllib.request.urlopen(url + "/", timeout=30) as answer:
        answer.read()
    first_http = time.monotonic() - start
    start = time.monotonic()
    page.goto(url)
    page.wait_for_selector("#xa-input textarea")
    page_ready = time.monotonic() - start
    page.fill("#xa-input textarea", f"{PROMPT}, {N} candidates")
    start = time.monotonic()
    page.keyboard.press("Enter")
    while "Screening [screen_structures" not in page.inner_text("#xa-chat"):
        if time.monotonic() - start > 1800:
            raise XtalAgentError("the page gave no answer in 30 minutes")
        page.wait_for_timeout(250)
    design = time.monotonic() - start
    page.wait_for_selector("#xa-view-candidate[data-drawn]", timeout=60_000)
    page.wait_for_timeout(1000)
    if screenshot is not None:
        page.screenshot(path=str(screenshot), full_page=True)
    page.close()
    return {"first_http_seconds": round(first_http, 3), "page_ready_seconds": round(page_ready, 3),
            "design_seconds": round(design, 1), "outside_requests": outside}  # fmt: skip


def cli_design(folder: Path, threads: int) -> float:
    start = time.monotonic()
    subprocess.run([sys.executable, "-m", "xtalagent.agent.cli", "design", PROMPT, "-n", str(N), "-o", str(folder),
                    "--threads", str(threads)], check=True, capture_output=True)  # fmt: skip
    return round(time.monotonic() - start, 1)


def run_web(
    *, reps: int = 2, threads: int = 2, results: Path | None = None, run: dict[str, Any]
) -> tuple[dict[str, Any], Path]:
    """Alternate ``reps`` CLI and page runs of the README request; return the result and its path."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        raise XtalAgentError("the web benchmark needs the 'web' extra (pip install 'xtalagent[web]')") from None
    if not CHROMIUM.is_file():
        raise XtalAgentError(f"{CHROMIUM} not found: install Debian's chromium (as .ci/run does)")
    folder = results_dir(results)

    tmp = Path(tempfile.mkdtemp(prefix="bench_web_"))
    runs = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        for rep in range(reps):
            load_before = os.getloadavg()
            cli = cli_design(tmp / f"cli_{rep}", threads)
            proc, url, ready = start_web(tmp / f"web_{rep}", threads)
            try:
                web = web_design(browser, url, folder / "web_chat.png" if rep == 0 else None)
            finally:
                proc.terminate()
                proc.wait(30)
            runs.append({"rep": rep, "cli_design_seconds": cli, "web_server_ready_seconds": round(ready, 2),
                         **web, "load_average_before": [round(x, 2) for x in load_before]})  # fmt: skip
            logger.info("web run %d: %s", rep, runs[-1])
        browser.close()
    cli = sum(r["cli_design_seconds"] for r in runs) / len(runs)
    web = sum(r["design_seconds"] for r in runs) / len(runs)
    result = {
        "what": "xtalagent web vs xtalagent design on the README request, embedded defaults, fresh folders, "
        "alternating CLI and web runs",
        "prompt": PROMPT,
        "n": N,
        "web_prompt": f"{PROMPT}, {N} candidates",
        "cpu_count": os.cpu_count(),
        "torch_threads": threads,
        "runs": runs,
        "mean_cli_design_seconds": round(cli, 1),
        "mean_web_design_seconds": round(web, 1),
        "web_over_cli": round(web / cli, 3),
        "max_first_http_seconds": max(r["first_http_seconds"] for r in runs),
        "max_page_ready_seconds": max(r["page_ready_seconds"] for r in runs),
        "bars": {"page_answers_within_seconds": 2.0, "design_within_fraction_of_cli": 0.10},
    }
    path = write_result(folder / "web.json", result, run=run)
    return result, path
