#!/usr/bin/env bash
# The GPU check as one script for a lent GPU machine (no network, no Deno): run from the repository root there, with
# .gpu/ (bench/gpu_bundle.sh) and .gl/ (the Vulkan loader's Debian packages, bench/README.md "GPU") carried along.
# Planned for about five minutes of an H200 (an estimate from the sizes of earlier runs: the script has not yet run
# on a GPU); every part has a time limit, together under the device tool's ten minutes a command. What it writes goes
# to $OUT (default ./gpu-out), which the device tool brings back:
#   env.txt        the GPU, its driver and the Vulkan driver file used
#   smi.csv        nvidia-smi every 250 ms for the whole run: clocks, power, temperature, utilisation
#   adapter.jsonl  the WebGPU adapter: its description, features and limits
#   gemm.jsonl     bench/gpu_gemm.ts: every product of the three networks at batch 128 with each kernel and tile
#                  (timestamp queries inside one pass), TFLOP/s and the difference from TensorFlow.js's cpu backend
#   steps.jsonl    bench/gpu.ts --seconds 3 on the three networks for each stage of the training step, one after
#                  another (a line {"stage": ...} before each):
#                    tfjs-matmul-theirs  TensorFlow.js records the step; dense products on TensorFlow.js's kernels
#                    tfjs                the same with every product on the project's kernels
#                    tfjs-deferred       and the sums read every 10 steps awaited only at the next read
#                    project-gemm1       the project's recorded step (lib/compute/webgpu_step.ts), first GEMM kernel,
#                                        reads as tfjs-deferred
#                    project             the same with the second GEMM kernel (the default)
#   trace.jsonl    100 traced steps of the medium network (bench/gpu_trace.ts; sums read once, after the 100th) for
#                  the project's step and TensorFlow.js's: per step bind groups, writes, submissions, reads, and time
#                  by WebGPU call
#   peer.jsonl     the same networks in PyTorch (bench/peers/torch_step.py) on CUDA, fp32 and TF32
#   pretrain.log, run-*.tar  with PRETRAIN=1 only: two pretraining runs and reproduce --scale release's estimate
# Settings (environment): SECONDS_PER_BENCH (3), NETS (small,medium,large), STAGES (all five), DENO (a Deno binary
# instead of .gpu/deno.tar.xz), PRETRAIN (1: also the pretraining runs; LONG_LIMIT, RELEASE_LIMIT their limits),
# SOFTWARE (1: accept the software adapter, to try the script on a machine without a GPU; shrinks every part).
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
deno_run=("$DENO" run -A --no-config --no-lock)
small=${SOFTWARE:+1}
[ -n "$small" ] && export EXEMPLAR_SOFTWARE_GPU=1
soft=${small:+--software-gpu}
secs=${SECONDS_PER_BENCH:-3}
nets=${NETS:-small,medium,large}
trace_net=medium trace=() slow=1
if [ -n "$small" ]; then
  # On the software adapter a step of even this network at batch 128 takes seconds: 3 traced steps, longer limits.
  secs=${SECONDS_PER_BENCH:-0.3} nets=${NETS:-4c5-4c5-8f} trace_net=4c5-4c5-8f slow=4
  trace=(--trace-steps 3 --trace-read-every 3)
fi

# Clocks and power every 250 ms, in the background, for the whole run.
# (Drivers that no longer know the throttle reasons' field name get the list without it.)
smi=
if command -v nvidia-smi >/dev/null; then
  fields=timestamp,clocks.sm,clocks.mem,clocks.max.sm,power.draw,power.limit,temperature.gpu,utilization.gpu,pstate
  nvidia-smi --query-gpu="$fields,clocks_throttle_reasons.active" --format=csv >/dev/null 2>&1 &&
    fields=$fields,clocks_throttle_reasons.active
  nvidia-smi --query-gpu="$fields" --format=csv -lms 250 >"$OUT/smi.csv" 2>&1 &
  smi=$!
fi
trap '[ -n "$smi" ] && kill "$smi" 2>/dev/null' EXIT
{
  echo "== $(date -u +%FT%TZ) $(nproc) cores"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1
  echo "VK_DRIVER_FILES=${VK_DRIVER_FILES:-}"
} 2>&1 | tee "$OUT/env.txt"
mark() { echo "{\"stage\":\"$1\",\"at\":\"$(date -u +%FT%T.%3NZ)\"}"; }

echo "== the adapter"
timeout 30 "${deno_run[@]}" .gpu/gpu.js $soft --skip-bench --no-peer 2>&1 | head -1 | tee "$OUT/adapter.jsonl"

echo "== bench/gpu_gemm.ts: every product, each kernel"
if [ -n "$small" ]; then
  timeout 600 "${deno_run[@]}" .gpu/gpu_gemm.js $soft --nets "$nets" --batch 4 --check-batch 2 --repeat 1
else
  timeout 110 "${deno_run[@]}" .gpu/gpu_gemm.js --nets medium,large,small --all-tiles --repeat 20
fi 2>&1 | tee "$OUT/gemm.jsonl"

echo "== bench/gpu.ts for each stage of the training step"
{
  for s in ${STAGES:-tfjs-matmul-theirs tfjs tfjs-deferred project-gemm1 project}; do
    mark "$s"
    kernels=Conv2D,Conv2DBackpropFilter,Conv2DBackpropInput,BatchMatMul step=$s reads=--deferred-reads
    case $s in
    tfjs-matmul-theirs) kernels=Conv2D,Conv2DBackpropFilter,Conv2DBackpropInput step=tfjs reads= ;;
    tfjs) reads= ;;
    tfjs-deferred) step=tfjs ;;
    project-gemm1 | project) ;;
    *)
      echo "{\"stage\":\"$s\",\"skipped\":\"unknown stage\"}"
      continue
      ;;
    esac
    EXEMPLAR_WEBGPU_STEP=$step EXEMPLAR_WEBGPU_KERNELS=$kernels timeout $((55 * slow)) "${deno_run[@]}" .gpu/gpu.js $soft \
      --no-peer --seconds "$secs" --nets "$nets" $reads
  done
} 2>&1 | grep -v '^ *$' | tee "$OUT/steps.jsonl"

echo "== traced steps of the $trace_net network, the project's step and TensorFlow.js's"
{
  for s in project tfjs; do
    mark "$s"
    EXEMPLAR_WEBGPU_STEP=$s timeout $((40 * slow)) "${deno_run[@]}" .gpu/gpu.js $soft --skip-bench --no-peer --trace \
      --nets "$trace_net" "${trace[@]}"
  done
} 2>&1 | grep -v '^ *$' | tee "$OUT/trace.jsonl"

echo "== PyTorch on CUDA, fp32 and TF32"
timeout 90 "${deno_run[@]}" .gpu/gpu.js $soft --peer-only --seconds "$secs" --nets "$nets" 2>&1 | grep -v '^ *$' |
  tee "$OUT/peer.jsonl"

if [ -n "${PRETRAIN:-}" ]; then
  workers=$(($(nproc) > 2 ? $(nproc) - 1 : 2))
  # A run folder's curves.html takes plotly.min.js from node_modules, which does not travel: the bundle carries it.
  if [ ! -f node_modules/plotly.js-dist-min/plotly.min.js ]; then
    mkdir -p node_modules/plotly.js-dist-min && cp .gpu/plotly.min.js node_modules/plotly.js-dist-min/
  fi
  pretrain() { # name, time limit, flags...
    local name=$1 limit=$2
    shift 2
    rm -rf "/tmp/$name"
    echo "== pretrain $name: $*"
    # Stopped by SIGINT at its time limit, as Ctrl-C stops it: the checkpoint is written first.
    timeout -s INT "$limit" "${deno_run[@]}" .gpu/pretrain.js --out "/tmp/$name" --backend webgpu \
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
    timeout -s INT "${RELEASE_LIMIT:-75}" "${deno_run[@]}" .gpu/reproduce.js --scale release \
      --data synthetic --classes 2000 --backend webgpu --workers "$workers" --out /tmp/release \
      ${small:+--net 8c5-8c5-16f --classes 50} 2>&1 | tr '\r' '\n' | grep -v '^$' |
      awk 'NR % 20 == 1 || /val|estimate|^[^p]/' | tail -30
  } 2>&1 | tee "$OUT/pretrain.log"
  # (Each file must stay under the device tool's 16 MB: seeds.bin is drawn again where a run is evaluated, with
  # deno task seeds; plotly.min.js is the chart library.)
  tar -cf "$OUT/run-default.tar" --exclude seeds.bin --exclude plotly.min.js -C /tmp run-default
  tar -cf "$OUT/run-long.tar" --exclude seeds.bin --exclude plotly.min.js -C /tmp run-long
fi
[ -n "$smi" ] && kill "$smi" 2>/dev/null
ls -la "$OUT"
