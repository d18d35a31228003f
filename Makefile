# The two commands a new user runs: `make up` and `make test`.
# Everything else here is what they are made of.

GO      ?= go
BIN     := $(CURDIR)/bin
# -buildvcs=auto stamps the git revision into the binaries (search-server
# reports it) even where GOFLAGS turns stamping off; it is skipped outside git.
GOBUILD := $(GO) build -buildvcs=auto
PROTO_TOOLS := $(BIN)/buf $(BIN)/protoc-gen-go $(BIN)/protoc-gen-go-grpc

.PHONY: all build up down status test test-go test-stack bench deps tools consul proto proto-check lint fmt-check clean

all: build

## build: the search-server and search-client binaries, into bin/
build:
	$(GOBUILD) -o $(BIN)/ ./cmd/...

## up: Consul, PostgreSQL+PostGIS, Kafka (dev broker), StatsD+carbon, migrations,
## two servers, the sample countries, a query through Consul DNS
up: build consul
	tools/install-deps.sh stack
	deploy/local/stack.sh up

## down: stop what `make up` started (data stays in .stack/)
down:
	deploy/local/stack.sh down

status:
	deploy/local/stack.sh status

## test-stack: make up, check it end to end (deploy/local/check.sh), make down
test-stack: up
	deploy/local/check.sh || { deploy/local/stack.sh down; exit 1; }
	deploy/local/stack.sh down

## test: install what is missing, check generated code and lint, run every test
test: deps proto-check lint test-go

test-go: consul
	$(GO) test -race -count=1 ./...

## bench: the benchmarks, three rounds each; compare numbers within one run
bench: deps consul
	$(GO) test -run '^$$' -bench . -benchtime 3s -count 3 ./...

## deps: PostgreSQL server and PostGIS from Debian (prints the command when not root)
deps:
	tools/install-deps.sh

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

## proto-check: fail when the committed generated code is not what `make proto` makes
proto-check: tools
	$(BIN)/buf lint
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
		$(BIN)/buf generate -o "$$tmp" && \
		diff -r -x '*.proto' -x '*.md' proto "$$tmp/proto" || \
		{ echo "generated code in proto/ is stale: run make proto and commit" >&2; exit 1; }

## lint: go vet and gofmt
lint: fmt-check
	$(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
		if [ -n "$$out" ]; then echo "gofmt needed:" $$out >&2; exit 1; fi

clean:
	rm -rf $(BIN)
