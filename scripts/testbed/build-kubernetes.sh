#!/usr/bin/env bash
# Builds the Kubernetes test-bed binaries from the Go module proxy into a
# version-keyed cache outside the repository, and prints where they are.
#
#   kube-apiserver, kube-controller-manager, kube-scheduler
#                                            (k8s.io/kubernetes, via a wrapper module)
#   etcd                                     (go.etcd.io/etcd/server/v3, via a wrapper module)
#   kwok                                     (sigs.k8s.io/kwok/cmd/kwok, plain go install)
#   cert-manager's controller and CRDs       (github.com/cert-manager/cert-manager, via a wrapper module)
#
# Layout (CACHE = ${TESTBED_CACHE_DIR:-$HOME/.cache/runbook-testbed}):
#   $CACHE/kubernetes-<K8S_VERSION>/bin/{kube-apiserver,kube-controller-manager,kube-scheduler}
#   $CACHE/etcd-<ETCD_VERSION>/bin/etcd
#   $CACHE/kwok-<KWOK_VERSION>/bin/kwok
#   $CACHE/cert-manager-<CERT_MANAGER_VERSION>/{bin/cert-manager-controller,crds/*.yaml}
#
# Idempotent: a binary that already exists is neither rebuilt nor downloaded.
# Output on stdout, one line per binary:  NAME=/absolute/path
# Progress and timings go to stderr.
#
# k8s.io/kubernetes cannot be `go install`ed (its go.mod replaces every
# k8s.io/<staging> module with ./staging/src/...), so we build it from a small
# wrapper module that requires k8s.io/kubernetes and maps each staging module
# to its published v0.<minor>.<patch> tag. etcd's server module has relative
# replace lines too, so it gets the same treatment. cert-manager's controller is
# its own module from v1.12 on, and the module proxy serves none of those; v1.11
# is the last release whose root module holds cmd/controller (and deploy/crds).
# Its go.mod has a replace line, so it is built from a wrapper module as well.
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-v1.37.2}"
ETCD_VERSION="${ETCD_VERSION:-v3.6.16}"
KWOK_VERSION="${KWOK_VERSION:-v0.8.0}"
CERT_MANAGER_VERSION="${CERT_MANAGER_VERSION:-v1.11.5}"
CACHE="${TESTBED_CACHE_DIR:-$HOME/.cache/runbook-testbed}"

log() { printf '[build-kubernetes] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

K8S_DIR="$CACHE/kubernetes-$K8S_VERSION"
ETCD_DIR="$CACHE/etcd-$ETCD_VERSION"
KWOK_DIR="$CACHE/kwok-$KWOK_VERSION"
CERT_MANAGER_DIR="$CACHE/cert-manager-$CERT_MANAGER_VERSION"
APISERVER="$K8S_DIR/bin/kube-apiserver"
KCM="$K8S_DIR/bin/kube-controller-manager"
SCHED="$K8S_DIR/bin/kube-scheduler"
ETCD="$ETCD_DIR/bin/etcd"
KWOK="$KWOK_DIR/bin/kwok"
CERT_MANAGER="$CERT_MANAGER_DIR/bin/cert-manager-controller"
CERT_MANAGER_CRDS="$CERT_MANAGER_DIR/crds"

print_paths() {
  echo "KUBE_APISERVER=$APISERVER"
  echo "KUBE_CONTROLLER_MANAGER=$KCM"
  echo "KUBE_SCHEDULER=$SCHED"
  echo "ETCD=$ETCD"
  echo "KWOK=$KWOK"
  echo "CERT_MANAGER=$CERT_MANAGER"
  echo "CERT_MANAGER_CRDS=$CERT_MANAGER_CRDS"
}

# Fast path: everything is there, touch nothing (no go, no network).
if [[ -x "$APISERVER" && -x "$KCM" && -x "$SCHED" && -x "$ETCD" && -x "$KWOK" && -x "$CERT_MANAGER" ]]; then
  log "all binaries cached under $CACHE"
  print_paths
  exit 0
fi

# shellcheck source=go-wrapper.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/go-wrapper.sh"
go_build_setup

now() { date +%s; }

# ---------------------------------------------------------------- kubernetes
build_kubernetes() {
  local work t0 t1
  log "kubernetes $K8S_VERSION: resolving go.mod"
  work="$K8S_DIR/build"
  rm -rf "$work"; mkdir -p "$work/bin"
  k8s_wrapper_gomod "$K8S_VERSION" testbed.local/kubernetes-build >"$work/go.mod" \
    || die "could not download k8s.io/kubernetes@$K8S_VERSION"
  local ldflags
  ldflags="$(k8s_ldflags "$K8S_VERSION")"

  (
    cd "$work"
    log "kubernetes $K8S_VERSION: resolving dependencies (go get)"
    t0=$(now)
    "${NICE[@]}" "$GO" get "k8s.io/kubernetes/cmd/kube-apiserver@$K8S_VERSION" \
      "k8s.io/kubernetes/cmd/kube-controller-manager@$K8S_VERSION" \
      "k8s.io/kubernetes/cmd/kube-scheduler@$K8S_VERSION" >&2
    log "kubernetes: go get took $(( $(now) - t0 ))s"
    for bin in kube-apiserver kube-controller-manager kube-scheduler; do
      [[ -x "$K8S_DIR/bin/$bin" ]] && continue
      t0=$(now)
      log "building $bin $K8S_VERSION"
      "${NICE[@]}" "$GO" build -ldflags "$ldflags" -o "bin/$bin" "k8s.io/kubernetes/cmd/$bin" >&2
      t1=$(now)
      log "built $bin in $(( t1 - t0 ))s"
      mkdir -p "$K8S_DIR/bin"
      mv -f "bin/$bin" "$K8S_DIR/bin/$bin"
    done
  )
  rm -rf "$work"
}

# ---------------------------------------------------------------------- etcd
build_etcd() {
  local server_mod work t0
  log "etcd $ETCD_VERSION: resolving go.mod"
  server_mod="$(gomod_path "go.etcd.io/etcd/server/v3@$ETCD_VERSION")"
  [[ -f "$server_mod" ]] || die "could not download go.etcd.io/etcd/server/v3@$ETCD_VERSION"

  work="$ETCD_DIR/build"
  rm -rf "$work"; mkdir -p "$work/bin"
  {
    echo "module testbed.local/etcd-build"
    echo
    grep -E '^(go|godebug) ' "$server_mod"
    echo
    echo "require go.etcd.io/etcd/server/v3 $ETCD_VERSION"
    echo
    echo "replace ("
    # server/go.mod maps its sibling modules (api, client/pkg, client/v3, pkg)
    # to ../X; pin each to the same release tag instead.
    awk -v v="$ETCD_VERSION" '
      $2 == "=>" && $3 ~ /^\.\.\// && $1 ~ /^go\.etcd\.io\// { printf "\t%s => %s %s\n", $1, $1, v; next }
      $1 == "replace" && $3 == "=>" && $4 ~ /^\.\.\// && $2 ~ /^go\.etcd\.io\// { printf "\t%s => %s %s\n", $2, $2, v }
    ' "$server_mod"
    echo ")"
  } >"$work/go.mod"

  (
    cd "$work"
    t0=$(now)
    log "etcd $ETCD_VERSION: resolving dependencies (go get)"
    "${NICE[@]}" "$GO" get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >&2
    log "building etcd $ETCD_VERSION"
    # The etcd main package is the root of the server module (server/main.go).
    "${NICE[@]}" "$GO" build -ldflags "-s -w" -o bin/etcd go.etcd.io/etcd/server/v3 >&2
    log "built etcd in $(( $(now) - t0 ))s"
    mkdir -p "$ETCD_DIR/bin"
    mv -f bin/etcd "$ETCD"
  )
  rm -rf "$work"
}

# ---------------------------------------------------------------------- kwok
build_kwok() {
  local t0 tmp
  tmp="$KWOK_DIR/build-bin"
  rm -rf "$tmp"; mkdir -p "$tmp" "$KWOK_DIR/bin"
  t0=$(now)
  log "building kwok $KWOK_VERSION (go install)"
  # go install ignores -mod; run it outside any module.
  ( cd "$tmp" && GOFLAGS="-trimpath -buildvcs=false" GOBIN="$tmp" \
      "${NICE[@]}" "$GO" install -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION" >&2 )
  mv -f "$tmp/kwok" "$KWOK"
  rm -rf "$tmp"
  log "built kwok in $(( $(now) - t0 ))s"
}

# ------------------------------------------------------------- cert-manager
build_cert_manager() {
  local root_mod work t0
  log "cert-manager $CERT_MANAGER_VERSION: resolving go.mod"
  root_mod="$(gomod_path "github.com/cert-manager/cert-manager@$CERT_MANAGER_VERSION")"
  [[ -f "$root_mod" ]] || die "could not download github.com/cert-manager/cert-manager@$CERT_MANAGER_VERSION"
  work="$CERT_MANAGER_DIR/build"
  rm -rf "$work"; mkdir -p "$work/bin"
  {
    echo "module testbed.local/cert-manager-build"
    echo
    grep -E '^go ' "$root_mod"
    echo
    echo "require github.com/cert-manager/cert-manager $CERT_MANAGER_VERSION"
    echo
    # Its (non-local) replace lines, as upstream builds it.
    grep -E '^replace [^ ]+( v[^ ]+)? => [^.]' "$root_mod" || true
  } >"$work/go.mod"
  (
    cd "$work"
    t0=$(now)
    "${NICE[@]}" "$GO" get "github.com/cert-manager/cert-manager/cmd/controller@$CERT_MANAGER_VERSION" >&2
    log "building cert-manager-controller $CERT_MANAGER_VERSION"
    "${NICE[@]}" "$GO" build -ldflags "-s -w -X github.com/cert-manager/cert-manager/pkg/util.AppVersion=$CERT_MANAGER_VERSION" \
      -o bin/cert-manager-controller github.com/cert-manager/cert-manager/cmd/controller >&2
    log "built cert-manager-controller in $(( $(now) - t0 ))s"
  )
  # The CRDs as the release ships them; their Helm label lines are dropped when they are applied.
  rm -rf "$CERT_MANAGER_CRDS"; mkdir -p "$CERT_MANAGER_CRDS" "$CERT_MANAGER_DIR/bin"
  cp "$(module_dir "github.com/cert-manager/cert-manager@$CERT_MANAGER_VERSION")/deploy/crds/"crd-*.yaml "$CERT_MANAGER_CRDS/"
  mv -f "$work/bin/cert-manager-controller" "$CERT_MANAGER"
  rm -rf "$work"
}

[[ -x "$APISERVER" && -x "$KCM" && -x "$SCHED" ]] || build_kubernetes
[[ -x "$ETCD" ]] || build_etcd
[[ -x "$KWOK" ]] || build_kwok
[[ -x "$CERT_MANAGER" ]] || build_cert_manager

for b in "$APISERVER" "$KCM" "$SCHED" "$ETCD" "$KWOK" "$CERT_MANAGER"; do
  [[ -x "$b" ]] || die "missing after build: $b"
done
print_paths
