#!/usr/bin/env bash
# Re-derives, from the libtorch binary itself, the facts crates/core/cpp/c10d_bridge.cpp relies on. Run it after
# any libtorch upgrade: the bridge refuses other torch versions until its size asserts are updated.
#  1. sizeof(ProcessGroupGloo) and sizeof(ProcessGroupGloo::Options) as libtorch allocates them (the operator new
#     size right before the constructor call in ProcessGroupGloo::split and Options::create_default);
#  2. every c10d/gloo symbol the bridge (with sync_batch_norm.cpp) calls is exported by libtorch_cpu.so;
#  3. the bridge defines no gloo vtable or typeinfo (one would interpose libtorch's own through ELF lookup).
# Usage: bash scripts/check-c10d-abi.sh [libtorch root]  (default: the provisioned ~/.cache/convkit/torch-2.11.0/torch)
set -euo pipefail
cd "$(dirname "$0")/.."
root=${1:-${LIBTORCH:-$HOME/.cache/convkit/torch-2.11.0/torch}}
LIB=$root/lib/libtorch_cpu.so
src=crates/core/cpp/c10d_bridge.cpp
[ -f "$LIB" ] || { echo "check-c10d-abi: no $LIB (pass the libtorch root)" >&2; exit 1; }
new_size() { # mangled-name prefix -> the first operator-new size in that function
  local addr size
  read -r addr size < <(nm -D --defined-only -S "$LIB" | awk -v s="$1" 'index($4, s) == 1 && !n++ {print $1, $2}')
  objdump -d --no-show-raw-insn --start-address=0x$addr --stop-address=$(printf '0x%x' $((0x$addr + 0x$size))) "$LIB" \
    | awk 'done { next }  # read to the end: an early exit would SIGPIPE objdump under pipefail
           match($0, /mov +\$0x[0-9a-f]+,%edi/) { last = substr($0, RSTART, RLENGTH) }
           /<_Znwm@plt>/ { gsub(/mov +\$|,%edi/, "", last); print last; done = 1 }'
}
pg=$(new_size _ZN4c10d16ProcessGroupGloo5split)
opt=$(new_size _ZN4c10d16ProcessGroupGloo7Options14create_default)
echo "libtorch allocates ProcessGroupGloo: $pg bytes, ProcessGroupGloo::Options: $opt bytes"
if grep -q "sizeof(c10d::ProcessGroupGloo) == $pg" "$src" && grep -q "sizeof(c10d::ProcessGroupGloo::Options) == $opt" "$src"; then
  echo "  matches the static_asserts in $src"
else
  echo "  MISMATCH with the static_asserts in $src"; exit 1
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
g++ -std=c++17 -O2 -fPIC -D_GLIBCXX_USE_CXX11_ABI=1 -DUSE_C10D_GLOO -DCK_C10D_SIZES_VERIFIED -I crates/core/cpp/gloo_decl \
  -isystem "$root/include" -isystem "$root/include/torch/csrc/api/include" -c "$src" -o "$work/bridge.o"
g++ -std=c++17 -O2 -fPIC -D_GLIBCXX_USE_CXX11_ABI=1 -DUSE_C10D_GLOO -I crates/core/cpp/gloo_decl \
  -isystem "$root/include" -isystem "$root/include/torch/csrc/api/include" -c crates/core/cpp/sync_batch_norm.cpp -o "$work/sync.o"
nm -D --defined-only "$LIB" | awk '{print $3}' > "$work/exports"
missing=0
for s in $(nm --undefined-only "$work/bridge.o" "$work/sync.o" | awk 'NF == 2 {print $2}' | grep -E '4c10d|4gloo' | grep -v '^_ZN7ck_c10d' | sort -u); do  # ck_c10d:: is ours
  grep -qxF "$s" "$work/exports" || { echo "  not exported by libtorch_cpu: $(echo "$s" | c++filt)"; missing=1; }
done
[ $missing = 0 ] && echo "every c10d/gloo symbol the bridge calls is exported by libtorch_cpu.so"
if nm -C --defined-only "$work/bridge.o" "$work/sync.o" | grep -E '(vtable|typeinfo|VTT) for (gloo::|c10d::ProcessGroupGloo::GlooStore)'; then
  echo "the bridge emits gloo vtables or typeinfo: NOT OK"; exit 1
fi
echo "the bridge defines no gloo vtable or typeinfo"
[ $missing = 0 ]
