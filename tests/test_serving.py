"""Serving: the vLLM endpoint scorer and ``xtalagent serve``.

Two kinds of test:

* A fake vLLM (``_FakeVLLM``) that answers ``/v1/models``, ``/tokenize`` and ``/v1/completions``
  as vLLM 0.32 does, scoring with the tiny model in process. It reproduces both faults issue #25
  found with the real server, so a scorer that fell into either would fail here: the server reads
  text with its own tokenizer (by default what transformers builds from ``config.json``, Qwen2's,
  as vLLM does), and echoed ``text_offset``s add up token strings without the whitespace between
  them.
* ``test_real_vllm_*`` (marker ``vllm``): the real server on the embedded model, started by
  :class:`~xtalagent.finetune.serve.VLLMServer`, against the in-process answers. It runs where a
  Python with vLLM exists (``bash install_vllm.sh``, or ``XTALAGENT_VLLM_PYTHON``) and is skipped
  with that reason elsewhere. ``.ci/run`` installs vLLM (``XTALAGENT_CI_VLLM=0`` leaves it out).
"""

from __future__ import annotations

import json
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from xtalagent.agent.cli import main
from xtalagent.errors import XtalAgentError

REQUESTS = [{"formula": "Ti2O4", "band_gap": 3.0}, {"elements": ["Na", "Cl"], "formation_energy": -2.0}]


class _FakeVLLM(BaseHTTPRequestHandler):
    """The parts of vLLM's OpenAI-compatible server the scorer uses, scored with local models."""

    models: dict = {}  # stage -> causal LM
    tokenizer = None  # the tokenizer the *server* reads text with
    calls: list = []

    def log_message(self, *args):
        pass

    def _send(self, payload: dict, status: int = 200) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path != "/v1/models":
            return self._send({"error": "not found"}, 404)
        self._send({"data": [{"id": name} for name in ("base", *self.models)]})

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.path == "/tokenize":
            return self._send({"tokens": self.tokenizer(body["prompt"]).input_ids})
        if body.get("model") not in self.models:
            return self._send({"error": f"model {body.get('model')} not found"}, 404)
        if len(body.get("logprob_token_ids") or []) > 128 or (
            body.get("logprob_token_ids") and body.get("logprobs") is None
        ):
            return self._send({"error": "bad logprob_token_ids"}, 400)
        self.calls.append(body)
        prompts = body["prompt"] if isinstance(body["prompt"], list) else [body["prompt"]]
        choices = [self._choice(i, prompt, body) for i, prompt in enumerate(prompts)]
        self._send({"choices": choices})

    def _choice(self, index: int, prompt, body: dict) -> dict:
        import torch

        ids = list(prompt) if isinstance(prompt, list) else self.tokenizer(prompt).input_ids
        with torch.inference_mode():
            logp = torch.log_softmax(self.models[body["model"]](torch.tensor([ids])).logits[0].float(), -1)
        wanted = body.get("logprob_token_ids")
        top = {f"token_id:{t}": logp[-1, t].item() for t in wanted} if wanted else None
        choice = {"index": index, "text": "x", "logprobs": {"top_logprobs": [top], "text_offset": [0]}}
        if body.get("echo"):  # as vLLM builds it: offsets add up token strings, whitespace left out
            tokens = [self.tokenizer.decode([t]) for t in ids]
            offsets = [sum(len(t) for t in tokens[:n]) for n in range(len(tokens))]
            values = [None] + [logp[n - 1, ids[n]].item() for n in range(1, len(ids))]
            choice["logprobs"] = {"text_offset": offsets, "token_logprobs": values, "tokens": tokens}
        return choice


@pytest.fixture(scope="module")
def local(tiny_model):
    from xtalagent.finetune.predictor import load_predictor

    return load_predictor(tiny_model)


@pytest.fixture()
def fake_server(local):
    """A fake vLLM serving the tiny model, reading text with the model folder's own tokenizer."""
    _FakeVLLM.models = dict(local.scorer.models)
    _FakeVLLM.tokenizer = local.scorer.tokenizer
    _FakeVLLM.calls = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeVLLM)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


@pytest.fixture()
def split_servers(local):
    """Two fake vLLMs, one per stage, as 'xtalagent serve' lays them out by default: 'url,url'."""
    _FakeVLLM.tokenizer = local.scorer.tokenizer
    _FakeVLLM.calls = []
    servers = []
    for stage, model in local.scorer.models.items():
        handler = type(f"_Fake_{stage}", (_FakeVLLM,), {"models": {stage: model}})
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
    yield ",".join(f"http://127.0.0.1:{server.server_port}" for server in servers)
    for server in servers:
        server.shutdown()


def answers(predictions) -> list[tuple]:
    return [(c.spacegroup, [(s.element, s.wyckoff) for s in c.sites], c.score) for c in predictions]


def test_endpoint_answers_match_in_process(tiny_model, local, fake_server):
    from xtalagent.finetune.predictor import load_predictor

    remote = load_predictor(tiny_model, endpoint=fake_server, timeout=30)
    assert remote.prior is not None and remote.classifier is not None  # the folder's voters join
    for request in REQUESTS:
        mine, theirs = answers(local.predict(request, top_k=3)), answers(remote.predict(request, top_k=3))
        assert [a[:2] for a in theirs] == [a[:2] for a in mine]
        assert [a[2] for a in theirs] == pytest.approx([a[2] for a in mine], abs=2e-4)
    # several prompts per call, and each prefix asked once: far fewer calls than scored continuations
    assert max(len(call["prompt"]) for call in _FakeVLLM.calls) > 10


def test_one_server_per_stage_answers_as_in_process(tiny_model, local, split_servers):
    """The split layout: each stage's requests go to the server that lists its model."""
    from xtalagent.finetune.predictor import load_predictor

    remote = load_predictor(tiny_model, endpoint=split_servers, timeout=30)
    for request in REQUESTS:
        mine, theirs = answers(local.predict(request, top_k=3)), answers(remote.predict(request, top_k=3))
        assert [a[:2] for a in theirs] == [a[:2] for a in mine]
        assert [a[2] for a in theirs] == pytest.approx([a[2] for a in mine], abs=2e-4)
    assert {call["model"] for call in _FakeVLLM.calls} == {"sg", "wyckoff"}
    assert remote.scorer._stage_roots["sg"] != remote.scorer._stage_roots["wyckoff"]


def test_endpoint_asks_no_prefix_twice_while_many_prompts_are_open(local, fake_server):
    """8 requests in flight with their groups side by side keep 40+ prompts open: a prompt's known
    prefixes must outlive the others' calls, or each decoder step asks its history again."""
    from xtalagent.finetune.endpoint_scorer import EndpointScorer

    scorer = EndpointScorer(fake_server, local.scorer.tokenizer)
    prompts = [f"Task: choose the space group of Na{n} Cl{n} .\nAnswer:\n" for n in range(1, 50)]
    first = [scorer.score("sg", prompt, [" 225", " 221"], [True, True]) for prompt in prompts]
    before = len(_FakeVLLM.calls)
    again = [scorer.score("sg", prompt, [" 225", " 221"], [True, True]) for prompt in prompts]
    assert again == first and len(_FakeVLLM.calls) == before


def test_endpoint_refuses_a_server_that_reads_text_with_another_tokenizer(tiny_model, fake_server):
    """vLLM's default for this model folder: the tokenizer transformers builds from config.json."""
    from transformers import AutoTokenizer

    from xtalagent.finetune.predictor import load_predictor

    _FakeVLLM.tokenizer = AutoTokenizer.from_pretrained(tiny_model / "base")
    remote = load_predictor(tiny_model, endpoint=fake_server)
    with pytest.raises(XtalAgentError, match="another tokenizer"):
        remote.predict(REQUESTS[0], top_k=1)


def test_the_fake_server_drops_whitespace_from_text_offsets_as_vllm_does(local, fake_server):
    """What made every endpoint score 0.0: echoed answer tokens sit at offsets below len(prompt)."""
    from xtalagent.finetune.endpoint_scorer import EndpointScorer

    prompt, answer = "Task: choose the space group.\nAnswer:\n", " 136"
    reply = EndpointScorer(fake_server, local.scorer.tokenizer)._request(
        "/v1/completions", {"model": "sg", "prompt": prompt + answer, "echo": True, "max_tokens": 0, "logprobs": 0}
    )
    offsets = reply["choices"][0]["logprobs"]["text_offset"]
    assert all(offset < len(prompt) for offset in offsets)  # a scorer keeping offsets >= len(prompt) scores 0


def test_endpoint_errors_are_one_clear_line(tiny_model, fake_server):
    from xtalagent.finetune.endpoint_scorer import EndpointScorer
    from xtalagent.finetune.predictor import load_predictor

    tokenizer = load_predictor(tiny_model, use_prior=False).scorer.tokenizer
    with pytest.raises(XtalAgentError, match="not reachable"):
        EndpointScorer("http://127.0.0.1:9", tokenizer, timeout=2).score("sg", "p", [" 1"], [True])
    with pytest.raises(XtalAgentError, match="not the models"):
        EndpointScorer(fake_server, tokenizer, models={"sg": "sg", "wyckoff": "other"}).score("sg", "p", [" 1"], [True])


def test_predict_cli_through_an_endpoint_matches_in_process(tiny_model, fake_server, tmp_path, capsys):
    requests = tmp_path / "requests.jsonl"
    requests.write_text("".join(json.dumps(r) + "\n" for r in REQUESTS))
    outputs = {}
    for name, extra in (
        ("local", []),
        ("remote", ["--endpoint", fake_server, "--timeout", "30", "--concurrency", "2"]),
    ):
        out = tmp_path / f"{name}.jsonl"
        code = main(["constraints", "predict", str(requests), "--model", str(tiny_model), "-o", str(out), *extra])
        assert code == 0, capsys.readouterr().err
        outputs[name] = [json.loads(line) for line in out.read_text().splitlines()]
    for mine, theirs in zip(outputs["local"], outputs["remote"]):
        assert [(c["spacegroup"], c["sites"]) for c in mine["candidates"]] == [
            (c["spacegroup"], c["sites"]) for c in theirs["candidates"]
        ]
        assert [c["score"] for c in theirs["candidates"]] == pytest.approx(
            [c["score"] for c in mine["candidates"]], abs=2e-4
        )


# --- xtalagent serve ---------------------------------------------------------------------------
def test_serve_command_carries_every_flag_a_first_try_needs(tiny_model, tmp_path):
    from xtalagent.finetune.serve import vllm_commands

    specs = vllm_commands(tiny_model, port=8123, python="py", cache_dir=tmp_path)
    assert [(spec.stages, spec.port) for spec in specs] == [(("sg",), 8123), (("wyckoff",), 8124)]
    for spec in specs:
        command = spec.command
        assert command[:3] == ["py", "-m", "vllm.entrypoints.openai.api_server"]
        flags = dict(zip(command, command[1:]))
        assert flags["--served-model-name"] == spec.stages[0] and flags["--port"] == str(spec.port)
        assert flags["--dtype"] == "float32" and flags["--block-size"] == "32"
        assert "--enable-prefix-caching" in command and "--enable-lora" not in command  # no LoRA kernels run
        assert int(flags["--max-model-len"]) <= 2048
        # the KV cache is sized to the model (1 layer, 64 wide, float32), not to 92 % of the machine
        assert int(flags["--kv-cache-memory-bytes"]) == 64 << 20 and "--gpu-memory-utilization" not in command
        # the tokenizer folder holds only the tokenizer files, so vLLM reads tokenizer.json as it is
        assert {p.name for p in Path(flags["--tokenizer"]).iterdir()} <= {
            "tokenizer.json",
            "tokenizer_config.json",
            "special_tokens_map.json",
        }
    # flags given by the user go to every server and replace serve's own
    mine = vllm_commands(
        tiny_model, python="py", cache_dir=tmp_path, extra=["--dtype=bfloat16", "--gpu-memory-utilization", "0.5"]
    )
    for spec in mine:
        assert spec.command.count("--dtype") == 0 and "--dtype=bfloat16" in spec.command
        assert "--kv-cache-memory-bytes" not in spec.command


def test_lora_layout_serves_both_adapters_from_one_server(tiny_model, tmp_path):
    from xtalagent.finetune.serve import vllm_commands

    (spec,) = vllm_commands(tiny_model, port=8123, python="py", layout="lora", cache_dir=tmp_path)
    flags = dict(zip(spec.command, spec.command[1:]))
    assert spec.stages == ("sg", "wyckoff") and flags["--port"] == "8123" and "--enable-lora" in spec.command
    assert flags["--max-lora-rank"] == "16" and flags["--max-loras"] == "2"  # the adapters' rank (--lora-r 16)
    assert f"sg={tiny_model / 'sg'}" in spec.command and f"wyckoff={tiny_model / 'wyckoff'}" in spec.command


def test_merged_stage_weights_score_as_in_process(tiny_model, local, tmp_path):
    """Each split-layout server's weights (base + that stage's adapter, merged): the in-process
    log-probabilities; written once."""
    import torch
    from transformers import AutoModelForCausalLM

    from xtalagent.finetune.serve import stage_model_for_serving

    ids = torch.tensor([local.scorer.tokenizer("Task: choose Sc2Ni6 . Answer: 1 9 1").input_ids])
    for stage in ("sg", "wyckoff"):
        folder = stage_model_for_serving(tiny_model, stage, tmp_path)
        served = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
        with torch.inference_mode():
            mine = torch.log_softmax(local.scorer.models[stage](ids).logits, -1)
            assert (torch.log_softmax(served(ids).logits, -1) - mine).abs().max() < 1e-4, stage
        assert stage_model_for_serving(tiny_model, stage, tmp_path) == folder
    assert len(list(tmp_path.iterdir())) == 2 and not list(tmp_path.glob("*.partial"))


def test_serve_dry_run_passes_extra_flags_through(capsys, monkeypatch, tmp_path):
    monkeypatch.setattr("xtalagent.finetune.serve.DEFAULT_VENV", tmp_path / "venv")  # merged weights go here
    code = main(["serve", "--dry-run", "--port", "8124", "--max-num-seqs", "64"])
    lines = capsys.readouterr().out.splitlines()
    assert code == 0 and len(lines) == 2  # one server per stage
    assert "--port 8124" in lines[0] and "--port 8125" in lines[1]
    assert all("--max-num-seqs 64" in line and "--tokenizer" in line for line in lines)


def test_serve_refuses_an_unknown_layout(capsys):
    code = main(["serve", "--dry-run", "--layout", "both"])
    err = capsys.readouterr().err
    assert code == 1 and "layout must be one of split, lora" in err and "Traceback" not in err


def test_predict_concurrency_needs_an_endpoint(tiny_model, tmp_path, capsys):
    requests = tmp_path / "requests.jsonl"
    requests.write_text(json.dumps(REQUESTS[0]) + "\n")
    code = main(["constraints", "predict", str(requests), "--model", str(tiny_model), "--concurrency", "4"])
    err = capsys.readouterr().err
    assert code == 1 and "--concurrency" in err and "--endpoint" in err


def test_serve_without_vllm_is_one_clear_line(capsys):
    code = main(["serve", "--vllm-python", sys.executable])  # the test environment has no vLLM
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "vLLM is not installed" in lines[0] and "install_vllm.sh" in lines[0]


FAKE_API_SERVER = """
import argparse, json, sys
from http.server import BaseHTTPRequestHandler, HTTPServer
parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int)
parser.add_argument("--served-model-name")
args, _ = parser.parse_known_args()
class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        data = json.dumps({"data": [{"id": args.served_model_name}]}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
    def log_message(self, *a):
        pass
HTTPServer(("127.0.0.1", args.port), Handler).serve_forever()
"""


@pytest.mark.slow
def test_serve_stops_its_servers_when_terminated_and_refuses_a_busy_port(tiny_model, tmp_path):
    """A stand-in 'vllm' package answers /v1/models: serve starts one server per stage, prints the
    endpoint, and on SIGTERM stops both (they must not keep the ports); a busy port is one line."""
    import os
    import signal
    import subprocess
    import time

    fake = tmp_path / "fake" / "vllm" / "entrypoints" / "openai"
    fake.mkdir(parents=True)
    for folder in (fake, fake.parent, fake.parent.parent):
        (folder / "__init__.py").write_text("")
    (fake / "api_server.py").write_text(FAKE_API_SERVER)
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "fake"), "XTALAGENT_VLLM_PYTHON": sys.executable}
    port = _free_port()
    with socket.socket() as busy:  # a port in use: refused before anything starts
        busy.bind(("127.0.0.1", port))
        busy.listen()
        done = subprocess.run(
            [sys.executable, "-m", "xtalagent.agent.cli", "serve", "--model", str(tiny_model), "--port", str(port)],
            env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == 1 and f"port {port}" in done.stderr and "in use" in done.stderr
    port = _free_port()
    serve = subprocess.Popen(
        [sys.executable, "-m", "xtalagent.agent.cli", "serve", "--model", str(tiny_model), "--port", str(port)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        line = serve.stdout.readline()  # printed once both answer
        assert f"--endpoint http://127.0.0.1:{port},http://127.0.0.1:{port + 1}" in line, serve.stderr.read()
        serve.send_signal(signal.SIGTERM)
        serve.wait(60)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                for p in (port, port + 1):
                    with socket.socket() as sock:  # a listener blocks this bind; TIME_WAIT does not
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                        sock.bind(("127.0.0.1", p))
                break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("the stage servers kept their ports after serve was terminated")
    finally:
        serve.kill()


# --- the real server ---------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.vllm
def test_real_vllm_endpoint_agrees_with_in_process(tmp_path):
    """The embedded model served by real vLLM: same candidates, scores to the printed 4 decimals."""
    from xtalagent import config
    from xtalagent.finetune.predictor import load_predictor
    from xtalagent.finetune.serve import VLLMServer, has_vllm, vllm_python

    python = vllm_python()
    if not has_vllm(python):
        pytest.skip(f"no vLLM for {python}: run 'bash install_vllm.sh' or set XTALAGENT_VLLM_PYTHON")
    requests = [
        {"formula": "Sc2Ni6", "band_gap": 0.0},
        {"composition": "NaCl", "formation_energy": -2.0},
        {"elements": ["Li", "Fe", "P", "O"], "band_gap": 3.5},
    ]
    local = load_predictor(variant="release")
    server = VLLMServer(config.CONSTRAINT_MODEL_DIR, port=_free_port(), python=python, log=tmp_path / "vllm.log")
    with server:
        remote = load_predictor(endpoint=server.url, variant="release")
        for request in requests:
            mine, theirs = answers(local.predict(request, top_k=5)), answers(remote.predict(request, top_k=5))
            assert [a[:2] for a in theirs] == [a[:2] for a in mine], request
            assert [a[2] for a in theirs] == pytest.approx([a[2] for a in mine], abs=2e-4), request
