#!/usr/bin/env bash
# Builds the smallest OpenTelemetry Collector the tracing test needs (an OTLP
# receiver and the file exporter, nothing else) from the Go module proxy into a
# version-keyed cache outside the repository, and prints where it is.
#
# Layout (CACHE = ${TESTBED_CACHE_DIR:-$HOME/.cache/runbook-testbed}):
#   $CACHE/otelcol-<OTELCOL_VERSION>/bin/otelcol
#
# Idempotent: when it exists nothing is built (no go, no network).
# Output on stdout:  OTELCOL_BIN=/path.  Progress and timings go to stderr.
#
# No prebuilt collector can be downloaded here, and the distributions' builder
# (ocb) would pull in far more than this: a wrapper module requires the core
# collector, its otlp receiver and contrib's file exporter at one release and
# holds a main package of a few lines. Contrib's file exporter is served and
# known to build at v0.161.0 (newer ones are not), so the core follows it.
set -euo pipefail

OTELCOL_VERSION="${OTELCOL_VERSION:-v0.161.0}"
CACHE="${TESTBED_CACHE_DIR:-$HOME/.cache/runbook-testbed}"
CORE=go.opentelemetry.io/collector
CONTRIB=github.com/open-telemetry/opentelemetry-collector-contrib

log() { printf '[build-otel-collector] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

DIR="$CACHE/otelcol-$OTELCOL_VERSION"
BIN="$DIR/bin/otelcol"

if [[ -x "$BIN" ]]; then
  log "otelcol $OTELCOL_VERSION cached under $DIR"
  echo "OTELCOL_BIN=$BIN"
  exit 0
fi

# shellcheck source=go-wrapper.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/go-wrapper.sh"
go_build_setup
SECONDS=0
work="$DIR/build"
rm -rf "$work"; mkdir -p "$work"
otelcol_mod="$(gomod_path "$CORE/otelcol@$OTELCOL_VERSION")"
[[ -f "$otelcol_mod" ]] || die "could not download $CORE/otelcol@$OTELCOL_VERSION"
# The stable (v1) modules' release that goes with this v0 release, e.g. v1.67.0 with v0.161.0.
stable_version="$(sed -n "s|^[[:space:]]*$CORE/confmap \(v1\.[0-9.]*\)$|\1|p" "$otelcol_mod")"
[[ -n "$stable_version" ]] || die "$CORE/otelcol@$OTELCOL_VERSION names no confmap v1 release; adjust this script"
{
  echo "module testbed.local/otelcol-build"
  echo
  grep -E '^go ' "$otelcol_mod"
  echo
  echo "require ("
  echo "	$CORE/otelcol $OTELCOL_VERSION"
  echo "	$CORE/service $OTELCOL_VERSION"
  echo "	$CORE/receiver/otlpreceiver $OTELCOL_VERSION"
  echo "	$CONTRIB/exporter/fileexporter $OTELCOL_VERSION"
  echo "	$CORE/confmap/provider/envprovider $stable_version"
  echo "	$CORE/confmap/provider/fileprovider $stable_version"
  echo ")"
} >"$work/go.mod"
cat >"$work/main.go" <<'EOF'
// The test bed's OpenTelemetry Collector: OTLP in, JSON lines out (file exporter).
package main

import (
	"context"
	"log"

	"github.com/open-telemetry/opentelemetry-collector-contrib/exporter/fileexporter"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/provider/envprovider"
	"go.opentelemetry.io/collector/confmap/provider/fileprovider"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/otelcol"
	"go.opentelemetry.io/collector/receiver"
	"go.opentelemetry.io/collector/receiver/otlpreceiver"
	"go.opentelemetry.io/collector/service/telemetry"
	"go.uber.org/zap"
)

// Set by the build (-X main.version).
var version = "dev"

// Its own telemetry: logs to stderr only (the SDK-based telemetry would double the build).
func telemetryFactory() telemetry.Factory {
	return telemetry.NewFactory(
		func() component.Config { return &struct{}{} },
		telemetry.WithCreateLogger(func(_ context.Context, _ telemetry.LoggerSettings, _ component.Config) (*zap.Logger, component.ShutdownFunc, error) {
			logger, err := zap.NewProduction()
			return logger, nil, err
		}),
	)
}

func factories() (otelcol.Factories, error) {
	receivers, err := otelcol.MakeFactoryMap[receiver.Factory](otlpreceiver.NewFactory())
	if err != nil {
		return otelcol.Factories{}, err
	}
	exporters, err := otelcol.MakeFactoryMap[exporter.Factory](fileexporter.NewFactory())
	if err != nil {
		return otelcol.Factories{}, err
	}
	return otelcol.Factories{Receivers: receivers, Exporters: exporters, Telemetry: telemetryFactory()}, nil
}

func main() {
	settings := otelcol.CollectorSettings{
		BuildInfo: component.BuildInfo{Command: "otelcol", Description: "runbook test bed collector", Version: version},
		Factories: factories,
		ConfigProviderSettings: otelcol.ConfigProviderSettings{
			ResolverSettings: confmap.ResolverSettings{ProviderFactories: []confmap.ProviderFactory{fileprovider.NewFactory(), envprovider.NewFactory()}, DefaultScheme: "env"},
		},
	}
	if err := otelcol.NewCommand(settings).Execute(); err != nil {
		log.Fatal(err)
	}
}
EOF
(
  cd "$work"
  log "otelcol $OTELCOL_VERSION: resolving dependencies (go mod tidy)"
  "${NICE[@]}" "$GO" mod tidy >&2
  log "building otelcol $OTELCOL_VERSION"
  "${NICE[@]}" "$GO" build -ldflags "-s -w -X main.version=$OTELCOL_VERSION" -o otelcol . >&2
)
mkdir -p "$DIR/bin"
mv -f "$work/otelcol" "$BIN"
rm -rf "$work"
log "built otelcol in ${SECONDS}s"
echo "OTELCOL_BIN=$BIN"
