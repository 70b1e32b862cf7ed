#!/usr/bin/env bash
# Run several distill_paper.py jobs side by side (one GPU is launch-bound on these small networks, so
# concurrent processes use it better) and collect their JSON. Usage:
#   benchmarks/parallel.sh OUT_DIR MINUTES DEVICE "preset [KEY=VALUE ...]" "preset ..." ...
set -u
out=$1 minutes=$2 device=$3
shift 3
mkdir -p "$out"
i=0
for job in "$@"; do
    read -r preset extra <<<"$job"
    name="$(printf '%02d' $i)-$preset"
    # shellcheck disable=SC2086
    "${PYTHON:-python3}" benchmarks/distill_paper.py --presets "$preset" --minutes "$minutes" --device "$device" \
        --out "$out/runs/$name" --json "$out/$name.json" --set $extra >"$out/$name.log" 2>&1 &
    i=$((i + 1))
done
wait
cat "$out"/*.log | grep -v "^|" | grep -E "±|Error|error" || true
