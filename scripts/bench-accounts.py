#!/usr/bin/env python3
"""Many 1Password accounts in one sluice process, from a cold start with a
backlog: peak and steady RSS, open files, the time until every stream of
every account has caught up, and the size of /metrics.

One `sluice sim` (no rate limit, --events per stream) stands in for the
accounts; N tokens minted from it feed N `onepassword` sources, which feed
one vrl transform (pipelines/vrl/ecs.vrl) and a blackhole sink, as
../shared/reviews/scale-2026-12.md measured at 8bbc07f. The soft open-file
limit of sluice is set to --nofile (default 1024, a common host default).

  scripts/bench-accounts.py [--accounts 500] [--events 1000] [--sluice BIN] [--nofile 1024] [--vrl FILE]
                            [--refuse N] [--revoke N]

--refuse N gives N accounts a token the API refuses at start, --revoke N
revokes N more once everything caught up: the others must be delivered in
full, /health must name the failing ones, and sluice must keep running.

An older build must be given its own commit's mapping (--vrl), or it aborts
every event on functions it lacks.

Prints one line of figures; compare two builds by running it with each
--sluice on the same machine.
"""

import argparse
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url, data=None):
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        return answer.read()


def status(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def wait(predicate, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    sys.exit(f"bench-accounts: timed out waiting for {what}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--accounts", type=int, default=500)
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--sluice", default=os.path.join(REPO, "target/release/sluice"))
    parser.add_argument("--nofile", type=int, default=1024)
    parser.add_argument("--hard", action="store_true",
                        help="set the hard open-file limit to --nofile too (no room to raise)")
    parser.add_argument("--idle-secs", type=int, default=20)
    parser.add_argument("--refuse", type=int, default=0,
                        help="this many accounts get a token the API refuses at start")
    parser.add_argument("--revoke", type=int, default=0,
                        help="this many more have their token revoked once all caught up")
    parser.add_argument("--vrl", default=os.path.join(REPO, "pipelines/vrl/ecs.vrl"),
                        help="the mapping (an older build needs its own commit's)")
    args = parser.parse_args()
    args.sluice = os.path.abspath(args.sluice)

    work = tempfile.mkdtemp(prefix="sluice-accounts-")
    procs = []
    try:
        sim_port = free_port()
        sim = subprocess.Popen(
            [args.sluice, "sim", "--listen", f"127.0.0.1:{sim_port}", "--events", str(args.events),
             "--rate", "0", "--no-rate-limit"],
            stdout=subprocess.DEVNULL, stderr=open(f"{work}/sim.log", "w"))
        procs.append(sim)
        base = f"http://127.0.0.1:{sim_port}"
        wait(lambda: _try(lambda: get(f"{base}/_sim/stats")), 30, "the simulator")
        visible = sum(len(v) for v in json.loads(get(f"{base}/_sim/uuids")).values())
        features = json.dumps({"features": ["signinattempts", "itemusages", "auditevents"]}).encode()
        lines = ["data_dir: state", f"api: {{address: 127.0.0.1:{free_port()}}}", "sources:"]
        subs = []
        for n in range(args.accounts):
            minted = json.loads(get(f"{base}/_sim/tokens", features))
            token = minted["token"] + ("x" if n < args.refuse else "")
            subs.append(minted["sub"])
            with open(f"{work}/token{n}", "w") as f:
                f.write(token + "\n")
            lines.append(f"  op{n:03d}: {{type: onepassword, url: '{base}', allow_custom_url: true, token_file: token{n}, interval_secs: 10}}")
        ids = ", ".join(f"op{n:03d}" for n in range(args.accounts))
        lines += ["transforms:", f"  ecs: {{type: vrl, inputs: [{ids}], file: ecs.vrl}}",
                  "sinks:", "  out: {type: blackhole, inputs: [ecs]}",
                  "  failed: {type: blackhole, inputs: [ecs.dropped]}"]
        with open(f"{work}/sluice.yaml", "w") as f:
            f.write("\n".join(lines) + "\n")
        shutil.copy(args.vrl, f"{work}/ecs.vrl")
        api = int(lines[1].split(":")[-1].rstrip("}"))

        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        soft = min(args.nofile, hard)
        limit = (soft, soft if args.hard else hard)
        start = time.time()
        sluice = subprocess.Popen(
            [args.sluice, "run", "sluice.yaml"], cwd=work, stdout=subprocess.DEVNULL,
            stderr=open(f"{work}/sluice.log", "w"),
            preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, limit))
        procs.append(sluice)
        want = visible * (args.accounts - args.refuse)

        def caught_up():
            if sluice.poll() is not None:
                with open(f"{work}/sluice.log") as log:
                    tail = log.readlines()[-3:]
                sys.exit(f"bench-accounts: sluice exited {sluice.returncode}:\n" + "".join(tail))
            total = 0
            for n in range(args.accounts):
                for stream in ("signin_attempts", "item_usages", "audit_events"):
                    try:
                        with open(f"{work}/state/op{n:03d}/{stream}.json") as f:
                            total += json.load(f).get("events", 0)
                    except (OSError, ValueError):
                        pass
            return total >= want

        wait(caught_up, 1800, "every stream to catch up")
        catch_up = time.time() - start
        revoked = list(range(args.refuse, args.refuse + args.revoke))
        for n in revoked:
            get(f"{base}/_sim/revoke", json.dumps({"sub": subs[n]}).encode())
        failing = set(range(args.refuse)) | set(revoked)

        def named():
            try:
                body = urllib.request.urlopen(f"http://127.0.0.1:{api}/health", timeout=10).read()
            except urllib.error.HTTPError as answer:
                body = answer.read()
            unhealthy = json.loads(body).get("unhealthy", {})
            ids = {int(key.split(".")[0][2:]) for key in unhealthy}
            return ids if ids >= failing else None

        health_named = len(wait(named, 300, "/health to name the failing accounts")) if failing else 0
        if sluice.poll() is not None:
            sys.exit("bench-accounts: sluice stopped")
        time.sleep(args.idle_secs)
        steady = status(sluice.pid, "VmRSS")
        peak = status(sluice.pid, "VmHWM")
        files = len(os.listdir(f"/proc/{sluice.pid}/fd"))
        metrics = get(f"http://127.0.0.1:{api}/metrics")
        series = sum(1 for l in metrics.decode().splitlines() if l and not l.startswith("#"))
        print(f"accounts={args.accounts} events={want} nofile={limit[0]}/{limit[1]} caught_up_s={catch_up:.1f} "
              f"peak_rss_mib={peak / 1024:.0f} steady_rss_mib={steady / 1024:.0f} open_files={files} "
              f"metrics_bytes={len(metrics)} metrics_series={series} refused={args.refuse} "
              f"revoked={args.revoke} health_named={health_named} still_running={sluice.poll() is None}")
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(work, ignore_errors=True)


def _try(f):
    try:
        return f()
    except OSError:
        return None


if __name__ == "__main__":
    main()
