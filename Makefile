# Kairos — common tasks. `make help` lists them.

# Debian packages the build needs (checked, and installed when missing, by `make deps`).
DEBIAN_PACKAGES := pkg-config libsqlite3-dev zlib1g-dev libuv1-dev libhttp-parser-dev libsimdjson-dev libmimalloc-dev python3-venv netcat-openbsd
# The toolchain's usual place on our machines; an existing `swift` on PATH wins.
export PATH := $(PATH):/opt/swift/usr/bin
SWIFT ?= swift

.PHONY: help deps build test run demo bench measure clean

help:
	@echo "make run    - set up and run the Kairos server on its embedded defaults (the demo tenant, state in ./data)"
	@echo "make demo   - run the engine in process on simulated traffic (state in ./demo-data)"
	@echo "make test   - set up and run every test"
	@echo "make build  - debug build"
	@echo "make bench  - in-process benchmarks (Benchmarks/, ordo-one/benchmark)"
	@echo "make measure ARGS=\"...\" - the same workloads in a plain release executable (kairos-measure --help)"
	@echo "make deps   - install missing Debian packages"

deps:
	@tools/install-deps.sh $(DEBIAN_PACKAGES)
	@tools/install-python-deps.sh

build: deps
	$(SWIFT) build

test: deps
	@SWIFT="$(SWIFT)" tools/run-tests.sh

run: deps
	$(SWIFT) run -c release kairos serve --data-dir data

demo: deps
	$(SWIFT) run -c release kairos demo --data-dir demo-data

# SwiftPM keeps the Benchmarks package's build plan (description.json) when only a source
# file of the Kairos package it depends on was added or removed, then fails on the old file
# list: plan again every time (it takes a second).
bench: deps
	rm -f Benchmarks/.build/*/description.json
	cd Benchmarks && $(SWIFT) package --allow-writing-to-package-directory benchmark

# The same workloads in a plain release executable, e.g. make measure ARGS="restart /tmp/kairos-restart".
measure: deps
	rm -f Benchmarks/.build/*/description.json
	cd Benchmarks && $(SWIFT) run -c release kairos-measure $(ARGS)

clean:
	rm -rf .build Benchmarks/.build
