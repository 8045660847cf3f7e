#!/usr/bin/env python3
"""The chaos suite: sluice's "nothing lost, nothing doubled" under kill -9,
an Elasticsearch outage, an Events API fault storm, a storm of reloads and
Splunk indexers that restart and lie, through the release binaries (sluice,
its simulator, the Elasticsearch and HEC emulators) on loopback. Run it
through scripts/chaos.sh, which builds them. Prints one table.

Every scenario counts, against the uuids the simulator shows at the end:
lost (an event with no document), duplicates (an event stored as more than
one document), and what else it measures (time to recover, checkpoint
movement while Elasticsearch is down, RSS before/during/after).
"""

import argparse
import contextlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("SLUICE_BIN", os.path.join(REPO, "target/release/sluice"))
ES_BIN = os.path.join(REPO, "target/release/sluice-es-emulator")
HEC_BIN = os.path.join(REPO, "target/release/sluice-hec-emulator")
HEC_TOKEN = "8f3c1b52-6a1e-4d8c-9a9b-0c1d2e3f4a5b"
STREAMS = ["signin_attempts", "item_usages", "audit_events"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method, url, body=None, timeout=10):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=timeout) as answer:
        text = answer.read()
        return json.loads(text) if text else None


def wait_until(check, timeout, every=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = check()
        except (OSError, ValueError):
            value = None
        if value:
            return value
        time.sleep(every)
    return None


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


class Processes:
    """Children started by a scenario, stopped when it ends."""

    def __init__(self, work):
        self.work = work
        self.children = []

    def start(self, args, log):
        child = subprocess.Popen(args, stdout=subprocess.DEVNULL,
                                 stderr=open(os.path.join(self.work, log), "ab"))
        self.children.append(child)
        return child

    def stop_all(self):
        for child in self.children:
            if child.poll() is None:
                child.kill()
                child.wait()


@contextlib.contextmanager
def scenario():
    """A work folder and the processes of one scenario, both gone after it."""
    work = tempfile.mkdtemp(prefix="sluice-chaos-")
    procs = Processes(work)
    try:
        yield procs
    finally:
        procs.stop_all()
        shutil.rmtree(work, ignore_errors=True)


def start_sim(procs, per_stream, extra=()):
    port = free_port()
    token = os.path.join(procs.work, "op_token")
    procs.start([BIN, "sim", "--listen", f"127.0.0.1:{port}", "--events", str(per_stream),
                 "--rate", "0", "--no-rate-limit", "--token-file", token, *extra], "sim.log")
    if not wait_until(lambda: os.path.exists(token) and http("GET", f"http://127.0.0.1:{port}/_sim/stats"), 30):
        with open(os.path.join(procs.work, "sim.log")) as log:
            sys.exit("the simulator did not start:\n" + log.read()[-2000:])
    return port


def start_es(procs):
    port = free_port()
    procs.start([ES_BIN, f"127.0.0.1:{port}"], "es.log")
    if not wait_until(lambda: http("GET", f"http://127.0.0.1:{port}/_testkit/stats"), 30):
        sys.exit("the Elasticsearch emulator did not start")
    return port


def write_config(work, sim_port, es_port, api_port, request_timeout=10):
    state = os.path.join(work, "state")
    config = f"""data_dir: {state}
api: {{address: '127.0.0.1:{api_port}'}}
sources:
  op: {{type: onepassword, url: 'http://127.0.0.1:{sim_port}', allow_custom_url: true,
        token_file: {os.path.join(work, "op_token")}, start_time: 2d, interval_secs: 1,
        retry_max_backoff_secs: 2, request_timeout_secs: {request_timeout}}}
transforms:
  ecs: {{type: vrl, inputs: [op], file: {os.path.join(REPO, "pipelines/vrl/ecs.vrl")}}}
sinks:
  es:
    type: elasticsearch
    inputs: [ecs]
    endpoints: ['http://127.0.0.1:{es_port}']
    request: {{retry_max_backoff_secs: 2}}
    dead_letter: {{path: {os.path.join(work, "rejected.ndjson")}}}
"""
    path = os.path.join(work, "sluice.yaml")
    with open(path, "w") as out:
        out.write(config)
    return path


def expected(sim_port):
    return {s: set(u) for s, u in http("GET", f"http://127.0.0.1:{sim_port}/_sim/uuids").items()}


def stored(es_port):
    return http("GET", f"http://127.0.0.1:{es_port}/_testkit/stats")["documents"]


def tally(sim_port, es_port, want):
    """lost, duplicates, other documents (pipeline errors), events, against
    `want` (the uuids visible when the run was complete)."""
    by_uuid = {}
    others = 0
    for pairs in http("GET", f"http://127.0.0.1:{es_port}/_testkit/ids", timeout=60).values():
        for _id, uuid in pairs:
            if uuid is None:
                others += 1
            else:
                by_uuid[uuid] = by_uuid.get(uuid, 0) + 1
    events = sum(len(u) for u in want.values())
    lost = sum(1 for uuids in want.values() for u in uuids if u not in by_uuid)
    duplicates = sum(n - 1 for n in by_uuid.values())
    return lost, duplicates, others, events


def complete(sim_port, es_port):
    """The uuids the simulator shows, once that many documents are stored
    and stay so for two polls of sluice (the simulator also makes late
    events visible as it goes, which sluice fetches at its next poll)."""
    want = expected(sim_port)
    if stored(es_port) < sum(len(u) for u in want.values()):
        return None
    time.sleep(2.5)
    again = expected(sim_port)
    if stored(es_port) < sum(len(u) for u in again.values()):
        return None
    return again


def run_sluice(procs, config, log):
    return procs.start([BIN, "run", config], log)


def stop_sluice(child):
    child.send_signal(signal.SIGTERM)
    try:
        return child.wait(timeout=90)
    except subprocess.TimeoutExpired:
        child.kill()
        return child.wait()


def checkpoints(work):
    folder = os.path.join(work, "state", "op")
    result = {}
    for stream in STREAMS:
        try:
            with open(os.path.join(folder, f"{stream}.json")) as f:
                result[stream] = json.load(f).get("cursor")
        except (OSError, ValueError):
            result[stream] = None
    return result


def kill_trials(args, rows):
    with scenario() as procs:
        work = procs.work
        sim = start_sim(procs, args.events_per_stream)
        lost_total = dup_total = 0
        recoveries = []
        for trial in range(args.trials):
            trial_dir = os.path.join(work, f"trial-{trial}")
            os.makedirs(trial_dir)
            shutil.copy(os.path.join(work, "op_token"), trial_dir)
            es = start_es(procs)
            config = write_config(trial_dir, sim, es, free_port())
            total = sum(len(u) for u in expected(sim).values())
            fraction = random.uniform(0.05, 0.95)
            first = run_sluice(procs, config, f"trial-{trial}-a.log")
            if not wait_until(lambda: stored(es) >= fraction * total, 300):
                sys.exit(f"trial {trial}: no progress")
            first.kill()
            first.wait()
            restarted = time.monotonic()
            second = run_sluice(procs, config, f"trial-{trial}-b.log")
            want = wait_until(lambda: complete(sim, es), 600, every=0.1)
            if not want:
                sys.exit(f"trial {trial}: did not finish after the restart (see {work})")
            recoveries.append(time.monotonic() - restarted - 2.5)
            code = stop_sluice(second)
            lost, duplicates, _, _ = tally(sim, es, want)
            lost_total += lost
            dup_total += duplicates
            print(f"  trial {trial + 1}/{args.trials}: killed at {fraction:.0%}, lost {lost}, "
                  f"duplicates {duplicates}, recovered in {recoveries[-1]:.1f} s, exit {code}",
                  file=sys.stderr)
        recoveries.sort()
        rows.append(("kill -9 during a backfill", f"{args.trials} trials", total, lost_total,
                     dup_total, f"recovery median {recoveries[len(recoveries) // 2]:.1f} s, "
                     f"max {recoveries[-1]:.1f} s"))


def outage(args, rows):
    with scenario() as procs:
        work = procs.work
        sim, es, _, _, total, child = start_backfill(procs, args, "outage.log", 0.2, "outage")
        before = rss_kib(child.pid)
        http("PUT", f"http://127.0.0.1:{es}/_testkit/fail_requests", {"status": 503})
        # Pages acknowledged just before may still commit; then nothing may.
        time.sleep(3)
        held = checkpoints(work)
        peak = 0
        moved = 0
        deadline = time.monotonic() + args.outage_secs
        while time.monotonic() < deadline:
            peak = max(peak, rss_kib(child.pid) or 0)
            if checkpoints(work) != held:
                moved += 1
                held = checkpoints(work)
            time.sleep(1)
        http("PUT", f"http://127.0.0.1:{es}/_testkit/fail_requests", {"status": None})
        resumed = time.monotonic()
        want = wait_until(lambda: complete(sim, es), 600, every=0.1)
        if not want:
            sys.exit(f"outage: did not finish after Elasticsearch came back (see {work})")
        recovery = time.monotonic() - resumed - 2.5
        after = rss_kib(child.pid)
        stop_sluice(child)
        lost, duplicates, _, _ = tally(sim, es, want)
        rows.append((f"Elasticsearch answering 503 for {args.outage_secs} s", "1 run", total, lost,
                     duplicates, f"checkpoint moves while down {moved}; RSS before/peak/after "
                     f"{before // 1024}/{peak // 1024}/{(after or 0) // 1024} MiB; "
                     f"finished {recovery:.1f} s after"))


def fault_storm(args, rows):
    with scenario() as procs:
        work = procs.work
        # (An item with a number out of range, 1e400, is not in the storm: the
        # simulator cannot serve one. crates/source-onepassword/tests/
        # hostile_api.rs sends it from a stub server instead.)
        sim = start_sim(procs, args.events_per_stream, ["--seed", "7"])
        http("PUT", f"http://127.0.0.1:{sim}/_sim/faults",
             {"error_rate": 0.1, "malformed_rate": 0.05, "reset_rate": 0.05, "slow_rate": 0.05,
              "slow_ms": 500, "empty_page_rate": 0.05})
        burst = [{"kind": "status", "status": 429}] * 20 + [{"kind": "status", "status": 401}]
        http("POST", f"http://127.0.0.1:{sim}/_sim/faults/next", burst)
        es = start_es(procs)
        config = write_config(work, sim, es, free_port())
        total = sum(len(u) for u in expected(sim).values())
        started = time.monotonic()
        child = run_sluice(procs, config, "storm.log")
        want = wait_until(lambda: complete(sim, es), 900, every=0.2)
        if not want:
            sys.exit(f"fault storm: did not finish (see {work})")
        took = time.monotonic() - started - 2.5
        stop_sluice(child)
        lost, duplicates, others, _ = tally(sim, es, want)
        requests = http("GET", f"http://127.0.0.1:{sim}/_sim/stats")["requests"]
        rows.append(("API fault storm: 10% 5xx, 5% malformed, 5% resets, 5% slow, 5% empty pages, 20 x 429, a 401",
                     "1 run", total, lost, duplicates,
                     f"{others} pipeline_error document(s); finished in {took:.1f} s; {requests} API requests"))


def health_of(api):
    """`ok`, or the status and the unhealthy components /health names."""
    try:
        return http("GET", f"http://127.0.0.1:{api}/health")["status"]
    except urllib.error.HTTPError as answer:
        report = json.loads(answer.read() or b"{}")
        return f"{report.get('status', answer.code)} ({', '.join(report.get('unhealthy', {}))})"
    except (OSError, ValueError):
        return "unanswered"


def start_backfill(procs, args, log, fraction, name):
    """The simulator, the Elasticsearch emulator and sluice between them,
    once `fraction` of the backfill is stored: (sim, es, api port, config,
    events, the sluice process)."""
    sim = start_sim(procs, args.events_per_stream)
    es = start_es(procs)
    api = free_port()
    config = write_config(procs.work, sim, es, api)
    total = sum(len(u) for u in expected(sim).values())
    child = run_sluice(procs, config, log)
    if not wait_until(lambda: stored(es) >= fraction * total, 300):
        sys.exit(f"{name}: no progress")
    return sim, es, api, config, total, child


def reload_storm(args, rows):
    """SIGHUPs 0.2 s apart, each changing the source, mid-backfill (review
    C1: two reloads while a replaced source drained lost every later event)."""
    with scenario() as procs:
        work = procs.work
        sim, es, api, _, total, child = start_backfill(procs, args, "reload.log", 0.05, "reload storm")
        for n in range(args.reloads):
            write_config(work, sim, es, api, request_timeout=10 + (n + 1) % 2)
            child.send_signal(signal.SIGHUP)
            time.sleep(0.2)
        want = wait_until(lambda: complete(sim, es), 600, every=0.1)
        health = health_of(api)
        alive = child.poll() is None
        stop_sluice(child)
        if not want:
            # Not complete: count what is missing rather than stop, so the
            # table shows the loss.
            want = expected(sim)
        lost, duplicates, _, _ = tally(sim, es, want)
        with open(os.path.join(work, "reload.log")) as log:
            text = log.read()
        reloads = text.count("config reloaded")
        for line in text.splitlines():
            if " ERROR " in line:
                print(f"  reload storm: {line[:400]}", file=sys.stderr)
        rows.append((f"{args.reloads} SIGHUPs 0.2 s apart changing the source, mid-backfill",
                     "1 run", total, lost, duplicates,
                     f"{reloads} reloads applied; process {'up' if alive else 'DOWN'}; "
                     f"/health {health} at the end"))


def disk_full(args, rows):
    """data_dir on a small tmpfs, filled mid-backfill, then freed (review C4:
    a checkpoint that could not be written ended the process). Needs to mount
    a tmpfs (root); skipped with a notice otherwise."""
    with scenario() as procs:
        work = procs.work
        state = os.path.join(work, "state")
        os.makedirs(state)
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", state],
                                 capture_output=True)
        if mounted.returncode != 0:
            print(f"  disk full: skipped, cannot mount a tmpfs ({mounted.stderr.decode().strip()})",
                  file=sys.stderr)
            return
        try:
            sim, es, api, _, total, child = start_backfill(procs, args, "disk.log", 0.2, "disk full")
            filler = os.path.join(state, "filler")
            with contextlib.suppress(OSError), open(filler, "wb", buffering=0) as out:
                while True:
                    out.write(b"\0" * 65536)

            def unhealthy():
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{api}/health", timeout=5)
                    return None
                except urllib.error.HTTPError as answer:
                    report = json.loads(answer.read())
                    names = [k for k in report.get("unhealthy", {}) if k.endswith(".checkpoint")]
                    return names or None

            names = wait_until(unhealthy, 60, every=0.5)
            time.sleep(5)
            alive_while_full = child.poll() is None
            os.remove(filler)
            freed = time.monotonic()
            want = wait_until(lambda: complete(sim, es), 600, every=0.1)
            took = time.monotonic() - freed - 2.5
            # A stream retries its checkpoint write every 1-5 s: give it that.
            health = wait_until(lambda: health_of(api) == "ok" and "ok", 30) or health_of(api)
            stop_sluice(child)
            lost, duplicates, _, _ = tally(sim, es, want or expected(sim))
            rows.append(("data_dir full mid-backfill, then freed", "1 run", total, lost, duplicates,
                         f"/health named {', '.join(names or ['nothing'])}; process "
                         f"{'up' if alive_while_full else 'DOWN'} while full; "
                         f"{'finished' if want else 'NOT finished'} {took:.1f} s after; "
                         f"/health {health} after"))
        finally:
            procs.stop_all()
            subprocess.run(["umount", "-l", state], capture_output=True)


def start_hec(procs, ack_delay_ms):
    port = free_port()
    procs.start([HEC_BIN, f"127.0.0.1:{port}", HEC_TOKEN, str(ack_delay_ms)], "hec.log")
    if not wait_until(lambda: http("GET", f"http://127.0.0.1:{port}/_testkit/stats"), 30):
        sys.exit("the HEC emulator did not start")
    return port


def hec_storm(args, rows):
    """A backfill into a HEC whose indexers restart (pending acks and
    unindexed events gone, ids from 0 again), behind a proxy that answers a
    200 HTML page, with /ack answering code 14 now and then (review C2, C3).
    Duplicates are allowed (HEC has no ids); losses are not."""
    with scenario() as procs:
        work = procs.work
        sim = start_sim(procs, args.events_per_stream)
        hec = start_hec(procs, 200)
        token = os.path.join(work, "hec_token")
        with open(token, "w") as out:
            out.write(HEC_TOKEN)
        state = os.path.join(work, "state")
        config = os.path.join(work, "sluice.yaml")
        with open(config, "w") as out:
            out.write(f"""data_dir: {state}
api: {{address: '127.0.0.1:{free_port()}'}}
sources:
  op: {{type: onepassword, url: 'http://127.0.0.1:{sim}', allow_custom_url: true,
        token_file: {os.path.join(work, "op_token")}, start_time: 2d, interval_secs: 1}}
sinks:
  splunk:
    type: splunk_hec
    inputs: [op]
    endpoint: 'http://127.0.0.1:{hec}'
    token_file: {token}
    request: {{retry_max_backoff_secs: 2}}
    acknowledgements: {{poll_interval_secs: 0.1, timeout_secs: 10}}
""")
        total = sum(len(u) for u in expected(sim).values())
        base = f"http://127.0.0.1:{hec}"
        indexed = lambda: http("GET", f"{base}/_testkit/stats")["events"]
        child = run_sluice(procs, config, "hec.log")
        for fraction in (0.15, 0.4, 0.65):
            if not wait_until(lambda: indexed() >= fraction * total, 600):
                sys.exit(f"HEC storm: no progress (see {work})")
            http("POST", f"{base}/_testkit/restart", {})
            http("POST", f"{base}/_testkit/faults", {"html": 3, "ack_disabled": 5, "busy": 2})

        def caught_up():
            want = expected(sim)
            seen = set(u for u in http("GET", f"{base}/_testkit/uuids", timeout=60) if u)
            return want if all(u in seen for uuids in want.values() for u in uuids) else None

        started = time.monotonic()
        want = wait_until(caught_up, 600, every=0.5) or expected(sim)
        took = time.monotonic() - started
        stop_sluice(child)
        counts = {}
        for uuid in http("GET", f"{base}/_testkit/uuids", timeout=60):
            if uuid:
                counts[uuid] = counts.get(uuid, 0) + 1
        lost = sum(1 for uuids in want.values() for u in uuids if u not in counts)
        duplicates = sum(n - 1 for n in counts.values())
        stats = http("GET", f"{base}/_testkit/stats")
        rows.append(("Splunk HEC: 3 indexer restarts, 200 HTML pages, /ack code 14, 503s",
                     "1 run", total, lost, 0,
                     f"{duplicates} duplicates (allowed: HEC has no ids); {stats['events_lost']} "
                     f"events the restarts lost, all resent; caught up {took:.1f} s after the last fault"))


# Each scenario by its --only name, in the order a default run takes them.
SCENARIOS = {"kill": kill_trials, "outage": outage, "storm": fault_storm,
             "reload": reload_storm, "hec": hec_storm, "disk": disk_full}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=20, help="kill -9 trials (default 20; 50 for the full campaign)")
    parser.add_argument("--outage-secs", type=int, default=300, help="Elasticsearch outage length (default 300)")
    parser.add_argument("--events-per-stream", type=int, default=33334, help="backfill size per stream (default 33334: about 100,000 events)")
    parser.add_argument("--reloads", type=int, default=50, help="SIGHUPs in the reload storm (default 50)")
    parser.add_argument("--only", choices=list(SCENARIOS), action="append", help="run only these scenarios")
    parser.add_argument("--seed", type=int, default=None, help="seed of the kill moments")
    args = parser.parse_args()
    random.seed(args.seed)
    scenarios = [name for name in SCENARIOS if not args.only or name in args.only]
    rows = []
    for name in scenarios:
        SCENARIOS[name](args, rows)
    header = ("scenario", "runs", "events", "lost", "duplicates", "measured")
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    line = lambda r: " | ".join(str(v).ljust(w) for v, w in zip(r, widths))
    print(line(header))
    print("-+-".join("-" * w for w in widths))
    for row in rows:
        print(line(row))
    failed = any(r[3] or r[4] for r in rows)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
