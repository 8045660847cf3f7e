#!/usr/bin/env bash
# End-to-end benchmark, all release builds on loopback: `sluice sim` (N
# events per stream, no rate limit) → onepassword source → either
#   elasticsearch: ECS mapping → elasticsearch sink → the Elasticsearch emulator, or
#   splunk:        splunk_hec sink (raw items, indexer acks on) → the HEC emulator.
# Prints events/s and sluice's peak RSS.
#
#   scripts/bench-e2e.sh [elasticsearch|splunk] [EVENTS_PER_STREAM]   (default 33334: about 100,000 events)
#   SLUICE_BIN=path/to/other/sluice scripts/bench-e2e.sh ...            (compare another build in the same run)
set -euo pipefail
cd "$(dirname "$0")/.."
sink=${1:-elasticsearch}
per_stream=${2:-33334}
cargo build --release --locked --bin sluice >/dev/null
cargo build --release --locked -p sluice-testkit --bins >/dev/null
bin=${SLUICE_BIN:-target/release/sluice}
work=$(mktemp -d "${TMPDIR:-/tmp}/sluice-bench.XXXXXX")
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; rm -rf "$work"' EXIT
target/release/sluice sim --listen 127.0.0.1:18180 --events "$per_stream" --rate 0 --no-rate-limit \
  --token-file "$work/op_token" 2>"$work/sim.log" & pids+=($!)
case "$sink" in
  elasticsearch) target/release/sluice-es-emulator 127.0.0.1:19200 2>"$work/es.log" & pids+=($!); count=documents ;;
  splunk) target/release/sluice-hec-emulator 127.0.0.1:19200 bench-token 2>"$work/hec.log" & pids+=($!); count=events ;;
  *) echo "unknown sink $sink (elasticsearch or splunk)" >&2; exit 2 ;;
esac
for _ in $(seq 100); do [ -s "$work/op_token" ] && curl -fsS 127.0.0.1:19200/_testkit/stats >/dev/null 2>&1 && break; sleep 0.1; done
total=$(curl -fsS 127.0.0.1:18180/_sim/stats | python3 -c 'import json,sys; print(sum(json.load(sys.stdin)["visible_events"].values()))')
mkdir -p "$work/vrl" && cp pipelines/vrl/ecs.vrl "$work/vrl/"
cat > "$work/sluice.yaml" <<YML
data_dir: $work/state
api: {address: 127.0.0.1:19598}
sources:
  op: {type: onepassword, url: http://127.0.0.1:18180, allow_custom_url: true, token_file: $work/op_token, start_time: 2d}
YML
if [ "$sink" = elasticsearch ]; then cat >> "$work/sluice.yaml" <<YML
transforms:
  ecs: {type: vrl, inputs: [op], file: vrl/ecs.vrl}
sinks:
  es: {type: elasticsearch, inputs: [ecs], endpoints: [http://127.0.0.1:19200]}
YML
else cat >> "$work/sluice.yaml" <<YML
sinks:
  splunk: {type: splunk_hec, inputs: [op], endpoint: http://127.0.0.1:19200, token: bench-token, acknowledgements: {poll_interval_secs: 0.1}}
YML
fi
start=$(date +%s.%N)
/usr/bin/time -v "$bin" run "$work/sluice.yaml" 2>"$work/sluice.log" >/dev/null & pids+=($!)
time_pid=$!
while :; do
  stored=$(curl -fsS 127.0.0.1:19200/_testkit/stats | python3 -c "import json,sys; print(json.load(sys.stdin)['$count'])")
  [ "$stored" -ge "$total" ] && break
  sleep 0.2
done
end=$(date +%s.%N)
pkill -TERM -f "^$bin run $work/sluice.yaml" || true
wait "$time_pid" || true
rss=$(grep "Maximum resident set size" "$work/sluice.log" | awk '{print $NF}')
python3 - "$total" "$start" "$end" "$rss" <<'PY'
import sys
total, start, end, rss = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
seconds = end - start
print(f"{total} events in {seconds:.2f} s: {total / seconds:,.0f} events/s end to end; peak RSS {rss / 1024:.1f} MiB")
PY
