#!/usr/bin/env bash
# Set up xtalagent in the current Python environment (3.11+).
#
# torch is installed first and pinned, so that no dependency pulls a multi-GB CUDA build; on
# these CPU machines `pip install torch==2.13.0` takes the CPU wheel on disk. Override with
# TORCH_SPEC="torch==X.Y" (for example a CUDA build on a GPU machine).
# PyPI's torchvision/torchaudio/torchcodec break beside that torch (and with them transformers'
# model classes and mattersim), and nothing here needs them, so they are removed afterwards.
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python}
"$PY" -m pip install -q "${TORCH_SPEC:-torch==2.13.0}"
# web: xtalagent web (Gradio), its browser test (Playwright); ray: --ray; finetune: xtalagent finetune (trl)
# and the tests' tiny model; endpoint: --endpoint (langchain-openai). The main job needs none of them.
"$PY" -m pip install -q -e ".[dev,web,ray,finetune,endpoint]"
"$PY" -m pip uninstall -y -q torchvision torchaudio torchcodec >/dev/null 2>&1 || true
"$PY" -c "import xtalagent, torch; print(f'xtalagent {xtalagent.__version__} ready (torch {torch.__version__})')"
