#!/usr/bin/env bash
# Builds the Sealed Secrets controller (使用Sealed Secrets) from the Go module
# proxy into a version-keyed cache outside the repository, and prints where it is.
#
# Layout (CACHE = ${TESTBED_CACHE_DIR:-$HOME/.cache/runbook-testbed}):
#   $CACHE/sealed-secrets-<SEALED_SECRETS_VERSION>/bin/sealed-secrets-controller
#   $CACHE/sealed-secrets-<SEALED_SECRETS_VERSION>/crds/bitnami.com_sealedsecrets.yaml
#
# Idempotent: when both exist nothing is built (no go, no network).
# Output on stdout:  SEALED_SECRETS_CONTROLLER=/path  and  SEALED_SECRETS_CRDS=/path
# Progress and timings go to stderr.
#
# The proxy serves the module as github.com/bitnami-labs/sealed-secrets, but its
# go.mod declares `module github.com/bitnami/sealed-secrets` (and that path is not
# served), so `go install github.com/bitnami-labs/sealed-secrets/cmd/controller@v`
# fails with "module declares its path as ... but was required as ...". A wrapper
# module requires the declared path and replaces it with the served one.
set -euo pipefail

SEALED_SECRETS_VERSION="${SEALED_SECRETS_VERSION:-v0.40.0}"
CACHE="${TESTBED_CACHE_DIR:-$HOME/.cache/runbook-testbed}"
SERVED=github.com/bitnami-labs/sealed-secrets
DECLARED=github.com/bitnami/sealed-secrets

log() { printf '[build-sealed-secrets] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

DIR="$CACHE/sealed-secrets-$SEALED_SECRETS_VERSION"
BIN="$DIR/bin/sealed-secrets-controller"
CRDS="$DIR/crds"
CRD="$CRDS/bitnami.com_sealedsecrets.yaml"

print_paths() {
  echo "SEALED_SECRETS_CONTROLLER=$BIN"
  echo "SEALED_SECRETS_CRDS=$CRDS"
}

if [[ -x "$BIN" && -f "$CRD" ]]; then
  log "sealed-secrets $SEALED_SECRETS_VERSION cached under $DIR"
  print_paths
  exit 0
fi

# shellcheck source=go-wrapper.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/go-wrapper.sh"
go_build_setup
SECONDS=0
log "sealed-secrets $SEALED_SECRETS_VERSION: resolving go.mod"
served_mod="$(gomod_path "$SERVED@$SEALED_SECRETS_VERSION")"
[[ -f "$served_mod" ]] || die "could not download $SERVED@$SEALED_SECRETS_VERSION"
grep -q "^module $DECLARED\$" "$served_mod" \
  || die "$SERVED@$SEALED_SECRETS_VERSION no longer declares module $DECLARED; adjust this script"
work="$DIR/build"
rm -rf "$work"; mkdir -p "$work"
{
  echo "module testbed.local/sealed-secrets-build"
  echo
  grep -E '^go ' "$served_mod"
  echo
  echo "require $DECLARED $SEALED_SECRETS_VERSION"
  echo
  echo "replace $DECLARED => $SERVED $SEALED_SECRETS_VERSION"
  # Its own non-local replace lines, as upstream builds it (none in v0.40.0).
  grep -E '^replace [^ ]+( v[^ ]+)? => [^.]' "$served_mod" || true
} >"$work/go.mod"
printf '//go:build tools\n\npackage tools\n\nimport _ "%s/cmd/controller"\n' "$DECLARED" >"$work/tools.go"
(
  cd "$work"
  log "sealed-secrets: resolving dependencies (go mod tidy)"
  "${NICE[@]}" "$GO" mod tidy >&2
  log "building sealed-secrets-controller $SEALED_SECRETS_VERSION"
  "${NICE[@]}" "$GO" build -ldflags "-s -w -X main.VERSION=$SEALED_SECRETS_VERSION" \
    -o sealed-secrets-controller "$DECLARED/cmd/controller" >&2
)
# The CRD as the release ships it (copied, never committed).
rm -rf "$CRDS"; mkdir -p "$CRDS" "$DIR/bin"
cp "$(module_dir "$SERVED@$SEALED_SECRETS_VERSION")/helm/sealed-secrets/crds/bitnami.com_sealedsecrets.yaml" "$CRD"
mv -f "$work/sealed-secrets-controller" "$BIN"
rm -rf "$work"
log "built sealed-secrets-controller in ${SECONDS}s"
print_paths
