# The two commands a newcomer needs:
#   go run ./examples/quickstart   (or: make demo)   the demo of the main job
#   make test                                        every test, in every module

GO            ?= go
STATICCHECK   ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
# Every module in the repository: the core at the root, integrations nested.
MODULES       := $(sort $(dir $(shell git ls-files '*go.mod' 2>/dev/null || echo go.mod)))

# The real OAuth2 server (oauth2-mock-server, from npm) the integration tests run.
IDP_DIR       := jwtoauth2/testdata/idp
# The real OpenID provider (oidc-provider, from npm) the provider tests run.
OIDC_DIR      := provider/testdata/oidc

.PHONY: all test vet fmt-check unit bench-smoke fuzz-smoke demo-smoke demo bench lint idp-deps oidc-deps redis-deps postgres-deps

all: test

## test: gofmt, vet, race-enabled tests (with examples), a benchmark smoke run and the demo.
test: fmt-check vet idp-deps oidc-deps redis-deps postgres-deps unit bench-smoke fuzz-smoke demo-smoke

# redis-server and redis-cli (which builds the test clusters) for the
# redisstore tests, from Debian's redis-server and redis-tools, installed when
# missing and possible; otherwise make test fails with the line to run.
redis-deps:
	@command -v redis-server >/dev/null && command -v redis-cli >/dev/null && exit 0; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing redis-server redis-tools"; \
		(apt-get install -y -qq redis-server redis-tools >/dev/null 2>&1 || \
		 (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server redis-tools >/dev/null)); \
	else echo "redis-server and redis-cli are needed: sudo apt-get install -y redis-server redis-tools" >&2; exit 1; fi

# PostgreSQL (initdb and postgres) for the sqlstore tests, from Debian's
# postgresql, installed when missing and possible; otherwise make test fails
# with the line to run. Debian puts them in /usr/lib/postgresql/<major>/bin,
# off PATH, where testkit.Postgres looks too.
postgres-deps:
	@command -v initdb >/dev/null && command -v postgres >/dev/null && exit 0; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && exit 0; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing postgresql"; \
		(DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null 2>&1 || \
		 (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null)); \
	else echo "PostgreSQL is needed: sudo apt-get install -y postgresql" >&2; exit 1; fi

# npm packages for the tests that run a real server, installed from the lock
# file when missing or older than it. Without node, those tests skip, except
# under CI=true.
#   $(call npm-ci,DIR,PACKAGE,TESTS): install DIR's lock file; PACKAGE is the
#   main one, TESTS names the tests that need it.
define npm-ci
	@if [ -d $(1)/node_modules/$(2) ] && [ $(1)/node_modules/.package-lock.json -nt $(1)/package-lock.json ]; then :; \
	elif command -v npm >/dev/null; then (cd $(1) && npm ci --no-audit --no-fund --loglevel=error); \
	elif [ "$$CI" = true ]; then echo "node and npm are needed: apt-get install -y nodejs npm" >&2; exit 1; \
	else echo "node/npm not found: $(3) will skip (apt-get install -y nodejs npm)"; fi
endef

idp-deps:
	$(call npm-ci,$(IDP_DIR),oauth2-mock-server,the integration tests)

oidc-deps:
	$(call npm-ci,$(OIDC_DIR),oidc-provider,the provider tests that run oidc-provider)

fmt-check:
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	@for m in $(MODULES); do (cd $$m && echo "go vet ($$m)" && $(GO) vet ./...) || exit 1; done

unit:
	@for m in $(MODULES); do (cd $$m && echo "go test -race ($$m)" && $(GO) test -race -count=1 ./...) || exit 1; done

# Benchmarks are run once each so that they keep compiling and working; their
# figures come from `make bench`.
bench-smoke:
	@for m in $(MODULES); do (cd $$m && $(GO) test -run '^$$' -bench . -benchtime 1x ./... > /dev/null) || exit 1; done

# Each fuzz target for a fixed number of runs (a few seconds each here), beyond
# its seed corpus in testdata/fuzz (which the unit tests run). A count, not a
# duration: with a duration, Go 1.26's fuzz coordinator can fail a target with
# a bare "context deadline exceeded" as the time runs out on a loaded machine
# (go.dev/issue/75804, fixed in Go 1.27); a count has no deadline to race.
FUZZTIME ?= 150000x
fuzz-smoke:
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) .
	$(GO) test -run '^$$' -fuzz '^FuzzTransportHeaders$$' -fuzztime $(FUZZTIME) .
	$(GO) test -run '^$$' -fuzz '^FuzzChallenges$$' -fuzztime $(FUZZTIME) ./internal/challenge
	$(GO) test -run '^$$' -fuzz '^FuzzParseKey$$' -fuzztime $(FUZZTIME) ./provider
	$(GO) test -run '^$$' -fuzz '^FuzzBearerHeader$$' -fuzztime $(FUZZTIME) ./verify
	$(GO) test -run '^$$' -fuzz '^FuzzKeySetDocument$$' -fuzztime $(FUZZTIME) ./verify
	$(GO) test -run '^$$' -fuzz '^FuzzKeySetSnapshot$$' -fuzztime $(FUZZTIME) ./verify

demo-smoke:
	$(GO) run ./examples/quickstart -duration 3s

## demo: the main job, end to end, against a token endpoint on 127.0.0.1.
demo:
	$(GO) run ./examples/quickstart

## bench: the figures in the README.
bench:
	$(GO) test -run '^$$' -bench . -benchmem -cpu 1,2,8 -count 5 .

## lint: staticcheck on every module (govulncheck runs in GitHub Actions).
lint:
	@for m in $(MODULES); do (cd $$m && $(GO) run $(STATICCHECK) ./...) || exit 1; done
