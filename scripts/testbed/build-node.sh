#!/usr/bin/env bash
# Builds the binaries of a real test-bed node from the Go module proxy into a
# version-keyed cache outside the repository, and prints where they are.
#
#   kubelet, kube-proxy                      (k8s.io/kubernetes, via the wrapper module of go-wrapper.sh)
#   containerd, containerd-shim-runc-v2, ctr (github.com/containerd/containerd/v2)
#   crictl                                   (sigs.k8s.io/cri-tools)
#
# runc, the CNI plugins, iptables and mmdebstrap come from Debian packages:
# installed with apt-get when missing (NODE_SKIP_APT=1 to only check).
#
# Layout (CACHE = ${TESTBED_CACHE_DIR:-$HOME/.cache/runbook-testbed}):
#   $CACHE/kubernetes-node-<K8S_VERSION>/bin/{kubelet,kube-proxy}
#   $CACHE/containerd-<CONTAINERD_VERSION>/bin/{containerd,containerd-shim-runc-v2,ctr}
#   $CACHE/crictl-<CRICTL_VERSION>/bin/crictl
#
# Output on stdout, one line per binary: NAME=/absolute/path. Progress on stderr.
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-v1.37.2}"
CONTAINERD_VERSION="${CONTAINERD_VERSION:-v2.4.2}"
CRICTL_VERSION="${CRICTL_VERSION:-v1.37.0}"
CACHE="${TESTBED_CACHE_DIR:-$HOME/.cache/runbook-testbed}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

log() { printf '[build-node] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

NODE_DIR="$CACHE/kubernetes-node-$K8S_VERSION"
CTRD_DIR="$CACHE/containerd-$CONTAINERD_VERSION"
CRICTL_DIR="$CACHE/crictl-$CRICTL_VERSION"
KUBELET="$NODE_DIR/bin/kubelet"
KUBE_PROXY="$NODE_DIR/bin/kube-proxy"
CONTAINERD="$CTRD_DIR/bin/containerd"
SHIM="$CTRD_DIR/bin/containerd-shim-runc-v2"
CTR="$CTRD_DIR/bin/ctr"
CRICTL="$CRICTL_DIR/bin/crictl"
CNI_DIR=/usr/lib/cni

debian_tools() {
  local missing=()
  command -v runc >/dev/null 2>&1 || missing+=(runc)
  [[ -x "$CNI_DIR/bridge" && -x "$CNI_DIR/host-local" && -x "$CNI_DIR/loopback" ]] || missing+=(containernetworking-plugins)
  command -v iptables >/dev/null 2>&1 || missing+=(iptables)
  command -v mmdebstrap >/dev/null 2>&1 || missing+=(mmdebstrap)
  command -v ip >/dev/null 2>&1 || missing+=(iproute2)
  ((${#missing[@]} == 0)) && return 0
  [[ "${NODE_SKIP_APT:-}" == 1 ]] && die "missing Debian packages: ${missing[*]} (apt-get install ${missing[*]})"
  log "installing Debian packages: ${missing[*]}"
  apt-get update -q >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
}

print_paths() {
  echo "KUBELET=$KUBELET"
  echo "KUBE_PROXY=$KUBE_PROXY"
  echo "CONTAINERD=$CONTAINERD"
  echo "CONTAINERD_SHIM=$SHIM"
  echo "CTR=$CTR"
  echo "CRICTL=$CRICTL"
  echo "RUNC=$(command -v runc)"
  echo "CNI_BIN_DIR=$CNI_DIR"
  echo "MMDEBSTRAP=$(command -v mmdebstrap)"
}

debian_tools

if [[ -x "$KUBELET" && -x "$KUBE_PROXY" && -x "$CONTAINERD" && -x "$SHIM" && -x "$CTR" && -x "$CRICTL" ]]; then
  log "all node binaries cached under $CACHE"
  print_paths
  exit 0
fi

# shellcheck source=go-wrapper.sh
source "$HERE/go-wrapper.sh"
go_build_setup

now() { date +%s; }

build_node_kubernetes() {
  local work t0 bin
  work="$NODE_DIR/build"
  rm -rf "$work"; mkdir -p "$work/bin" "$NODE_DIR/bin"
  log "kubernetes $K8S_VERSION: resolving go.mod"
  k8s_wrapper_gomod "$K8S_VERSION" testbed.local/kubernetes-node-build >"$work/go.mod"
  (
    cd "$work"
    t0=$(now)
    "${NICE[@]}" "$GO" get "k8s.io/kubernetes/cmd/kubelet@$K8S_VERSION" "k8s.io/kubernetes/cmd/kube-proxy@$K8S_VERSION" >&2
    log "go get took $(( $(now) - t0 ))s"
    for bin in kube-proxy kubelet; do
      [[ -x "$NODE_DIR/bin/$bin" ]] && continue
      t0=$(now)
      log "building $bin $K8S_VERSION"
      "${NICE[@]}" "$GO" build -ldflags "$(k8s_ldflags "$K8S_VERSION")" -o "bin/$bin" "k8s.io/kubernetes/cmd/$bin" >&2
      log "built $bin in $(( $(now) - t0 ))s"
      mv -f "bin/$bin" "$NODE_DIR/bin/$bin"
    done
  )
  rm -rf "$work"
}

# go install of a main package at a version, outside any module.
go_install_into() { # dir package@version [tags]
  local dir="$1" pkg="$2" tags="${3:-}" tmp t0
  tmp="$dir/build-bin"
  rm -rf "$tmp"; mkdir -p "$tmp" "$dir/bin"
  t0=$(now)
  log "building $pkg"
  ( cd "$tmp" && GOFLAGS="-trimpath -buildvcs=false" GOBIN="$tmp" \
      "${NICE[@]}" "$GO" install -tags "$tags" -ldflags "-s -w" "$pkg" >&2 )
  mv -f "$tmp"/* "$dir/bin/"
  rm -rf "$tmp"
  log "built $pkg in $(( $(now) - t0 ))s"
}

build_containerd() {
  local cmd
  for cmd in containerd containerd-shim-runc-v2 ctr; do
    [[ -x "$CTRD_DIR/bin/$cmd" ]] && continue
    go_install_into "$CTRD_DIR" "github.com/containerd/containerd/v2/cmd/$cmd@$CONTAINERD_VERSION" "no_btrfs no_devmapper no_zfs"
  done
}

[[ -x "$CRICTL" ]] || go_install_into "$CRICTL_DIR" "sigs.k8s.io/cri-tools/cmd/crictl@$CRICTL_VERSION"
[[ -x "$CONTAINERD" && -x "$SHIM" && -x "$CTR" ]] || build_containerd
[[ -x "$KUBELET" && -x "$KUBE_PROXY" ]] || build_node_kubernetes

for b in "$KUBELET" "$KUBE_PROXY" "$CONTAINERD" "$SHIM" "$CTR" "$CRICTL"; do
  [[ -x "$b" ]] || die "missing after build: $b"
done
print_paths
