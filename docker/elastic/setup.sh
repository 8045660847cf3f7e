#!/usr/bin/env bash
# One-shot setup of docker-compose.yml's Elasticsearch and Kibana, run by the
# `setup` service (the Elasticsearch image, which has curl):
#   1. the kibana_system password, so Kibana can start;
#   2. the role sluice needs and an API key with it, written to
#      /secrets/es_api_key for the sluice services;
#   3. Elastic's 1Password integration assets (dashboards, index templates,
#      ingest pipelines) through Kibana's Fleet API.
# Every step can run again (after `docker compose down` without -v, say).
set -euo pipefail
es=http://elasticsearch:9200
kibana=http://kibana:5601
auth=(-u "elastic:${ELASTIC_PASSWORD}")

say() { printf 'setup: %s\n' "$*"; }

say "waiting for Elasticsearch"
until curl -fsS "${auth[@]}" "$es/_cluster/health?wait_for_status=yellow&timeout=5s" >/dev/null; do sleep 2; done

say "kibana_system password"
curl -fsS "${auth[@]}" -H 'Content-Type: application/json' \
  -X POST "$es/_security/user/kibana_system/_password" \
  -d "{\"password\": \"${KIBANA_PASSWORD}\"}" >/dev/null

say "pipeline sluice-custom-hooks (runs users' @custom pipelines on sluice's documents)"
# hooks-pipeline-begin: the body sluice's elasticsearch sink installs itself
# when its key may (`manage_pipeline`); installed here so the key needs only
# read_pipeline. A unit test checks it is the same as crates/sink-elasticsearch/src/hooks.rs.
curl -fsS "${auth[@]}" -H 'Content-Type: application/json' \
  -X PUT "$es/_ingest/pipeline/sluice-custom-hooks" -d '{
  "description": "sluice: runs the @custom pipelines that the Elastic 1Password integration runs, on documents sluice mapped (ingest: sluice)",
  "version": 1,
  "_meta": {
    "managed_by": "sluice",
    "managed": true
  },
  "processors": [
    {
      "pipeline": {
        "name": "global@custom",
        "ignore_missing_pipeline": true
      }
    },
    {
      "pipeline": {
        "name": "{{{data_stream.type}}}@custom",
        "ignore_missing_pipeline": true
      }
    },
    {
      "pipeline": {
        "name": "{{{data_stream.type}}}-1password.integration@custom",
        "ignore_missing_pipeline": true
      }
    },
    {
      "pipeline": {
        "name": "{{{data_stream.type}}}-{{{data_stream.dataset}}}@custom",
        "ignore_missing_pipeline": true
      }
    }
  ]
}' >/dev/null
# hooks-pipeline-end

say "role sluice_writer and an API key for sluice"
# The privileges the README lists: create documents in (and auto-create)
# the 1Password data streams, read templates and pipelines for the preflight.
curl -fsS "${auth[@]}" -H 'Content-Type: application/json' \
  -X PUT "$es/_security/role/sluice_writer" -d '{
    "cluster": ["monitor", "read_pipeline"],
    "indices": [{"names": ["logs-1password.*-*"], "privileges": ["create_doc", "auto_configure"]}]
  }' >/dev/null
key=$(curl -fsS "${auth[@]}" -H 'Content-Type: application/json' \
  -X POST "$es/_security/api_key" -d '{
    "name": "sluice",
    "role_descriptors": {"sluice_writer": {
      "cluster": ["monitor", "read_pipeline"],
      "indices": [{"names": ["logs-1password.*-*"], "privileges": ["create_doc", "auto_configure"]}]
    }}
  }' | sed -n 's/.*"encoded":"\([^"]*\)".*/\1/p')
if [ -z "$key" ]; then
  say "could not create the API key" >&2
  exit 1
fi
umask 077
printf '%s\n' "$key" > /secrets/es_api_key.tmp
mv /secrets/es_api_key.tmp /secrets/es_api_key
chmod 0444 /secrets/es_api_key

say "waiting for Kibana"
until curl -fsS "${auth[@]}" "$kibana/api/status" 2>/dev/null | grep -q '"level":"available"'; do sleep 3; done

say "installing the 1Password integration's assets"
curl -fsS "${auth[@]}" -H 'kbn-xsrf: sluice' -X POST "$kibana/api/fleet/setup" >/dev/null
curl -fsS "${auth[@]}" -H 'kbn-xsrf: sluice' -H 'Content-Type: application/json' \
  -X POST "$kibana/api/fleet/epm/packages/1password" -d '{"force": true}' >/dev/null
say "done: Kibana → Dashboards → [1Password] …"
