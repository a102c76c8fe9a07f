#!/usr/bin/env bash
# The GPU check: ConvKit's core against PyTorch on one GPU, on the shared CIFAR-10 JPEGs, in one command under
# 8 minutes. The GPU machines have python3 with torch 2.11.0+cu130 but no Node, no Rust and no network, so:
#
#   here:        bash scripts/gpu-check.sh --prepare
#                builds the Rust half (crates/core/examples/gpu_check.rs) and copies it and the data
#                archive into target/gpu-check/ (about 25 MB), the one path to carry;
#   GPU machine: bash scripts/gpu-check.sh            (with target/gpu-check carried)
#
# It reports whether CUDA is detected; ConvKit's training step and evaluation on the GPU; ConvKit against
# PyTorch in images/s on the same GPU and data (the preloaded floor, fp32 and bf16 autocast, and the seed's
# JPEG DataLoader pipeline); a 10-epoch run of the seed network, which must reach 70 % test top-1; and the
# start-up of a world-size-1 NCCL process group through ConvKit's c10d bridge (crates/core/cpp/nccl_check.cpp),
# which --prepare builds when it can (it needs the pytorch venv's CUDA and NCCL headers, see below).
# With Node carried too (--prepare packs this machine's node, the package's runtime dependencies, tsx and the
# built addon into node-env.tar.xz, ~30 MB; the addon finds the GPU machine's Python torch as its libtorch and
# opens libtorch_cuda.so from it), it also runs, from TypeScript as a user would: the airbench94 preset against
# airbench94's own code (PyPI 0.1.8, carried as a wheel) on the same GPU (bench/airbench.ts --device cuda), and
# the zoo networks' training step against PyTorch's (bench/zoo-step.ts with BENCH_DEVICE=cuda).
# Steps run most important first under one deadline (CONVKIT_GPU_CHECK_BUDGET_S, default 540 s), so one device
# call of 10 minutes holds them; a step the deadline leaves no time for says so and is skipped.
# The summary is printed last and written to $OUT/gpu-check.json when OUT is set. Exit status 1 when CUDA
# is missing or the accuracy falls short.
#
# Knobs for a dry run without a GPU: CONVKIT_GPU_CHECK_DEVICE=cpu, CONVKIT_GPU_CHECK_EPOCHS=1,
# CONVKIT_GPU_CHECK_AIRBENCH_EPOCHS=0.1, CONVKIT_GPU_CHECK_ZOO_STEPS=2, PYTHON=...
#
# The pretrained-networks part is a second call, because the Lite0 weights do not fit in one carry with the full
# archive (64 MiB): --prepare also writes target/gpu-check-finetune/ (the shared efficientnet-lite0 weights and the
# bench's 1 000 + 10 000 CIFAR-10 images, ~23 MB); carry it and target/gpu-check/node-env.tar.xz and run
#   bash scripts/gpu-check.sh --finetune
# for the zoo parity on the GPU (bench/zoo-parity.ts: every zoo network in float64 against torchvision/timm, 1e-4)
# and the fine-tuning bench on the GPU (bench/finetune.ts --device cuda, ConvKit only). Dry-run knobs:
# CONVKIT_GPU_CHECK_DEVICE=cpu, CONVKIT_GPU_CHECK_FINETUNE_EPOCHS=1, CONVKIT_GPU_CHECK_FINETUNE_TEST=500.
set -euo pipefail
cd "$(dirname "$0")/.."
carry=target/gpu-check
finetune_carry=target/gpu-check-finetune
archive_name=cifar10-jpg.tar.gz
lite0_name=efficientnet-lite0-57934424.pth

if [ "${1:-}" = "--prepare" ]; then
  archive="${CONVKIT_CIFAR_ARCHIVE:-../shared/datasets/$archive_name}"
  [ -f "$archive" ] || { echo "gpu-check: no CIFAR-10 archive at $archive (set CONVKIT_CIFAR_ARCHIVE)" >&2; exit 1; }
  node scripts/cargo.mjs build --release --example gpu_check
  mkdir -p "$carry"
  cp "target/$(rustc -vV | sed -n 's/^host: //p')/release/examples/gpu_check" "$carry/gpu_check"
  cp "$archive" "$carry/$archive_name"
  # The NCCL start-up check: c10d_bridge.cpp with -DCK_C10D_NCCL, against the CUDA libtorch of the pytorch venv
  # (ConvKit's own cache is CPU-only) and the exact nccl.h torch 2.11.0 pins (nvidia-nccl-cu13 2.28.9, in that
  # venv). CUDA 13 keeps crt/host_config.h and <nv/target> in wheels torch does not pull in; pip fetches them.
  # Anything missing only skips this check.
  venv="${CONVKIT_PYTORCH_VENV:-$HOME/.cache/convkit/pytorch-venv}"
  rm -f "$carry/nccl_check"
  if site="$("$venv/bin/python" -c 'import os, torch; print(os.path.dirname(os.path.dirname(torch.__file__)))' 2>/dev/null)" \
      && [ -f "$site/nvidia/nccl/include/nccl.h" ] && [ -d "$site/nvidia/cu13/include" ]; then
    crt=target/gpu-check-build/crt
    if [ ! -f "$crt/nvidia/cu13/include/crt/host_config.h" ] || [ ! -f "$crt/nvidia/cu13/include/cccl/nv/target" ]; then
      mkdir -p target/gpu-check-build/wheels
      "$venv/bin/python" -m pip download -q --no-deps 'nvidia-cuda-crt==13.0.*' 'nvidia-cuda-cccl==13.0.*' -d target/gpu-check-build/wheels \
        && for w in target/gpu-check-build/wheels/*.whl; do "$venv/bin/python" -m zipfile -e "$w" "$crt"; done || true
    fi
    inc="$crt/nvidia/cu13/include"
    if g++ -std=c++17 -O1 -D_GLIBCXX_USE_CXX11_ABI=1 -DUSE_C10D_GLOO -DUSE_C10D_NCCL -DUSE_CUDA -DCK_C10D_NCCL \
        -I crates/core/cpp -I crates/core/cpp/gloo_decl -isystem "$site/torch/include" -isystem "$site/torch/include/torch/csrc/api/include" \
        -isystem "$site/nvidia/cu13/include" -isystem "$inc" -isystem "$inc/cccl" -isystem "$site/nvidia/nccl/include" \
        crates/core/cpp/nccl_check.cpp crates/core/cpp/c10d_bridge.cpp -o "$carry/nccl_check" \
        -L "$site/torch/lib" -Wl,--no-as-needed -ltorch_cuda -lc10_cuda -ltorch_cpu -lc10 -Wl,--as-needed; then
      echo "gpu-check: built the NCCL start-up check"
    else
      echo "gpu-check: could not build the NCCL start-up check (see above); the GPU run will skip it" >&2
    fi
  else
    echo "gpu-check: no CUDA torch with nccl.h in $venv (set CONVKIT_PYTORCH_VENV); the GPU run will skip the NCCL check" >&2
  fi
  # Node for the TypeScript half: repacked only when the addon or the dependencies changed since the last pack.
  pack="$carry/node-env.tar.xz"
  if [ ! -f "$pack" ] || [ -n "$(find native node_modules/.package-lock.json -newer "$pack" 2>/dev/null | head -1)" ]; then
    rm -f "$pack"
    mkdir -p target/gpu-check-build/node-bin
    cp "$(command -v node)" target/gpu-check-build/node-bin/node
    # Top-level folders of the runtime dependencies (nested node_modules come with their parents), then tsx.
    npm ls --omit=dev --all --parseable 2>/dev/null | tail -n +2 | sed "s#^$PWD/##; s#^\(node_modules/\(@[^/]*/\)\{0,1\}[^/]*\).*#\1#" | sort -u \
      > target/gpu-check-build/node-files.txt
    printf '%s\n' node_modules/tsx node_modules/esbuild node_modules/@esbuild native target/gpu-check-build/node-bin >> target/gpu-check-build/node-files.txt
    tar -cf - -T target/gpu-check-build/node-files.txt | xz -6 -T0 > "$pack.tmp" && mv "$pack.tmp" "$pack"
  fi
  [ -f "$carry/airbench-0.1.8.tar.gz" ] || "$venv/bin/python" -m pip download -q --no-deps airbench==0.1.8 -d "$carry" \
    || echo "gpu-check: could not fetch the airbench wheel; the GPU run will skip the preset comparison" >&2
  # The --finetune call's data: the Lite0 weights and the fine-tuning bench's images (first 100 per class, all test).
  mkdir -p "$finetune_carry"
  lite0="${CONVKIT_LITE0_FILE:-../shared/models/$lite0_name}"
  if [ -f "$lite0" ]; then cp "$lite0" "$finetune_carry/$lite0_name"; else echo "gpu-check: no $lite0; the --finetune call will fail" >&2; fi
  if [ ! -f "$finetune_carry/cifar10-1000.tar.gz" ]; then
    subset=target/gpu-check-build/finetune-subset
    rm -rf "$subset" && mkdir -p "$subset"
    tar -xzf "$archive" -C "$subset" --wildcards 'cifar10-jpg/train/*/00??.jpg' 'cifar10-jpg/test/*'
    tar -czf "$finetune_carry/cifar10-1000.tar.gz" -C "$subset" cifar10-jpg && rm -rf "$subset"
  fi
  du -sh "$carry" "$finetune_carry"
  echo "gpu-check: ready; carry $carry and run: bash scripts/gpu-check.sh"
  exit 0
fi

python="${PYTHON:-python3}"
device="${CONVKIT_GPU_CHECK_DEVICE:-cuda}"

if [ "${1:-}" = "--finetune" ]; then
  [ -f "$carry/node-env.tar.xz" ] && [ -f "$finetune_carry/$lite0_name" ] && [ -f "$finetune_carry/cifar10-1000.tar.gz" ] || {
    echo "gpu-check --finetune: carry $carry/node-env.tar.xz and $finetune_carry (bash scripts/gpu-check.sh --prepare makes both)" >&2
    exit 1
  }
  work="$(mktemp -d)"
  logs="${OUT:-$work}"
  trap 'rm -rf "$work"' EXIT
  echo "== machine ($(date +%T))"
  nvidia-smi -L 2>/dev/null || echo "nvidia-smi: not found"
  # The addon loads the Python torch's libtorch (the one it was linked against here is not there).
  torch_lib="$("$python" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')"
  export LD_LIBRARY_PATH="$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  tar -xJf "$carry/node-env.tar.xz"
  export PATH="$PWD/target/gpu-check-build/node-bin:$PATH" CONVKIT_PYTHON="$python" PYTHON="$python" CONVKIT_CACHE_DIR="$work/convkit-cache"
  node --version
  status=0
  echo "== zoo parity on $device: float64 against torchvision/timm, 1e-4 ($(date +%T))"
  timeout 240 node --import=tsx bench/zoo-parity.ts --device "$device" --json "$logs/zoo-parity.json" | tee "$logs/zoo-parity.txt" || status=1
  echo "== fine-tuning efficientnet_lite0 on 1 000 CIFAR-10 images on $device, ConvKit ($(date +%T))"
  tar -xzf "$finetune_carry/cifar10-1000.tar.gz" -C "$work"
  mkdir -p "$work/weights" && cp "$finetune_carry/$lite0_name" "$work/weights/"
  timeout 300 node --import=tsx bench/finetune.ts --device "$device" --data "$work/cifar10-jpg" --cache-dir "$work/weights" --skip-torch \
    ${CONVKIT_GPU_CHECK_FINETUNE_EPOCHS:+--epochs "$CONVKIT_GPU_CHECK_FINETUNE_EPOCHS"} ${CONVKIT_GPU_CHECK_FINETUNE_TEST:+--limit-test "$CONVKIT_GPU_CHECK_FINETUNE_TEST"} \
    | tee "$logs/finetune.txt" || status=1
  exit "$status"
fi
epochs="${CONVKIT_GPU_CHECK_EPOCHS:-10}"
work="$(mktemp -d)"
logs="${OUT:-$work}"
trap 'rm -rf "$work"' EXIT
[ -x "$carry/gpu_check" ] && [ -f "$carry/$archive_name" ] || {
  echo "gpu-check: $carry/gpu_check or $carry/$archive_name is missing; run 'bash scripts/gpu-check.sh --prepare' where Rust is, and carry $carry" >&2
  exit 1
}
deadline=$(( $(date +%s) + ${CONVKIT_GPU_CHECK_BUDGET_S:-540} ))
step() { echo "== $1 ($(date +%T))"; }
# within N: prints the seconds a step may take, N or what is left before the deadline (keeping 15 s for the
# summary); fails, after saying so, when under 20 s are left.
within() {
  local left=$(( deadline - $(date +%s) - 15 ))
  if [ "$left" -lt 20 ]; then echo "gpu-check: no time left before the deadline; skipped" >&2; return 1; fi
  echo $(( $1 < left ? $1 : left ))
}

step "machine"
nvidia-smi -L 2>/dev/null || echo "nvidia-smi: not found"
torch_lib="$("$python" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')"
"$python" -c 'import torch; print("python torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())'
# The binary was linked against libtorch 2.11.0 here; there it loads the Python torch's copy of the same.
export LD_LIBRARY_PATH="$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

step "data: extract and decode the JPEGs"
tar -xzf "$carry/$archive_name" -C "$work"
root="$(dirname "$(find "$work" -maxdepth 3 -type d -name train | head -1)")"
"$python" bench/decode_images.py --root "$root" --out "$work/raw" | tee "$logs/decode.jsonl"

step "ConvKit: $epochs epochs of the seed network, fp32"
t=$(within 200) && { timeout "$t" "$carry/gpu_check" --data "$work/raw" --epochs "$epochs" --device "$device" | tee "$logs/convkit.jsonl" \
  || echo "gpu-check: the seed-network run failed or ran out of time"; }

step "NCCL: a world-size-1 process group through ConvKit's c10d bridge"
if [ -x "$carry/nccl_check" ]; then
  t=$(within 60) && { timeout "$t" "$carry/nccl_check" "$((20000 + RANDOM % 20000))" | tee "$logs/nccl.json" || echo "gpu-check: the NCCL start-up failed"; }
else
  echo "gpu-check: $carry/nccl_check was not built by --prepare; skipped"
fi

if [ -f "$carry/node-env.tar.xz" ]; then
  step "Node: unpack node, the runtime dependencies, tsx and the addon into the checkout"
  tar -xJf "$carry/node-env.tar.xz"
  export PATH="$PWD/target/gpu-check-build/node-bin:$PATH" CONVKIT_PYTHON="$python" PYTHON="$python" CONVKIT_CACHE_DIR="$work/convkit-cache"
  node --version
  # airbench is pure Python and ships as an sdist: its package folder on PYTHONPATH is the whole install.
  if ls "$carry"/airbench-0.1.8.tar.gz >/dev/null 2>&1; then
    tar -xzf "$carry/airbench-0.1.8.tar.gz" -C "$work"
    export PYTHONPATH="$work/airbench-0.1.8${PYTHONPATH:+:$PYTHONPATH}"
  fi

  step "the airbench94 preset from TypeScript against airbench94's own code, same GPU, seeds 0 and 1"
  t=$(within 240) && { timeout "$t" node --import=tsx bench/airbench.ts --device "$device" --seeds 0,1 --archive "$carry/$archive_name" \
    --json "$logs/airbench.json" ${CONVKIT_GPU_CHECK_AIRBENCH_EPOCHS:+--epochs "$CONVKIT_GPU_CHECK_AIRBENCH_EPOCHS"} || echo "gpu-check: the airbench comparison failed or ran out of time"; }

  # ConvKit keeps CUDA activations contiguous until channels_last is measured faster there: this is that measurement.
  step "the airbench94 preset again with channels_last on CUDA (CONVKIT_CHANNELS_LAST=1), seed 0, ConvKit only"
  t=$(within 60) && { CONVKIT_CHANNELS_LAST=1 timeout "$t" node --import=tsx bench/airbench.ts --device "$device" --seeds 0 --skip-airbench \
    --archive "$carry/$archive_name" --json "$logs/airbench-channels-last.json" \
    ${CONVKIT_GPU_CHECK_AIRBENCH_EPOCHS:+--epochs "$CONVKIT_GPU_CHECK_AIRBENCH_EPOCHS"} || echo "gpu-check: the channels_last preset run failed or ran out of time"; }

  step "zoo networks: ConvKit's training step from TypeScript against PyTorch's, 224x224, batch 32"
  t=$(within 150) && { BENCH_DEVICE="$device" BENCH_ZOO_STEPS="${CONVKIT_GPU_CHECK_ZOO_STEPS:-20}" BENCH_ROUNDS=2 timeout "$t" node --import=tsx bench/zoo-step.ts \
    | tee "$logs/zoo-step.txt" || echo "gpu-check: the zoo step comparison failed or ran out of time"; }
else
  echo "gpu-check: $carry/node-env.tar.xz was not packed by --prepare; the TypeScript steps are skipped"
fi

step "ConvKit: 2 epochs in bf16"
t=$(within 60) && { timeout "$t" "$carry/gpu_check" --data "$work/raw" --epochs 2 --device "$device" --precision bf16 | tee "$logs/convkit-bf16.jsonl" \
  || echo "gpu-check: the bf16 run failed"; }

step "PyTorch: preloaded floor, fp32 and bf16 autocast"
t=$(within 60) && { timeout "$t" "$python" bench/pytorch_step.py --pixels "$work/raw/train.u8" --labels "$work/raw/train.labels" --device "$device" \
  --steps 390 --warmup 20 | tee "$logs/pytorch.json" || echo "gpu-check: the PyTorch floor failed"; }
t=$(within 60) && { timeout "$t" "$python" bench/pytorch_step.py --pixels "$work/raw/train.u8" --labels "$work/raw/train.labels" --device "$device" \
  --steps 390 --warmup 20 --bf16 | tee "$logs/pytorch-bf16.json" || echo "gpu-check: the PyTorch bf16 floor failed"; }

step "PyTorch: the seed's pipeline (ImageFolder, ToTensor, Normalize, DataLoader), one epoch"
workers=$(( $(nproc) > 8 ? 8 : $(nproc) ))
t=$(within 90) && { timeout "$t" "$python" bench/seed_pipeline.py --root "$root/train" --workers "$workers" --device "$device" | tee "$logs/seed.json" \
  || echo "gpu-check: the seed pipeline did not finish"; }

step "summary"
"$python" bench/gpu_summary.py --logs "$logs" --min-top1 70 ${OUT:+--out "$OUT/gpu-check.json"}
