#!/usr/bin/env bash
# The GPU check as one script for a lent GPU machine (no network, no Deno): run from the repository root there, with
# .gpu/ (bench/gpu_bundle.sh) and .gl/ (the Vulkan loader's Debian packages, bench/README.md "GPU") carried along.
# Everything it prints also goes to $OUT (default ./gpu-out), which the device tool brings back:
#   gpu.jsonl       bench/gpu.ts: adapter, throughput beside PyTorch (fp32 and TF32), kernel profile, surrogate rates
#   pretrain.log    a pretraining run on the GPU (deno task pretrain --backend webgpu), and its run folder's files
# Settings (environment): SECONDS_PER_BENCH (6), NETS (small,medium,large), SURROGATE_WORKERS (1,4,8,15),
# GPU_ARGS (more bench/gpu.ts flags), BENCH_LIMIT (330 s), PRETRAIN_ARGS (the pretraining run's flags),
# PRETRAIN_LIMIT (180 s), DENO (a Deno binary to use instead of .gpu/deno.tar.xz).
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
export DENO_WEBGPU_BACKEND=vulkan XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}
# The Python that holds CUDA-enabled torch there is the first on PATH, not necessarily /usr/bin/python3.
export EXEMPLAR_PYTHON=${EXEMPLAR_PYTHON:-$(command -v python3)}
if [ -z "${DENO:-}" ]; then
  mkdir -p /tmp/deno-bin && tar -xJf .gpu/deno.tar.xz -C /tmp/deno-bin && DENO=/tmp/deno-bin/deno
fi
{
  echo "== $(date -u +%FT%TZ) $(nproc) cores"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1
  echo "VK_DRIVER_FILES=${VK_DRIVER_FILES:-}"; [ -n "${VK_DRIVER_FILES:-}" ] && cat "$VK_DRIVER_FILES"
} 2>&1 | tee "$OUT/env.txt"
cores=$(nproc)
workers=$((cores > 2 ? cores - 1 : 2))
echo "== bench/gpu.ts"
timeout "${BENCH_LIMIT:-330}" "$DENO" run -A .gpu/gpu.js --seconds "${SECONDS_PER_BENCH:-6}" --nets "${NETS:-small,medium,large}" \
  --profile --surrogate "${SURROGATE_WORKERS:-1,4,8,15}" ${GPU_ARGS:-} 2>&1 | tee "$OUT/gpu.jsonl"
echo "== pretraining on the GPU"
rm -rf /tmp/gpu-run
# Stopped by SIGINT at its time limit, as Ctrl-C stops it: the checkpoint is written first.
timeout -s INT "${PRETRAIN_LIMIT:-180}" "$DENO" run -A .gpu/pretrain.js --out /tmp/gpu-run --backend webgpu --workers "$workers" \
  ${PRETRAIN_ARGS:---classes 400 --per-class 100 --steps 560 --valid-every 100} 2>&1 | tr '\r' '\n' |
  grep -v '^$' | tail -40 | tee "$OUT/pretrain.log"
for f in config.json metrics.jsonl checkpoint.ckpt seeds.json seeds.bin; do [ -f "/tmp/gpu-run/$f" ] && cp "/tmp/gpu-run/$f" "$OUT/"; done
ls -la "$OUT"
