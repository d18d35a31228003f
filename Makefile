# The two commands a new user runs: `make up` and `make test`.
# Everything else here is what they are made of.

GO      ?= go
BIN     := $(CURDIR)/bin
# -buildvcs=auto stamps the git revision into the binaries (search-server
# reports it) even where GOFLAGS turns stamping off; it is skipped outside git.
GOBUILD := $(GO) build -buildvcs=auto
PROTO_TOOLS := $(BIN)/buf $(BIN)/protoc-gen-go $(BIN)/protoc-gen-go-grpc
# search-bench is a module of its own (cmd/search-bench/go.mod, replaced onto
# this one): what it links, gonum/plot and the testing package, stays out of
# the service's module graph. Each Go step below runs in both modules.
BENCH   := cmd/search-bench

.PHONY: all build up up-docker up-native down status logs help test test-go test-go-service test-go-bench test-memindex-on test-stack test-docker standins bench fuzz fuzz-cql2 deps tools consul compose grpcurl proto proto-check proto-release lint staticcheck fmt-check clean

all: build

## build: the search-server, search-client and search-bench binaries, into bin/
build:
	$(GOBUILD) -o $(BIN)/ ./cmd/...
	cd $(BENCH) && $(GOBUILD) -o $(BIN)/ .

## up: the whole stack with sample data, ending with a query through Consul DNS
##     (docker compose when a Docker engine answers: deploy/docker-stack.sh,
##     which needs only Docker and Compose v2; else natively: deploy/local)
up:
	@if docker info >/dev/null 2>&1; then $(MAKE) --no-print-directory up-docker; \
	else $(MAKE) --no-print-directory up-native; fi

## up-docker: the Docker stack (docker-compose.yml); it builds nothing here
up-docker:
	deploy/docker-stack.sh up

## up-native: the native stack (deploy/local/stack.sh), also where Docker runs
up-native: build consul
	tools/install-deps.sh stack
	deploy/local/stack.sh up

## down: stop what `make up` started (data stays)
down:
	@if docker info >/dev/null 2>&1 && docker compose ps -q 2>/dev/null | grep -q .; then deploy/docker-stack.sh down; fi
	deploy/local/stack.sh down

## status: what runs
status:
	@if docker info >/dev/null 2>&1; then docker compose ps 2>/dev/null || true; fi
	@deploy/local/stack.sh status

## logs: follow every instance's log records in the Kafka topic
logs:
	@if docker info >/dev/null 2>&1 && docker compose ps -q 2>/dev/null | grep -q .; then \
		deploy/docker-stack.sh logs; \
	else \
		$(MAKE) --no-print-directory build && \
		. .stack/ports.env && bin/search-client logs --follow --brokers 127.0.0.1:$$KAFKA_PORT; \
	fi

## test-stack: the native stack end to end: up, check, down (nothing left
## running), up again, check, down
test-stack: build consul
	tools/install-deps.sh stack
	deploy/local/stack.sh up || { deploy/local/stack.sh down; exit 1; }
	deploy/local/check.sh || { deploy/local/stack.sh down; exit 1; }
	deploy/local/stack.sh pids > .stack/pids.up
	deploy/local/stack.sh down
	@for pid in $$(cat .stack/pids.up); do \
		if [ -d /proc/$$pid ] && ! grep -q '^State:.*zombie' /proc/$$pid/status 2>/dev/null; then \
			echo "make down left pid $$pid running" >&2; exit 1; \
		fi; \
	done; echo "ok: make down left none of the $$(wc -l < .stack/pids.up) stack processes running"
	deploy/local/stack.sh up >/dev/null || { deploy/local/stack.sh down; exit 1; }
	deploy/local/check.sh || { deploy/local/stack.sh down; exit 1; }
	deploy/local/stack.sh down

## test-docker: the Docker stack started for real (deploy/standins/test-docker.sh):
##     installs docker.io and debootstrap when missing, starts a Docker Engine
##     of its own (or uses DOCKER_HOST's), builds the stand-in images, runs the
##     README's Docker section and checks it, then stops everything it started
test-docker: consul compose
	cd deploy/standins && $(GO) vet ./... && $(GO) test -count=1 ./...
	deploy/standins/test-docker.sh

## standins: the stand-in images (deploy/standins/README.md) into the engine
##     DOCKER_HOST names, for machines that reach no registry; then
##     GEO_SEARCH_ENVCONSUL_FROM=<the envconsul image it prints> make up
standins: consul
	deploy/standins/engine.sh install
	deploy/standins/build.sh

## help: this list
help:
	@awk '/^## /{sub(/^## /,""); print}' $(MAKEFILE_LIST)

## test: install what is missing, check generated code and lint, then run
##       every test (test-go) and the native stack end to end (test-stack)
##       side by side: the stack mostly waits (Consul's checks, StatsD's 10 s
##       flushes) and runs on ports of its own, the tests on free ones
test: deps proto-check lint build consul grpcurl compose
	$(MAKE) --no-print-directory -j2 test-go test-stack

## test-go: every Go test of both modules beside the rest (test-go-rest:
##          the bench module's tests, the in-memory index's rerun
##          test-memindex-on and the CQL2 fuzzing, one after another).
##          The suites run bin/'s search-server and search-client, built
##          first, instead of linking their own (servertest.BinDirEnv).
test-go: build consul grpcurl compose
	SEARCH_TEST_BIN_DIR=$(BIN) $(MAKE) --no-print-directory -j2 test-go-service test-go-rest

# The longest packages are named first: go test starts packages in the
# order given (at most GOMAXPROCS, 2, at once), and these would otherwise
# start last and finish minutes after the rest. Three at once (-p 3) took
# 630 s where -p 2 took 647 and 674 s the same day, within the runs'
# spread: both cores are busy throughout (about 1,200 CPU-s), and
# internal/postgis, the longest, only gets less of them.
# internal/consul comes last among them: it mostly waits on its agents
# (16 s of wall, the machine partly idle meanwhile), and alphabetically
# it started after memindex, near the end, with little left beside it.
SLOW_PACKAGES = ./internal/postgis/ ./internal/server/ ./cmd/search-client/ ./cmd/search-server/ ./internal/httpapi/ ./internal/memindex/ ./internal/consul/
test-go-service:
	$(GO) test -race -count=1 -timeout 30m $(SLOW_PACKAGES) ./...

# One after another: together they take far less time than test-go-service,
# and run side by side they only loaded the machine at the start.
test-go-rest:
	$(MAKE) --no-print-directory test-go-bench
	$(MAKE) --no-print-directory test-memindex-on
	$(MAKE) --no-print-directory fuzz-cql2 FUZZTIME=30000x FUZZWHERETIME=3000x FUZZPARALLEL=1

test-go-bench:
	cd $(BENCH) && $(GO) test -race -count=1 -timeout 30m ./...

## test-memindex-on: the end-to-end suites of point lookups again with the
##     in-memory index on (MEMINDEX=on; make test-go runs them with it off,
##     the default): the answers must not depend on it. Without -race: the
##     index's code runs under -race in test-go (internal/memindex, and
##     internal/server's memory index tests, which turn it on themselves).
##     MEMINDEX_ON_RUN='.' runs the whole of both suites so. The memory
##     index's own end-to-end tests (TestMemoryIndex*) turn it on themselves
##     and run in the first pass: skipped here (-skip).
MEMINDEX_ON_RUN ?= Locate|Search|Stream|Spatial|Shaping|Collection|ClientEndToEnd|Standby|OldClients|Replace
test-memindex-on: consul grpcurl
	MEMINDEX=on $(GO) test -count=1 -timeout 30m -run '$(MEMINDEX_ON_RUN)' -skip 'TestMemoryIndex' ./internal/server/ ./cmd/search-client/

## fuzz-cql2: the CQL2 fuzz targets for FUZZTIME (FuzzWhere for
##            FUZZWHERETIME, FUZZTIME unless set): the text and JSON
##            parsers, and the filters sent to PostGIS (no database error,
##            only clean Invalid answers, always one worker). make test
##            gives each a number of inputs with one worker (FUZZPARALLEL=1):
##            30,000 for the parsers, 3,000 for FuzzWhere, a few seconds each
##            on a quiet machine. A duration (15s, as before) failed with a
##            bare "context deadline exceeded" under make test's load: Go's
##            fuzzing coordinator races its own deadline (golang/go#75804,
##            fixed in Go 1.27), which a count has not.
fuzz-cql2:
	$(GO) test -run '^$$' -fuzz '^FuzzParseText$$' -fuzztime $(FUZZTIME) $(if $(FUZZPARALLEL),-parallel $(FUZZPARALLEL)) ./internal/cql2/
	$(GO) test -run '^$$' -fuzz '^FuzzParseJSON$$' -fuzztime $(FUZZTIME) $(if $(FUZZPARALLEL),-parallel $(FUZZPARALLEL)) ./internal/cql2/
	$(GO) test -run '^$$' -fuzz '^FuzzWhere$$' -fuzztime $(or $(FUZZWHERETIME),$(FUZZTIME)) -parallel 1 ./internal/postgis/

## bench: search-bench, the performance run of docs/BENCHMARKS.md (it starts
##        its own PostgreSQL and servers, imports, verifies, then alternates
##        gRPC, direct SQL, naive SQL, name and Locate rounds, sweeps the
##        concurrency, runs search-client locate on a million points, prints
##        the table and writes the plots into docs/bench/); then the Go
##        benchmarks, three rounds each, and the in-memory index's exhaustive
##        comparison with PostGIS (1M points, every edge, the 100k grid),
##        and the geofencing kill -9 test at 1,000 devices × 200 positions.
##        Compare ratios within one run.
##        BENCHFLAGS adds flags, e.g. BENCHFLAGS="--soak 10m" or "--json";
##        shorter: BENCHFLAGS="--rounds 1 --duration 3s --cli-points 100000"
BENCHFLAGS ?=
bench: deps build consul
	$(BIN)/search-bench --sweep 1,2,4,8,16,32,64 --plots-dir docs/bench $(BENCHFLAGS)
	$(GO) test -run '^$$' -bench . -benchtime 3s -count 3 ./...
	cd $(BENCH) && $(GO) test -run '^$$' -bench . -benchtime 3s -count 3 ./...
	$(GO) test -run '^TestMatchesPostGIS$$' -count=1 -timeout 60m -v ./internal/memindex/ -args -exhaustive
	$(GO) test -run '^TestGeofenceThroughKafkaSurvivesKill9$$' -count=1 -timeout 60m -v ./internal/server/ -args -fence-size 1000x200

## fuzz: run each fuzz test for FUZZTIME (default 30s); seeds and any
##       crasher found live in the packages' testdata/fuzz and run in make test
FUZZTIME ?= 30s
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzDecodePageToken$$' -fuzztime $(FUZZTIME) ./internal/geo/
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeFeature$$' -fuzztime $(FUZZTIME) ./internal/geo/
	$(GO) test -run '^$$' -fuzz '^FuzzFilterValidate$$' -fuzztime $(FUZZTIME) ./internal/geo/
	$(MAKE) --no-print-directory fuzz-cql2

## deps: PostgreSQL+PostGIS, the examples' Python and Node.js packages, and
##       chromium with the map test's npm packages (prints the command when
##       not root)
deps:
	tools/install-deps.sh polyglot browser

## tools: buf and the protoc plugins, at the versions pinned in tools/proto/go.mod
tools: $(PROTO_TOOLS)

$(PROTO_TOOLS) &: tools/proto/go.mod tools/proto/go.sum
	cd tools/proto && $(GO) build -o $(BIN)/ github.com/bufbuild/buf/cmd/buf \
		google.golang.org/protobuf/cmd/protoc-gen-go google.golang.org/grpc/cmd/protoc-gen-go-grpc

## consul: a real Consul agent for tests and the local stack, built from the Go
## module proxy at the version pinned in tools/consul/go.mod (v1.13.9: newer
## releases do not build from the proxy; see README). ~3 minutes, once.
consul: $(BIN)/consul

$(BIN)/consul: tools/consul/go.mod tools/consul/go.sum
	cd tools/consul && $(GO) build -o $(BIN)/consul github.com/hashicorp/consul

## proto: lint the proto and regenerate the Go code beside it
proto: tools
	$(BIN)/buf lint
	$(BIN)/buf generate

## proto-check: fail when the committed generated code is not what `make proto`
## makes, or when proto/ breaks the released contract (testdata/proto/search-v1.binpb)
proto-check: tools
	$(BIN)/buf lint
	$(BIN)/buf breaking --against testdata/proto/search-v1.binpb
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
		$(BIN)/buf generate -o "$$tmp" && \
		diff -r -x '*.proto' -x '*.md' proto "$$tmp/proto" || \
		{ echo "generated code in proto/ is stale: run make proto and commit" >&2; exit 1; }

## proto-release: record the current proto/ as the released contract that
## buf breaking and the old-client test check against (do this on a release)
proto-release: tools
	$(BIN)/buf build -o testdata/proto/search-v1.binpb

## compose: Docker Compose v2 (the docker CLI plugin), pinned in
## tools/compose/go.mod, into bin/docker-compose: deploy/compose_test.go
## runs `docker compose config` and make up's Compose check with it (no
## engine needed). ~5 minutes, once.
compose: $(BIN)/docker-compose

COMPOSE_VERSION = $(shell awk '$$1 == "github.com/docker/compose/v2" { print $$2 }' tools/compose/go.mod)
$(BIN)/docker-compose: tools/compose/go.mod tools/compose/go.sum
	cd tools/compose && $(GO) build -ldflags "-X github.com/docker/compose/v2/internal.Version=$(COMPOSE_VERSION)" \
		-o $(BIN)/docker-compose github.com/docker/compose/v2/cmd

## grpcurl: grpcurl, pinned in tools/grpcurl/go.mod, into bin/
grpcurl: $(BIN)/grpcurl

$(BIN)/grpcurl: tools/grpcurl/go.mod tools/grpcurl/go.sum
	cd tools/grpcurl && $(GO) build -o $(BIN)/grpcurl github.com/fullstorydev/grpcurl/cmd/grpcurl

## lint: gofmt, go vet, staticcheck (pinned in tools/staticcheck/go.mod) and
##       the sizes the code keeps to (tools/rooms: no file over 600 lines, no
##       function over 100, outside generated code and tests)
lint: fmt-check staticcheck
	$(GO) vet ./...
	$(BIN)/staticcheck ./...
	cd $(BENCH) && $(GO) vet ./... && $(BIN)/staticcheck ./...
	cd tools/rooms && $(GO) vet . && $(GO) test -count=1 . && $(GO) run . ../..

## staticcheck: staticcheck, pinned in tools/staticcheck/go.mod, into bin/
staticcheck: $(BIN)/staticcheck

$(BIN)/staticcheck: tools/staticcheck/go.mod tools/staticcheck/go.sum
	cd tools/staticcheck && $(GO) build -o $(BIN)/staticcheck honnef.co/go/tools/cmd/staticcheck

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
		if [ -n "$$out" ]; then echo "gofmt needed:" $$out >&2; exit 1; fi

clean:
	rm -rf $(BIN)
