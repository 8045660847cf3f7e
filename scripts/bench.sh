#!/usr/bin/env bash
# Throughput and memory benchmark (release builds, loopback), on N raw
# 1Password items of the three streams made by the simulator's generator
# (copies of 100,000 generated items with fresh uuids past that):
#   floor:          serde_json parse + serialize per line, one core, same items
#   blackhole:      file → vrl (pipelines/vrl/ecs.vrl) → blackhole
#   elasticsearch:  file → vrl → elasticsearch → the Elasticsearch emulator (acks on)
#   idle:           RSS of a running sluice with nothing to do
# Prints events/s, CPU seconds per 1,000 events, peak RSS and the ratio to the floor.
#
#   scripts/bench.sh [EVENTS]                       (default 1000000)
#   SLUICE_BIN=path/to/other/sluice scripts/bench.sh ...   (compare another build on the same items)
#   SLUICE_VRL_CONCURRENCY=1 scripts/bench.sh ...          (the transform's workers; default: the cores)
set -euo pipefail
cd "$(dirname "$0")/.."
events=${1:-1000000}
cargo build --release --locked --bin sluice >/dev/null
cargo build --release --locked -p sluice-testkit --bins >/dev/null
bin=${SLUICE_BIN:-target/release/sluice}
work=$(mktemp -d "${TMPDIR:-/tmp}/sluice-bench.XXXXXX")
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; rm -rf "$work"' EXIT
per_stream=$(( (events + 2) / 3 ))
generated=$(( per_stream < 33334 ? per_stream : 33334 ))

target/release/sluice sim --listen 127.0.0.1:18182 --events "$generated" --rate 0 --no-rate-limit \
  --token-file "$work/op_token" 2>"$work/sim.log" & sim=$!
for _ in $(seq 300); do curl -fsS 127.0.0.1:18182/_sim/stats >/dev/null 2>&1 && break; sleep 0.1; done
curl -fsS 127.0.0.1:18182/_sim/items | python3 -c '
import json, sys
work, per_stream = sys.argv[1], int(sys.argv[2])
for stream, items in json.load(sys.stdin).items():
    items = list(items.values())
    with open(f"{work}/{stream}.ndjson", "w") as f:
        for n in range(per_stream):
            item, copy = items[n % len(items)], n // len(items)
            if copy:
                parsed = json.loads(item)
                parsed["uuid"] = parsed["uuid"][:-4] + f"{copy:04d}"
                item = json.dumps(parsed, separators=(",", ":"), ensure_ascii=False)
            f.write(item + "\n")
' "$work" "$per_stream"
kill "$sim"; wait "$sim" 2>/dev/null || true
files=("$work/signin_attempts.ndjson" "$work/item_usages.ndjson" "$work/audit_events.ndjson")
total=$(cat "${files[@]}" | wc -l)
bytes=$(cat "${files[@]}" | wc -c)
mkdir -p "$work/vrl" && cp pipelines/vrl/ecs.vrl "$work/vrl/"
concurrency=${SLUICE_VRL_CONCURRENCY:+, concurrency: $SLUICE_VRL_CONCURRENCY}

config() {  # $1: name, $2: sink yaml
  { echo "data_dir: $work/state-$1"; echo "api: {enabled: false}"; echo "sources:"
    for stream in signin_attempts item_usages audit_events; do
      echo "  $stream: {type: file, path: $work/$stream.ndjson, stream: $stream}"
    done
    echo "transforms:"
    echo "  ecs: {type: vrl, inputs: [signin_attempts, item_usages, audit_events], file: vrl/ecs.vrl$concurrency}"
    echo "sinks:"; echo "  out: $2"; } > "$work/$1.yaml"
}
measure() {  # $1: name; prints "seconds cpu_seconds peak_kib"
  local start end
  start=$(date +%s.%N)
  /usr/bin/time -f "%U %S %M" -o "$work/$1.time" "$bin" run "$work/$1.yaml" 2>"$work/$1.log" >/dev/null
  end=$(date +%s.%N)
  read -r user sys peak < "$work/$1.time"
  python3 -c "print($end - $start, $user + $sys, $peak)"
}

floor=$(target/release/sluice-json-floor "${files[@]}")
config blackhole "{type: blackhole, inputs: [ecs]}"
blackhole=$(measure blackhole)
target/release/sluice-es-emulator 127.0.0.1:19201 2>"$work/es.log" & pids+=($!)
for _ in $(seq 100); do curl -fsS 127.0.0.1:19201/_testkit/stats >/dev/null 2>&1 && break; sleep 0.1; done
config elasticsearch "{type: elasticsearch, inputs: [ecs], endpoints: [http://127.0.0.1:19201]}"
elasticsearch=$(measure elasticsearch)
stored=$(curl -fsS 127.0.0.1:19201/_testkit/stats | python3 -c "import json,sys; print(json.load(sys.stdin)['documents'])")

# Idle: a follow-mode file source on an empty file, nothing to do.
: > "$work/empty.ndjson"
cat > "$work/idle.yaml" <<YML
data_dir: $work/state-idle
api: {address: 127.0.0.1:19602}
sources:
  in: {type: file, path: $work/empty.ndjson, stream: item_usages, mode: follow}
sinks:
  out: {type: blackhole, inputs: [in]}
YML
"$bin" run "$work/idle.yaml" 2>"$work/idle.log" & idle=$!; pids+=($idle)
for _ in $(seq 100); do curl -fsS 127.0.0.1:19602/health >/dev/null 2>&1 && break; sleep 0.1; done
curl -fsS 127.0.0.1:19602/metrics >/dev/null
idle_kib=$(awk '/VmRSS/ {print $2}' "/proc/$idle/status")

python3 - "$total" "$bytes" "$stored" "$idle_kib" "$floor" "$blackhole" "$elasticsearch" <<'PY'
import sys
total, size, stored, idle = (int(x) for x in sys.argv[1:5])
_, _, floor = (float(x) for x in sys.argv[5].split())
print(f"{total:,} events ({size / total:.0f} bytes each on average); floor (serde_json parse + serialize, one core): {floor:,.0f} lines/s")
print(f"{'pipeline':<34} {'events/s':>10} {'CPU s/1000 ev':>14} {'peak RSS':>10} {'/ floor':>8}")
for name, row in (("file → ecs.vrl → blackhole", sys.argv[6]), ("file → ecs.vrl → elasticsearch", sys.argv[7])):
    seconds, cpu, peak = (float(x) for x in row.split())
    rate = total / seconds
    print(f"{name:<34} {rate:>10,.0f} {cpu / total * 1000:>14.4f} {peak / 1024:>7.0f} MiB {rate / floor:>8.3f}")
print(f"idle RSS: {idle / 1024:.1f} MiB; documents in the emulator: {stored:,}")
if stored != total:
    sys.exit(f"the emulator holds {stored} documents for {total} events")
PY
