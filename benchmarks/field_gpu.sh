#!/usr/bin/env bash
# The field table on one GPU within one device command: the four cells distil side by side, one process each
# (these small networks leave a GPU launch-bound, so concurrent processes use it better), MINUTES each, then each
# trains its 5 evaluation networks (ConvNet-3, the field's recipe) on the GPU. KEY=VALUE settings after MINUTES
# override every cell's preset, e.g. the evaluation network's width and batched inits:
#   DATADISTILL_DATA=../shared/datasets benchmarks/field_gpu.sh runs/gpu 6 model=convnet inits_per_iteration=8 vmap_inits=true
# Every cell writes OUT/<cell>.json and OUT/<cell>.log; the sets land in OUT/runs/<cell>/. DEVICE=cpu runs the
# same on the CPU, and FIELD_ARGS passes more field_table.py options (a tiny check of the script:
# DEVICE=cpu FIELD_ARGS="--models 1 --epochs 2" benchmarks/field_gpu.sh /tmp/g 0.2 iterations=2 eval_every=2).
set -u
if [ $# -lt 2 ]; then
    echo "usage: benchmarks/field_gpu.sh OUT MINUTES [KEY=VALUE ...]" >&2
    exit 2
fi
out=$1 minutes=$2
shift 2
mkdir -p "$out"
for cell in mnist:10 mnist:1 fashion-mnist:10 fashion-mnist:1; do
    name=${cell/:/-}
    "${PYTHON:-python3}" benchmarks/field_table.py --cells "$cell" --minutes "$minutes" \
        --device "${DEVICE:-cuda}" --no-real --out "$out/runs" --json "$out/$name.json" \
        ${FIELD_ARGS:-} --set "$@" >"$out/$name.log" 2>&1 &
done
wait
grep -h -E "^\| (mnist|fashion)|rror" "$out"/*.log || true
