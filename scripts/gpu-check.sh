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
# JPEG DataLoader pipeline); and a 10-epoch run of the seed network, which must reach 70 % test top-1.
# The summary is printed last and written to $OUT/gpu-check.json when OUT is set. Exit status 1 when CUDA
# is missing or the accuracy falls short.
#
# Knobs for a dry run without a GPU: CONVKIT_GPU_CHECK_DEVICE=cpu, CONVKIT_GPU_CHECK_EPOCHS=1, PYTHON=...
set -euo pipefail
cd "$(dirname "$0")/.."
carry=target/gpu-check
archive_name=cifar10-jpg.tar.gz

if [ "${1:-}" = "--prepare" ]; then
  archive="${CONVKIT_CIFAR_ARCHIVE:-../shared/datasets/$archive_name}"
  [ -f "$archive" ] || { echo "gpu-check: no CIFAR-10 archive at $archive (set CONVKIT_CIFAR_ARCHIVE)" >&2; exit 1; }
  node scripts/cargo.mjs build --release --example gpu_check
  mkdir -p "$carry"
  cp "target/$(rustc -vV | sed -n 's/^host: //p')/release/examples/gpu_check" "$carry/gpu_check"
  cp "$archive" "$carry/$archive_name"
  du -sh "$carry"
  echo "gpu-check: ready; carry $carry and run: bash scripts/gpu-check.sh"
  exit 0
fi

python="${PYTHON:-python3}"
device="${CONVKIT_GPU_CHECK_DEVICE:-cuda}"
epochs="${CONVKIT_GPU_CHECK_EPOCHS:-10}"
work="$(mktemp -d)"
logs="${OUT:-$work}"
trap 'rm -rf "$work"' EXIT
[ -x "$carry/gpu_check" ] && [ -f "$carry/$archive_name" ] || {
  echo "gpu-check: $carry/gpu_check or $carry/$archive_name is missing; run 'bash scripts/gpu-check.sh --prepare' where Rust is, and carry $carry" >&2
  exit 1
}
step() { echo "== $1 ($(date +%T))"; }

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
timeout 300 "$carry/gpu_check" --data "$work/raw" --epochs "$epochs" --device "$device" | tee "$logs/convkit.jsonl"

step "ConvKit: 2 epochs in bf16"
timeout 90 "$carry/gpu_check" --data "$work/raw" --epochs 2 --device "$device" --precision bf16 | tee "$logs/convkit-bf16.jsonl" \
  || echo "gpu-check: the bf16 run failed"

step "PyTorch: preloaded floor, fp32 and bf16 autocast"
timeout 90 "$python" bench/pytorch_step.py --pixels "$work/raw/train.u8" --labels "$work/raw/train.labels" --device "$device" \
  --steps 390 --warmup 20 | tee "$logs/pytorch.json" || echo "gpu-check: the PyTorch floor failed"
timeout 90 "$python" bench/pytorch_step.py --pixels "$work/raw/train.u8" --labels "$work/raw/train.labels" --device "$device" \
  --steps 390 --warmup 20 --bf16 | tee "$logs/pytorch-bf16.json" || echo "gpu-check: the PyTorch bf16 floor failed"

step "PyTorch: the seed's pipeline (ImageFolder, ToTensor, Normalize, DataLoader), one epoch"
workers=$(( $(nproc) > 8 ? 8 : $(nproc) ))
timeout 120 "$python" bench/seed_pipeline.py --root "$root/train" --workers "$workers" --device "$device" | tee "$logs/seed.json" \
  || echo "gpu-check: the seed pipeline did not finish"

step "summary"
"$python" bench/gpu_summary.py --logs "$logs" --min-top1 70 ${OUT:+--out "$OUT/gpu-check.json"}
