#!/usr/bin/env bash
# Issue 17's GPU measurements in one go (about 10 minutes on one H100/H200):
#   1. speed: the reference path against the fast path (`fast: true`'s settings: batch auto, the
#      fp16-mixed precision policy, channels_last, torch.compile) at 256 and 512, MR Sampler NFE
#      10 and 20 and posterior NFE 100, with the phases table (DA-CLIP, sampling, metrics);
#   2. the same at 256, NFE 10, without compiling (what compilation adds);
#   3. quality: every precision against float32 on the demo set (MR Sampler NFE 5/10/20,
#      posterior 100);
#   4. batch invariance: fp32 batch 4 against batch 1 through the evaluation (the default
#      `batch_size: auto` on CUDA rests on it).
# Writes <out>/{speed_256,speed_512,speed_eager,quality}.{json,md} and <out>/*.log, env.txt. Each
# step has a time limit (595 s in all) and a failed step does not stop the others.
#
#   bash scripts/gpu_check.sh [OUT_DIR]                  # default OUT_DIR: $OUT, else gpu_check/
#   GPU_CHECK_DRY_RUN=1 bash scripts/gpu_check.sh /tmp/x # tiny settings on the CPU: checks the script runs
set -uo pipefail
cd "$(dirname "$0")/.."
OUT_DIR="${1:-${OUT:-gpu_check}}"
mkdir -p "$OUT_DIR"
export PYTHONPATH="$PWD/universal-image-restoration${PYTHONPATH:+:$PYTHONPATH}"
QUALITY_RUNS='sweep.runs=[{sampler: mrsampler, nfe: [5, 10, 20]}, {sampler: posterior, nfe: 100}]'
if [[ -n "${GPU_CHECK_DRY_RUN:-}" ]]; then
    DEVICE=(--device cpu --threads 1)
    SPEED=(--network tiny --nfe 2 --posterior-nfe 2 --images 2 --ref-images 1 --batch-size 2 --precision fp16-mixed)
    SIZES=(32 48)
    EAGER=(--network tiny --sizes 32 --nfe 2 --posterior-nfe --images 2 --ref-images 1 --batch-size 2)
    QUALITY=(--images 1 --precision fp16-mixed)
    QUALITY_RUNS='sweep.runs=[{sampler: mrsampler, nfe: 2}]'
    BATCH=(--device cpu --images 2 --batch-size 2)
    LIMITS=(600 600 600 600 600)
else
    DEVICE=(--device cuda)
    SPEED=(--nfe 10 20 --posterior-nfe 100 --images 16 --ref-images 4 --batch-size auto --precision fp16-mixed
           --channels-last --compile)
    SIZES=(256 512)
    EAGER=(--sizes 256 --nfe 10 --posterior-nfe --images 16 --ref-images 4 --batch-size auto --precision fp16-mixed
           --channels-last --no-compile)
    QUALITY=(--precision all)
    BATCH=(--device cuda --images 4 --batch-size 4)
    LIMITS=(180 180 90 100 45)  # speed per size, eager, quality, batch invariance
fi

status=0
step() {  # step NAME SECONDS COMMAND...: run with a time limit, log to OUT_DIR/NAME.log, keep going on failure
    local name=$1 seconds=$2
    shift 2
    echo "== $name: $*"
    local start=$SECONDS
    timeout "$seconds" "$@" > "$OUT_DIR/$name.log" 2>&1
    local rc=$?
    echo "   exit $rc after $((SECONDS - start)) s (log: $OUT_DIR/$name.log)"
    [[ $rc -eq 0 || ($name == quality && $rc -eq 1) ]] || status=1
}

{ date -u; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null
  python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"; } > "$OUT_DIR/env.txt" 2>&1
for i in 0 1; do
    size=${SIZES[$i]}
    step "speed_$size" "${LIMITS[$i]}" python scripts/benchmark.py "${DEVICE[@]}" "${SPEED[@]}" --sizes "$size" \
        --out "$OUT_DIR/speed_$size.json" "$OUT_DIR/speed_$size.md"
done
step speed_eager "${LIMITS[2]}" python scripts/benchmark.py "${DEVICE[@]}" "${EAGER[@]}" \
    --out "$OUT_DIR/speed_eager.json" "$OUT_DIR/speed_eager.md"
step quality "${LIMITS[3]}" python scripts/benchmark.py --quality "${DEVICE[@]}" --options options/demo.yml "${QUALITY[@]}" \
    --set "$QUALITY_RUNS" --out "$OUT_DIR/quality.json" "$OUT_DIR/quality.md"
step batch_invariance "${LIMITS[4]}" python scripts/batch_invariance.py -opt options/demo.yml "${BATCH[@]}"
exit $status
