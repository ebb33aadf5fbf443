# mctun: make demo runs the worked example in network namespaces; make test runs every test.
# The namespace tests, the demo and the benchmark need root (they build their own network
# namespaces and never touch the host's own links, routes or sysctls).

GO       ?= go
VERSION  := $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -X main.version=$(VERSION)
BIN      := bin
FUZZTIME ?= 30s

.PHONY: all build test unit e2e demo bench bench-base fuzz soak lint package clean generate check-generate

all: build

# A static binary: no cgo anywhere on the packet path.
build:
	CGO_ENABLED=0 $(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/mctun ./cmd/mctun

# The kernel path's programs (kernelpath/bpf/*.c), compiled with clang into the objects and
# Go bindings that are committed, so that go build needs no clang. Needs Debian's clang, llvm
# (llvm-strip) and libbpf-dev. check-generate fails when the committed ones are not what the
# sources give (CI runs it).
generate:
	$(GO) generate ./kernelpath

check-generate: generate
	@git diff --exit-code --stat -- kernelpath || { echo "kernelpath: the committed objects are not what bpf/*.c gives: run make generate and commit"; exit 1; }

# Everything: formatting and vet, the unit tests under the race detector, then the
# end-to-end tests with the real binary in network namespaces (root).
test: lint unit e2e

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change: $$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags e2e ./test/...
	$(GO) vet -tags soak ./test/...

unit:
	$(GO) test -race -count=1 ./...

e2e:
	$(GO) test -tags e2e -p 1 -count=1 -timeout 40m -v ./test/...

# The worked example of the original tool: one source, three members, group 224.1.2.3:65535.
demo: build
	$(GO) run ./test/demo -mctun $(BIN)/mctun

# The benchmark (root; about 75 minutes on 2 cores): mctun's user-space path and its kernel
# path against kernel VXLAN head-end replication at 1, 4 and 16 members and 64 and 1200 byte
# payloads, in namespaces, with the user-space path of BENCH_BASE's mctun side by side (it
# "must not get slower"); writes BENCHMARKS.md and BENCHMARKS-rate.png. Not part of test.
# BENCHFLAGS adds flags. To iterate on a subset in a few minutes without rewriting the report:
#   go run ./test/bench -members 1 -sizes 64 -trial 1s -big=false
BENCHFLAGS ?=
bench: build bench-base
	@command -v gnuplot >/dev/null 2>&1 || echo "make bench: gnuplot is missing: BENCHMARKS-rate.png will not be drawn (apt-get install -y gnuplot-nox)"
	$(GO) run ./test/bench -mctun $(BIN)/mctun -base-mctun $(BIN)/mctun-base -out BENCHMARKS.md -plot BENCHMARKS-rate.png $(BENCHFLAGS)

# The baseline of the benchmark's "must not get slower": mctun as it was at BENCH_BASE, the
# last commit before the kernel path (issue 8), built from git's copy of that commit.
BENCH_BASE ?= cc8c16b
bench-base:
	@set -e; dir=$$(mktemp -d); trap 'rm -rf "$$dir"' EXIT; \
	git archive $(BENCH_BASE) | tar -x -C "$$dir"; \
	cd "$$dir" && CGO_ENABLED=0 $(GO) build -ldflags "-X main.version=$(BENCH_BASE)" -o $(CURDIR)/$(BIN)/mctun-base ./cmd/mctun
	@echo "bench-base: $(BIN)/mctun-base is mctun at $(BENCH_BASE)"

# Every fuzz target for FUZZTIME each (a duration, or a count of inputs: 100000x), seeded from
# its package's testdata/fuzz/<target>. Not part of test. CI runs a short pass by count
# (make fuzz FUZZTIME=100000x): Go 1.26 can fail a duration-bound run that found nothing,
# with "context deadline exceeded" (golang/go#75804).
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzTunnelPacket$$' -fuzztime $(FUZZTIME) ./encap/
	$(GO) test -run '^$$' -fuzz '^FuzzOpen$$' -fuzztime $(FUZZTIME) ./encap/
	$(GO) test -run '^$$' -fuzz '^FuzzCheckInner$$' -fuzztime $(FUZZTIME) ./encap/
	$(GO) test -run '^$$' -fuzz '^FuzzParseReport$$' -fuzztime $(FUZZTIME) ./igmp/
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./config/
	$(GO) test -run '^$$' -fuzz '^FuzzMerge$$' -fuzztime $(FUZZTIME) ./config/
	$(GO) test -run '^$$' -fuzz '^FuzzScanLines$$' -fuzztime $(FUZZTIME) ./config/
	$(GO) test -run '^$$' -fuzz '^FuzzParseEndpoint$$' -fuzztime $(FUZZTIME) ./config/
	$(GO) test -run '^$$' -fuzz '^FuzzCompleteChecksum$$' -fuzztime $(FUZZTIME) ./capture/
	$(GO) test -run '^$$' -fuzz '^FuzzCheck$$' -fuzztime $(FUZZTIME) ./test/stream/
	$(GO) test -run '^$$' -fuzz '^FuzzImport$$' -fuzztime $(FUZZTIME) ./legacy/

# The soak (root; SOAKTIME, default 10 minutes, and about a minute more): a steady stream
# through the worked example for SOAKTIME, with reloads and a member's flaps along the way,
# that must lose nothing while each member is up and keep every daemon's memory flat.
# Not part of test. A SOAKTIME over 25m needs a longer SOAKTIMEOUT.
SOAKTIME    ?= 10m
SOAKTIMEOUT ?= 30m
soak:
	MCTUN_SOAK_DURATION=$(SOAKTIME) $(GO) test -tags soak -count=1 -run '^TestSoak$$' -timeout $(SOAKTIMEOUT) -v ./test/

# The packages (make package): mctun_$(PKG_VERSION)_ARCH.deb and
# mctun-$(RPM_VERSION)-$(RPM_RELEASE).ARCH.rpm for each of PKG_ARCHS (amd64 and arm64: the
# binary is pure Go), in DIST, with their man pages, completion scripts, example config and
# systemd unit (packaging/). nfpm builds them; it is pinned in go.mod as a tool (go tool
# nfpm), so Go is all it takes. packaging/version.sh turns git describe into a version dpkg
# and rpm both sort upward:
#   on tag v1.2                 1.2                                   rpm 1.2-1
#   3 commits after v1.2        1.2+3.gabc1234 (deb: + sorts after)   rpm 1.2-1.3.gabc1234
#   tag v1.3-rc1                1.3~rc1 (~ sorts before 1.3)          rpm 1.3~rc1-1
#   no tag yet (cc8c16b)        0.0.0~git20260301123456.cc8c16b       rpm the same, release 1
#                               (the commit's UTC date: later commits sort later, any tag after)
#   uncommitted changes         then .dirty
# rpm takes what follows + as its release, since rpm, unlike dpkg, would sort 1.2+3 after
# 1.2.1. PKG_VERSION=... overrides the version (the package tests build two).
PKG_VERSION ?= $(shell packaging/version.sh)
RPM_VERSION  = $(word 1,$(subst +, ,$(PKG_VERSION)))
RPM_RELEASE  = 1$(addprefix .,$(word 2,$(subst +, ,$(PKG_VERSION))))
PKG_ARCHS   ?= amd64 arm64
DIST        ?= dist
MAINTAINER  ?= mctun authors <mctun@example.org>
HOMEPAGE    ?=
package:
	GO="$(GO)" PKG_VERSION="$(PKG_VERSION)" RPM_VERSION="$(RPM_VERSION)" RPM_RELEASE="$(RPM_RELEASE)" \
		PKG_ARCHS="$(PKG_ARCHS)" DIST="$(DIST)" MAINTAINER="$(MAINTAINER)" HOMEPAGE="$(HOMEPAGE)" \
		packaging/build.sh

clean:
	rm -rf $(BIN) $(DIST)
