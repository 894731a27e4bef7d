#!/usr/bin/env bash
# The GPU check as one script for a lent GPU machine (no network, no Deno): run from the repository root there, with
# .gpu/ (bench/gpu_bundle.sh) and .gl/ (the Vulkan loader's Debian packages, bench/README.md "GPU") carried along.
# What it writes goes to $OUT (default ./gpu-out), which the device tool brings back:
#   env.txt             the GPU, its driver and the Vulkan driver file used
#   gpu.jsonl           bench/gpu.ts with the default kernels (all four of ours): adapter, throughput beside PyTorch (fp32, TF32),
#                       the kernel profile of a training step, what a step costs outside the kernels (--latency)
#                       and in which WebGPU calls (--trace)
#   gpu_variants.jsonl  the same throughput with TensorFlow.js's own kernels only, with only our filter gradient, and with
#                       TensorFlow.js's own uploads (EXEMPLAR_WEBGPU_UPLOAD=mapped)
#   pretrain.log        two pretraining runs on the GPU; reproduce --scale release's duration estimate and the speed
#                       its run then reaches
#   run-default.tar     the first run's folder: the default scale of `deno task reproduce` (N 400, K 100, 560 steps)
#   run-long.tar        the second run's folder (both without seeds.bin, drawn again where they are evaluated)
# Settings (environment): SECONDS_PER_BENCH (3), NETS (small,medium,large), SURROGATE_WORKERS (none),
# LONG_LIMIT (75 s of the second run), RELEASE_LIMIT (75 s of the release run), DENO (a Deno binary instead of
# .gpu/deno.tar.xz), SOFTWARE (1: accept the software adapter, to try the script on a machine without a GPU; also
# shrinks every part).
set -uo pipefail
OUT=${OUT:-$PWD/gpu-out}
mkdir -p "$OUT"
if [ -d .gl ] && ! /sbin/ldconfig -p | grep -q libvulkan.so.1; then
  for f in .gl/*.deb; do dpkg -x "$f" /; done
  /sbin/ldconfig
fi
# NVIDIA's Vulkan driver, named directly (its ICD file may be missed where the loader searches).
for d in /usr/local/nvidia/share/vulkan/icd.d /usr/share/vulkan/icd.d /etc/vulkan/icd.d; do
  [ -f "$d/nvidia_icd.json" ] && export VK_DRIVER_FILES=$d/nvidia_icd.json && break
done
export DENO_WEBGPU_BACKEND=vulkan XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp} NO_COLOR=1
# The Python that holds CUDA-enabled torch there is the first on PATH, not necessarily /usr/bin/python3.
export EXEMPLAR_PYTHON=${EXEMPLAR_PYTHON:-$(command -v python3)}
if [ -z "${DENO:-}" ]; then
  mkdir -p /tmp/deno-bin && tar -xJf .gpu/deno.tar.xz -C /tmp/deno-bin && DENO=/tmp/deno-bin/deno
fi
# Every Deno command runs with --no-config --no-lock: the bundles need nothing from deno.json (with it, Deno would try
# to install the npm packages named there, and the machine has no network).
# A run folder's curves.html takes plotly.min.js from node_modules, which does not travel: the bundle carries it.
if [ ! -f node_modules/plotly.js-dist-min/plotly.min.js ]; then
  mkdir -p node_modules/plotly.js-dist-min && cp .gpu/plotly.min.js node_modules/plotly.js-dist-min/
fi
small=${SOFTWARE:+1}
[ -n "$small" ] && export EXEMPLAR_SOFTWARE_GPU=1
{
  echo "== $(date -u +%FT%TZ) $(nproc) cores"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1
  echo "VK_DRIVER_FILES=${VK_DRIVER_FILES:-}"
} 2>&1 | tee "$OUT/env.txt"
workers=$(($(nproc) > 2 ? $(nproc) - 1 : 2))
secs=${SECONDS_PER_BENCH:-3}
nets=${NETS:-small,medium,large}

echo "== bench/gpu.ts, the default kernels"
# (--latency makes 80 training steps: minutes on the software adapter, where it is left out.)
timeout 270 "$DENO" run -A --no-config --no-lock .gpu/gpu.js --seconds "$secs" --nets "$nets" --profile \
  $([ -z "$small" ] && echo --latency --trace) \
  ${SURROGATE_WORKERS:+--surrogate "$SURROGATE_WORKERS"} 2>&1 | tee "$OUT/gpu.jsonl"
echo "== bench/gpu.ts, TensorFlow.js's own kernels only; only our filter gradient; TensorFlow.js's own (mapped) uploads"
{
  for k in off Conv2DBackpropFilter; do
    EXEMPLAR_WEBGPU_KERNELS=$k timeout 90 "$DENO" run -A --no-config --no-lock .gpu/gpu.js --seconds "$secs" \
      --nets "$nets" --no-peer
  done
  EXEMPLAR_WEBGPU_UPLOAD=mapped timeout 90 "$DENO" run -A --no-config --no-lock .gpu/gpu.js --seconds "$secs" \
    --nets "$nets" --no-peer
} 2>&1 | tee "$OUT/gpu_variants.jsonl"

pretrain() { # name, time limit, flags...
  local name=$1 limit=$2
  shift 2
  rm -rf "/tmp/$name"
  echo "== pretrain $name: $*"
  # Stopped by SIGINT at its time limit, as Ctrl-C stops it: the checkpoint is written first.
  timeout -s INT "$limit" "$DENO" run -A --no-config --no-lock .gpu/pretrain.js --out "/tmp/$name" --backend webgpu \
    --workers "$workers" "$@" 2>&1 | tr '\r' '\n' | grep -v '^$' | awk 'NR % 5 == 1 || /step [0-9]+0 .*val|^[^p]/' | tail -60
}
{
  if [ -n "$small" ]; then
    pretrain run-default 120 --net 8c5-8c5-16f --classes 20 --per-class 10 --steps 20 --valid-every 10
    pretrain run-long 30 --net 8c5-8c5-16f --classes 30 --per-class inf --steps 100000 --valid-every 10
  else
    pretrain run-default 120 --classes 400 --per-class 100 --steps 560 --valid-every 100
    pretrain run-long "${LONG_LIMIT:-75}" --classes 2000 --per-class inf --steps 100000 --valid-every 500
  fi
  # (N = 2000: the synthetic data holds 2000 unlabeled images, and the release draws one seed per image.)
  echo "== reproduce --scale release --classes 2000: the duration estimate, then the run's own speed"
  timeout -s INT "${RELEASE_LIMIT:-75}" "$DENO" run -A --no-config --no-lock .gpu/reproduce.js --scale release \
    --data synthetic --classes 2000 --backend webgpu --workers "$workers" --out /tmp/release \
    ${small:+--net 8c5-8c5-16f --classes 50} 2>&1 | tr '\r' '\n' | grep -v '^$' |
    awk 'NR % 20 == 1 || /val|estimate|^[^p]/' | tail -30
} 2>&1 | tee "$OUT/pretrain.log"
# (Each file must stay under the device tool's 16 MB: seeds.bin is drawn again where a run is evaluated, with
# deno task seeds; plotly.min.js is the chart library.)
tar -cf "$OUT/run-default.tar" --exclude seeds.bin --exclude plotly.min.js -C /tmp run-default
tar -cf "$OUT/run-long.tar" --exclude seeds.bin --exclude plotly.min.js -C /tmp run-long
ls -la "$OUT"
