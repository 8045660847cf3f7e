#!/usr/bin/env bash
# Forwarding benchmark, release builds on loopback: an edge (three `file`
# sources of simulator items → `sluice` sink) pushes to an aggregator
# (`sluice` source → blackhole), acknowledgements end to end. Beside it, in
# the same run and on the same files, one instance `file` → blackhole: the
# ratio is what the hop costs. Prints events/s, CPU microseconds per event on
# each side and peak RSS.
#
#   scripts/bench-forward.sh [EVENTS_PER_STREAM] [COMPRESSION]   (default 100000 and gzip; none, zstd)
#   CONCURRENCY=8 scripts/bench-forward.sh ...                       (the edge's request.concurrency, default 2)
#   SLUICE_BIN=path/to/other/sluice scripts/bench-forward.sh ...    (another build)
set -euo pipefail
cd "$(dirname "$0")/.."
per_stream=${1:-100000}
compression=${2:-gzip}
cargo build --release --locked --bin sluice >/dev/null
bin=${SLUICE_BIN:-target/release/sluice}
work=$(mktemp -d "${TMPDIR:-/tmp}/sluice-bench.XXXXXX")
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; rm -rf "$work"' EXIT
tick=$(getconf CLK_TCK)

# Realistic items of the three streams, from the simulator's generator.
target/release/sluice sim --listen 127.0.0.1:18181 --events "$per_stream" --rate 0 --no-rate-limit \
  --token-file "$work/op_token" 2>"$work/sim.log" & sim=$!
for _ in $(seq 300); do curl -fsS 127.0.0.1:18181/_sim/stats >/dev/null 2>&1 && break; sleep 0.1; done
curl -fsS 127.0.0.1:18181/_sim/items | python3 -c '
import json, sys
work = sys.argv[1]
for stream, items in json.load(sys.stdin).items():
    with open(f"{work}/{stream}.ndjson", "w") as f:
        for item in items.values():
            f.write(item + "\n")
' "$work"
kill "$sim"; wait "$sim" 2>/dev/null || true
total=$(cat "$work"/*.ndjson | wc -l)

sources() {
  for stream in signin_attempts item_usages audit_events; do
    echo "  $stream: {type: file, path: $work/$stream.ndjson, stream: $stream}"
  done
}
cpu_seconds() { awk -v t="$tick" '{print ($14 + $15) / t}' "/proc/$1/stat"; }

# One instance: file → blackhole.
{ echo "data_dir: $work/single"; echo "api: {enabled: false}"; echo "sources:"; sources
  echo "sinks:"; echo "  out: {type: blackhole, inputs: [signin_attempts, item_usages, audit_events]}"; } > "$work/single.yaml"
start=$(date +%s.%N)
/usr/bin/time -f "%e %U %S %M" -o "$work/single.time" "$bin" run "$work/single.yaml" 2>"$work/single.log"
single=$(python3 -c "import sys; print($(date +%s.%N) - $start)")

# Two tiers.
cat > "$work/aggregator.yaml" <<YML
data_dir: $work/agg
api: {address: 127.0.0.1:19599}
sources:
  edges: {type: sluice, address: 127.0.0.1:16600}
sinks:
  out: {type: blackhole, inputs: [edges]}
YML
{ echo "data_dir: $work/edge"; echo "api: {enabled: false}"; echo "sources:"; sources
  echo "sinks:"; echo "  forward: {type: sluice, inputs: [signin_attempts, item_usages, audit_events], endpoints: ['http://127.0.0.1:16600'], compression: $compression, request: {concurrency: ${CONCURRENCY:-2}}}"; } > "$work/edge.yaml"
"$bin" run "$work/aggregator.yaml" 2>"$work/agg.log" & agg=$!; pids+=($agg)
for _ in $(seq 100); do curl -fsS 127.0.0.1:19599/health >/dev/null 2>&1 && break; sleep 0.1; done
agg_before=$(cpu_seconds "$agg")
start=$(date +%s.%N)
/usr/bin/time -f "%e %U %S %M" -o "$work/edge.time" "$bin" run "$work/edge.yaml" 2>"$work/edge.log"
end=$(date +%s.%N)
agg_after=$(cpu_seconds "$agg")
agg_rss=$(awk '/VmHWM/ {print $2}' "/proc/$agg/status")
echo "aggregator RSS now: $(awk '/VmRSS/ {print $2}' "/proc/$agg/status") KiB" >&2
python3 - "$total" "$single" "$start" "$end" "$agg_before" "$agg_after" "$agg_rss" "$compression" \
  "$(cat "$work/single.time")" "$(cat "$work/edge.time")" <<'PY'
import sys
total, single, start, end, a0, a1, agg_rss, compression = sys.argv[1:9]
total, single = int(total), float(single)
seconds = float(end) - float(start)
_, su, ss, srss = sys.argv[9].split()
_, eu, es, erss = sys.argv[10].split()
edge_cpu, agg_cpu, single_cpu = float(eu) + float(es), float(a1) - float(a0), float(su) + float(ss)
print(f"{total} events, compression {compression}")
print(f"one instance, file → blackhole:       {total / single:>9,.0f} events/s, {single_cpu / total * 1e6:5.1f} µs CPU/event, peak RSS {int(srss) / 1024:.0f} MiB")
print(f"edge → aggregator → blackhole:         {total / seconds:>9,.0f} events/s ({single / seconds:.2f}× one instance)")
print(f"  edge:       {edge_cpu / total * 1e6:5.1f} µs CPU/event, peak RSS {int(erss) / 1024:.0f} MiB")
print(f"  aggregator: {agg_cpu / total * 1e6:5.1f} µs CPU/event, peak RSS {int(agg_rss) / 1024:.0f} MiB")
PY
