# Sourced by build-kubernetes.sh and build-node.sh: the wrapper Go module that
# builds commands of k8s.io/kubernetes from the module proxy.
#
# k8s.io/kubernetes cannot be `go install`ed (its go.mod replaces every
# k8s.io/<staging> module with ./staging/src/...), so we build it from a small
# wrapper module that requires k8s.io/kubernetes and maps each staging module
# to its published v0.<minor>.<patch> tag.
#
# Needs: $GO set to the go binary (go_build_setup finds it).

# go_build_setup: the Go binary, static path-independent build settings, and the
# build lock (one Go build at a time per cache directory: 2 cores). Needs $CACHE, die.
go_build_setup() {
  GO="${GO:-}"
  if [[ -z "$GO" ]]; then
    if command -v go >/dev/null 2>&1; then GO="$(command -v go)"
    elif [[ -x /usr/local/go/bin/go ]]; then GO=/usr/local/go/bin/go
    else die "go not found (set GO=/path/to/go)"; fi
  fi
  # Build and module caches stay in Go's default places, shared with everything else on the machine.
  export CGO_ENABLED=0
  export GOFLAGS="-trimpath -buildvcs=false -mod=mod"
  export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"
  NICE=(nice -n "${BUILD_NICE:-10}")
  mkdir -p "$CACHE"
  exec 9>"$CACHE/.build-kubernetes.lock"
  flock 9
}

gomod_path() { # module@version -> path of its go.mod in the module cache
  "$GO" mod download -json "$1" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p'
}

module_dir() { # module@version -> its source folder in the module cache
  "$GO" mod download -json "$1" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p'
}

# k8s_wrapper_gomod <k8s version, e.g. v1.37.2> <module name>: prints the go.mod.
k8s_wrapper_gomod() {
  local version="$1" module="$2" ver_noV minor patch staging_version k8s_mod
  ver_noV="${version#v}"                            # 1.37.2
  minor="$(cut -d. -f2 <<<"$ver_noV")"              # 37
  patch="$(cut -d. -f3- <<<"$ver_noV")"             # 2
  staging_version="v0.$minor.$patch"                # v0.37.2
  k8s_mod="$(gomod_path "k8s.io/kubernetes@$version")"
  [[ -f "$k8s_mod" ]] || { echo "could not download k8s.io/kubernetes@$version" >&2; return 1; }
  echo "module $module"
  echo
  # The go and godebug lines only take effect in the main module: copy them,
  # so the binaries get the same GODEBUG defaults as upstream builds.
  grep -E '^(go|godebug) ' "$k8s_mod"
  echo
  echo "require k8s.io/kubernetes $version"
  echo
  echo "replace ("
  # Staging modules: `k8s.io/X => ./staging/src/k8s.io/X` -> published tag.
  awk -v v="$staging_version" '
    $2 == "=>" && $3 ~ /^\.\/staging\// { printf "\t%s => %s %s\n", $1, $1, v; next }
    $1 == "replace" && $3 == "=>" && $4 ~ /^\.\/staging\// { printf "\t%s => %s %s\n", $2, $2, v; next }
  ' "$k8s_mod"
  # Any other (non-local) replace lines are copied as they are.
  awk '
    /^replace \($/ { inblk = 1; next }
    inblk && /^\)/ { inblk = 0; next }
    inblk && $2 == "=>" && $3 !~ /^\./ { print "\t" $0; next }
    /^replace / && $3 == "=>" && $4 !~ /^\./ { sub(/^replace /, ""); print "\t" $0 }
  ' "$k8s_mod"
  echo ")"
}

# k8s_ldflags <k8s version>: the version stamps upstream builds carry.
k8s_ldflags() {
  local version="$1" minor pkg flags="-s -w"
  minor="$(cut -d. -f2 <<<"${version#v}")"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    flags+=" -X $pkg.gitVersion=$version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    flags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  echo "$flags"
}
