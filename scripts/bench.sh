#!/usr/bin/env bash
# Throughput and memory benchmark (release builds, loopback), on N raw
# 1Password items of the three streams made by the simulator's generator
# (copies of 100,000 generated items with fresh uuids past that):
#   floor:          serde_json parse + serialize per line, one core, same items
#   blackhole:      file → vrl (pipelines/vrl/ecs.vrl) → blackhole
#   elasticsearch:  file → vrl → elasticsearch → an Elasticsearch `_bulk` endpoint (the
#                   emulator's --answer-only mode; acks on) that answers at once, 50 ms
#                   and 200 ms late (--latency-ms: a cluster that indexes for real), with
#                   `compression: none` (Vector's default); and with gzip (sluice's
#                   default) at once. "/ 0 ms" is the rate over the same run at once.
#   idle:           RSS of a running sluice with nothing to do
#   backfill:       sluice sim with the real rate limits (600 requests/min, 30,000/h),
#                   pages of 100 → onepassword → blackhole: requests per minute against
#                   the 600 allowed, and the 429 answers sluice drew (should be 0)
#   event latency:  events injected one by one into sluice sim at random gaps (0.1-3 s),
#                   default settings, onepassword → ecs → elasticsearch (20 ms late):
#                   p50/p99 from injection to the bulk endpoint, requests per minute
# Prints events/s, CPU seconds per 1,000 events, peak RSS and the ratio to the floor.
# The run lasts about 8 minutes for 1,000,000 events (the backfill takes 90 s, the
# event latency 60 s).
#
#   scripts/bench.sh [EVENTS]                       (default 1000000)
#   SLUICE_BIN=path/to/other/sluice scripts/bench.sh ...   (compare another build on the same items)
#   SLUICE_VRL_CONCURRENCY=1 scripts/bench.sh ...          (the transform's workers; default: the cores)
#   SLUICE_BENCH_BACKFILL=0 scripts/bench.sh ...           (skip the rate-limited backfill)
#   SLUICE_BENCH_EVENT_LATENCY=0 scripts/bench.sh ...      (skip the event latency)
#   SLUICE_BENCH_LATENCIES="0 50" scripts/bench.sh ...     (the bulk endpoint's delays, ms)
set -euo pipefail
cd "$(dirname "$0")/.."
events=${1:-1000000}
cargo build --release --locked --bin sluice >/dev/null
cargo build --release --locked -p sluice-testkit --bins >/dev/null
bin=${SLUICE_BIN:-target/release/sluice}
work=$(mktemp -d "${TMPDIR:-/tmp}/sluice-bench.XXXXXX")
pids=()
keep=0
trap 'kill "${pids[@]}" 2>/dev/null || true; [ "$keep" = 1 ] || rm -rf "$work"' EXIT
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
emulator() {  # $1: port, $2: latency in ms; starts an answer-only bulk endpoint
  target/release/sluice-es-emulator --answer-only --latency-ms "${2:-0}" "127.0.0.1:$1" 2>"$work/es-$1.log" & pids+=($!)
  for _ in $(seq 100); do curl -fsS "127.0.0.1:$1/_testkit/stats" >/dev/null 2>&1 && break; sleep 0.1; done
}
documents() {  # $1: port
  curl -fsS "127.0.0.1:$1/_testkit/stats" | python3 -c "import json,sys; print(json.load(sys.stdin)['documents'])"
}
# The bulk endpoint answering at once, then as late as a cluster that indexes
# for real (tens to hundreds of ms a bulk): `compression: none`, as Vector's
# default, so the rows compare with it; then gzip, sluice's default, at once.
latencies=${SLUICE_BENCH_LATENCIES:-0 50 200}
es_rows=""
port=19201
for ms in $latencies; do
  emulator "$port" "$ms"
  config "es-$ms" "{type: elasticsearch, inputs: [ecs], endpoints: [http://127.0.0.1:$port], compression: none}"
  row=$(measure "es-$ms")
  es_rows="$es_rows$ms $row $(documents "$port");"
  port=$((port + 1))
done
emulator "$port" 0
config gzip "{type: elasticsearch, inputs: [ecs], endpoints: [http://127.0.0.1:$port]}"
gzip=$(measure gzip)
stored_gzip=$(documents "$port")

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
kill "$idle"

# Backfill against the real rate limits: 25,000 events per stream in pages of
# 100 need 750 requests, more than a minute's 600.
backfill="skipped"
if [ "${SLUICE_BENCH_BACKFILL:-1}" != 0 ]; then
  target/release/sluice sim --listen 127.0.0.1:18183 --events 25000 --rate 0 \
    --token-file "$work/bf_token" 2>"$work/bf-sim.log" & pids+=($!)
  for _ in $(seq 300); do curl -fsS 127.0.0.1:18183/_sim/stats >/dev/null 2>&1 && break; sleep 0.1; done
  visible=$(curl -fsS 127.0.0.1:18183/_sim/stats | python3 -c 'import json,sys; print(sum(json.load(sys.stdin)["visible_events"].values()))')
  cat > "$work/backfill.yaml" <<YML
data_dir: $work/state-backfill
api: {address: 127.0.0.1:19603}
sources:
  op: {type: onepassword, url: http://127.0.0.1:18183, allow_custom_url: true, token_file: bf_token, limit: 100, start_time: 2d}
sinks:
  out: {type: blackhole, inputs: [op]}
YML
  "$bin" run "$work/backfill.yaml" 2>"$work/backfill.log" & bf=$!; pids+=($bf)
  started=$(date +%s.%N)
  for _ in $(seq 3000); do
    done_events=$( (curl -fsS 127.0.0.1:19603/metrics 2>/dev/null || true) | awk '/^sluice_onepassword_events_total/ {n += $2} END {print n + 0}')
    [ "$done_events" -ge "$visible" ] && break
    sleep 0.1
  done
  ended=$(date +%s.%N)
  requests=$(curl -fsS 127.0.0.1:19603/metrics | awk '/^sluice_onepassword_requests_total/ {print}')
  kill "$bf"; wait "$bf" 2>/dev/null || true
  backfill=$(python3 - "$started" "$ended" "$done_events" "$requests" <<'PY2'
import re, sys
started, ended, events, lines = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
by_status = {}
for line in lines.splitlines():
    status = re.search(r'status="(\d+)"', line)
    if status:
        by_status[status.group(1)] = by_status.get(status.group(1), 0) + float(line.split()[-1])
seconds = ended - started
answered = sum(by_status.values())
# Under a sliding window of 600 a minute, R requests need at least
# 60 * floor((R - 1) / 600) seconds: how close the backfill came to that.
shortest = 60 * ((int(answered) - 1) // 600)
print(f"{events:,} events in {seconds:.1f} s with {answered:.0f} requests; the limits allow no less than "
      f"{shortest} s: {shortest / seconds:.1%} of the ceiling; 429 answers: {by_status.get('429', 0):.0f}")
PY2
)
fi

# Latency at the default settings: events injected one by one into `sluice
# sim` (its real rate limits) at random gaps, as an account produces them;
# each is timed from the injection until the bulk endpoint holds it.
latency="skipped"
if [ "${SLUICE_BENCH_EVENT_LATENCY:-1}" != 0 ]; then
  target/release/sluice sim --listen 127.0.0.1:18184 --events 0 --rate 0 \
    --token-file "$work/lat_token" 2>"$work/lat-sim.log" & pids+=($!)
  for _ in $(seq 300); do curl -fsS 127.0.0.1:18184/_sim/stats >/dev/null 2>&1 && break; sleep 0.1; done
  port=$((port + 1)); emulator "$port" 20
  cat > "$work/latency.yaml" <<YML
data_dir: $work/state-latency
api: {address: 127.0.0.1:19604}
sources:
  op: {type: onepassword, url: http://127.0.0.1:18184, allow_custom_url: true, token_file: lat_token, start_time: 1h}
transforms:
  ecs: {type: vrl, inputs: [op], file: vrl/ecs.vrl}
sinks:
  out: {type: elasticsearch, inputs: [ecs], endpoints: [http://127.0.0.1:$port]}
YML
  "$bin" run "$work/latency.yaml" 2>"$work/latency.log" & lat=$!; pids+=($lat)
  for _ in $(seq 100); do curl -fsS 127.0.0.1:19604/health >/dev/null 2>&1 && break; sleep 0.1; done
  latency=$(python3 - "$port" "${SLUICE_BENCH_LATENCY_EVENTS:-40}" <<'PY3'
import json, random, sys, time, urllib.request
port, count = int(sys.argv[1]), int(sys.argv[2])
def documents():
    return json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/_testkit/stats"))["documents"]
def requests():
    text = urllib.request.urlopen("http://127.0.0.1:19604/metrics").read().decode()
    return sum(float(l.split()[-1]) for l in text.splitlines() if l.startswith("sluice_onepassword_requests_total"))
random.seed(7)
streams = ["signin_attempts", "item_usages", "audit_events"]
seen, waits = documents(), []
first_requests, started = requests(), time.monotonic()
for n in range(count):
    time.sleep(random.uniform(0.1, 3.0))
    body = json.dumps({"stream": streams[n % 3]}).encode()
    urllib.request.urlopen(urllib.request.Request("http://127.0.0.1:18184/_sim/events", body, {"Content-Type": "application/json"}))
    injected = time.monotonic()
    while documents() <= seen:
        time.sleep(0.005)
    waits.append(time.monotonic() - injected)
    seen += 1
per_minute = (requests() - first_requests) / (time.monotonic() - started) * 60
waits.sort()
p = lambda q: waits[min(len(waits) - 1, int(q * len(waits)))]
print(f"{count} events injected one by one: p50 {p(0.5):.2f} s, p99 {p(0.99):.2f} s, max {waits[-1]:.2f} s; "
      f"{per_minute:.0f} requests/min for the account (600 allowed)")
PY3
)
  kill "$lat"; wait "$lat" 2>/dev/null || true
fi

python3 - "$total" "$bytes" "$idle_kib" "$floor" "$blackhole" "$es_rows" "$gzip" "$stored_gzip" "$backfill" "$latency" <<'PY' || keep=1
import sys
total, size, idle = (int(x) for x in sys.argv[1:4])
_, _, floor = (float(x) for x in sys.argv[4].split())
es_rows = [row.split() for row in sys.argv[6].split(";") if row.strip()]
stored_gzip, backfill, latency = int(sys.argv[8]), sys.argv[9], sys.argv[10]
print(f"{total:,} events ({size / total:.0f} bytes each on average); floor (serde_json parse + serialize, one core): {floor:,.0f} lines/s")
print(f"{'pipeline':<44} {'events/s':>10} {'CPU s/1000 ev':>14} {'peak RSS':>10} {'/ floor':>8} {'/ 0 ms':>7}")
def line(name, row, base=None):
    seconds, cpu, peak = (float(x) for x in row)
    rate = total / seconds
    tolerance = f"{rate / base:>7.2f}" if base else f"{'':>7}"
    print(f"{name:<44} {rate:>10,.0f} {cpu / total * 1000:>14.4f} {peak / 1024:>7.0f} MiB {rate / floor:>8.3f} {tolerance}")
    return rate
line("file → ecs.vrl → blackhole", sys.argv[5].split())
base, lost = None, []
for ms, seconds, cpu, peak, stored in es_rows:
    rate = line(f"file → ecs.vrl → elasticsearch, {ms} ms late", (seconds, cpu, peak), base)
    if ms == "0":
        base = rate
    if int(stored) != total:
        lost.append((ms, stored))
line("  the same with gzip, at once", sys.argv[7].split())
print(f"idle RSS: {idle / 1024:.1f} MiB")
print(f"backfill through sluice sim with its rate limits: {backfill}")
print(f"event latency at the default settings: {latency}")
if stored_gzip != total:
    lost.append(("gzip", stored_gzip))
for ms, count in lost:
    print(f"the bulk endpoint of the {ms} run holds {count} documents for {total} events; the logs are kept in the work folder")
sys.exit(1 if lost else 0)
PY
