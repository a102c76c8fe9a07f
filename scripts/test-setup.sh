#!/usr/bin/env bash
# `npm run test:setup`: installs what the tests compare against, once per machine (later runs only check).
# Without it `npm test` passes with those tests reported as skipped; .ci/run calls it so that under CI none skip.
set -euo pipefail

# Real Fashion-MNIST idx files for the data tests, and Chromium to open report.html: Debian packages (needs root).
missing=()
[ -d /usr/share/datasets/fashion-mnist ] || missing+=(dataset-fashion-mnist)
command -v chromium >/dev/null || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && apt-get install -y -qq "${missing[@]}") || echo "test:setup: could not install ${missing[*]}"
  else
    echo "test:setup: install ${missing[*]} with your package manager (Debian: apt-get install ${missing[*]}); their tests skip without them"
  fi
fi

# The reference implementations, in the cache so later runs reuse them: PyTorch 2.11 (checkpoints, optimizers),
# torchvision and timm (the model zoo), TensorBoard's own event reader, pytorch-grad-cam (Grad-CAM), cleanlab (confident
# learning, for convkit inspect's label errors). torch from PyPI
# brings its CUDA libraries: about 3 GB, installed once per machine. The tests find it here (or at $CONVKIT_PYTHON).
venv="${CONVKIT_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/convkit}/pytorch-venv"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
if ! "$venv/bin/python" -c 'import torch, torchvision, timm, safetensors, numpy, tensorboard, pytorch_grad_cam, cleanlab' >/dev/null 2>&1; then
  echo "test:setup: installing PyTorch 2.11, torchvision 0.26, timm, TensorBoard, grad-cam and cleanlab into $venv (about 3 GB, once)"
  "$venv/bin/pip" install -q torch==2.11.0 torchvision==0.26.0 timm==1.0.31 safetensors numpy tensorboard==2.21.0 grad-cam==1.5.7 cleanlab==2.9.0
fi
echo "test:setup: references ready ($venv)"
