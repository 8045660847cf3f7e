#!/usr/bin/env bash
# Build (and optionally push) sluice's container image, tagged with the
# workspace version, the tag deploy/kubernetes pins (a test keeps them equal).
#
#   scripts/image.sh                                   # ghcr.io/sluice-dev/sluice:<version>
#   scripts/image.sh --registry registry.example/sec   # registry.example/sec/sluice:<version>
#   scripts/image.sh --registry registry.example/sec --push
#   scripts/image.sh --dry-run ...                     # print the commands only
#
# Then point the kustomization at it (deploy/kubernetes/kustomization.yaml,
# `images:`): newName: <registry>/sluice, newTag: <version>; the script
# prints that block. The image runs as uid 10001 by itself (Dockerfile).
set -euo pipefail
cd "$(dirname "$0")/.."

registry=ghcr.io/sluice-dev
push=false
dry_run=false
engine=${CONTAINER_ENGINE:-docker}
while [ $# -gt 0 ]; do
  case "$1" in
    --registry) registry=${2:?--registry needs a value}; shift 2 ;;
    --push) push=true; shift ;;
    --dry-run) dry_run=true; shift ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "image.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

# The [workspace.package] version in Cargo.toml.
version=$(sed -n '/^\[workspace.package\]/,/^\[/{s/^version *= *"\(.*\)"/\1/p}' Cargo.toml)
if [ -z "$version" ]; then
  echo "image.sh: no [workspace.package] version in Cargo.toml" >&2
  exit 1
fi
image="${registry%/}/sluice:$version"
revision=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)

run() {
  echo "+ $*"
  if [ "$dry_run" = false ]; then "$@"; fi
}
run "$engine" build --label "org.opencontainers.image.version=$version" \
  --label "org.opencontainers.image.revision=$revision" -t "$image" .
if [ "$push" = true ]; then
  run "$engine" push "$image"
fi
cat <<MSG
Built $image. In deploy/kubernetes/kustomization.yaml:
images:
  - name: ghcr.io/sluice-dev/sluice
    newName: ${registry%/}/sluice
    newTag: "$version"
MSG
