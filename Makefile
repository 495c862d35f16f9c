# RAP Fabric Core — developer entry points. `make demo` and `make test` are the two
# commands the README starts with; everything else is a helper.
SHELL := /bin/bash
GO ?= go
BIN := bin
PKGS := ./...
## VERSION is stamped into every binary (rap-authority/rap-node-agent/rapctl version, --version).
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
RELEASE_DIR := out/release
RELEASE_PLATFORMS := linux/amd64 linux/arm64
RELEASE_CMDS := rap-authority rap-node-agent rapctl rap-node-agent-launcher

.PHONY: all build test demo demo-stop bench fuzz lint pg pg-stop clean docs release

all: build

build:
	@mkdir -p $(BIN)
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/ ./cmd/rap-authority ./cmd/rap-node-agent ./cmd/rapctl ./cmd/rap-node-agent-launcher

## test: every test (unit, PostgreSQL, Raft, processes, fuzz seeds), race detector on.
test:
	@scripts/test.sh

## demo: the main job — private PostgreSQL, three authorities, enrolled agents, a mesh.
demo: build
	@scripts/demo.sh

demo-stop:
	@scripts/demo-stop.sh

## bench: benchmarks that print figures beside a baseline measured in the same run.
bench:
	@scripts/bench.sh $(BENCH_STEPS)

## fuzz: run every fuzz target for FUZZTIME each (default 10s).
fuzz:
	@FUZZTIME=$${FUZZTIME:-10s} scripts/fuzz.sh

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt: files above need formatting"; exit 1; }
	$(GO) vet $(PKGS)

## pg: start (or reuse) the private PostgreSQL and print its URL; pg-stop stops it.
pg:
	@scripts/pg.sh start

pg-stop:
	@scripts/pg.sh stop

clean:
	rm -rf $(BIN) out

## chaos: the chaos drills (needs root: network namespaces, nftables); reports go to the test log and $(CHAOS_REPORT).
CHAOS_REPORT ?= $(CURDIR)/out/chaos-report.txt
.PHONY: chaos
chaos:
	@mkdir -p $(dir $(CHAOS_REPORT))
	RAP_CHAOS_REPORT=$(CHAOS_REPORT) $(GO) test ./integration/chaos/ -run Drill -v -count=1 -timeout 25m

## docs: regenerate docs/cli.md from rapctl's command tree (TestCLIReferenceIsCurrent checks it).
docs:
	$(GO) run ./cmd/rapctl gen-docs > docs/cli.md

## release: static (CGO_ENABLED=0), version-stamped binaries for linux/amd64 and
## linux/arm64 in out/release/<os>-<arch>/ with SHA256SUMS (sha256sum -c checks them).
release:
	@rm -rf $(RELEASE_DIR) && mkdir -p $(RELEASE_DIR)
	@set -e; for p in $(RELEASE_PLATFORMS); do \
		os=$${p%/*}; arch=$${p#*/}; dir=$(RELEASE_DIR)/$$os-$$arch; mkdir -p $$dir; \
		for c in $(RELEASE_CMDS); do \
			echo "build $$dir/$$c ($(VERSION))"; \
			CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch $(GO) build -trimpath -ldflags '-s -w $(LDFLAGS)' -o $$dir/$$c ./cmd/$$c; \
		done; \
	done
	@cd $(RELEASE_DIR) && find . -type f ! -name SHA256SUMS | sed 's|^\./||' | sort | xargs sha256sum > SHA256SUMS
	@echo "$(RELEASE_DIR)/SHA256SUMS:"; cat $(RELEASE_DIR)/SHA256SUMS
