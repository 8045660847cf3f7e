#!/usr/bin/env bash
# Stamp out the edge for one more 1Password account:
#   ./add-account.sh <name> [<events host, default events.1password.com>]
# writes accounts/<name>/kustomization.yaml and lists it in kustomization.yaml.
set -euo pipefail
cd "$(dirname "$0")"
name="${1:?usage: $0 <name> [<events host>]}"
host="${2:-events.1password.com}"
if ! [[ "$name" =~ ^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$ ]]; then
  echo "error: <name> must be a DNS label (lowercase letters, digits, '-'), at most 32 characters" >&2
  exit 2
fi
if [ -e "accounts/$name" ]; then
  echo "error: accounts/$name exists" >&2
  exit 2
fi
mkdir -p "accounts/$name"
cat > "accounts/$name/kustomization.yaml" <<YAML
# The sluice edge of the 1Password account "$name": StatefulSet
# sluice-edge-$name, its token from the Secret sluice-op-token-$name (key token).
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - ../../edge
nameSuffix: -$name
labels:
  - pairs:
      sluice.dev/account: $name
    includeSelectors: true
patches:
  - patch: |-
      apiVersion: apps/v1
      kind: StatefulSet
      metadata:
        name: sluice-edge
      spec:
        template:
          spec:
            containers:
              - name: sluice
                env:
                  - name: OP_EVENTS_URL
                    value: https://$host
            volumes:
              - name: op-token
                secret:
                  secretName: sluice-op-token-$name
YAML
printf '  - accounts/%s\n' "$name" >> kustomization.yaml
echo "accounts/$name written; create its secret: kubectl -n sluice create secret generic sluice-op-token-$name --from-file=token=<file>"
