#!/usr/bin/env bash
# The chaos suite (issues 13, 22): kill -9 at random moments of a backfill to
# Elasticsearch, an Elasticsearch outage, an Events API fault storm, 50
# reloads 0.2 s apart, a Splunk HEC whose indexers restart and lie; through
# the release binaries on loopback, printing lost and duplicate events per
# scenario. Exits 1 if any event was lost or doubled.
#
#   scripts/chaos.sh                       # 20 kill trials, a 300 s outage, the storms (~20 min)
#   scripts/chaos.sh --trials 50           # the full campaign
#   scripts/chaos.sh --trials 3 --outage-secs 20 --events-per-stream 5000   # a quick look
#   scripts/chaos.sh --only kill --seed 7  # one scenario, repeatable kill moments
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked --bin sluice >/dev/null
cargo build --release --locked -p sluice-testkit --bins >/dev/null
exec python3 scripts/chaos.py "$@"
