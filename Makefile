# The two set-up commands: `make run` and `make test` (see README.md).
RINGFENCE_HOME ?= $(CURDIR)/var
export RINGFENCE_HOME
JOBS ?= $(shell nproc)

.PHONY: all deps build run test bench fuzz format clean

all: build

deps:
	@scripts/deps.sh

build: deps
	@cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build build -j $(JOBS)

run: build
	@scripts/run.sh build/ringfence

# The test build: ASan + UBSan, every test through ctest.
test: deps
	@cmake -S . -B build-test -DCMAKE_BUILD_TYPE=Debug -DRF_SANITIZE=ON >/dev/null
	@cmake --build build-test -j $(JOBS)
	@cd build-test && ctest --output-on-failure -j $(JOBS)

bench:
	@scripts/deps.sh --bench
	@cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release >/dev/null
	@cmake --build build-bench -j $(JOBS)
	@cmake -S . -B build-bench-audit-off -DCMAKE_BUILD_TYPE=Release -DRF_BENCH_AUDIT_OFF=ON >/dev/null
	@cmake --build build-bench-audit-off -j $(JOBS) --target bench_issue
	@bench/run.sh build-bench

fuzz: deps
	@CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DRF_FUZZ=ON >/dev/null
	@cmake --build build-fuzz -j $(JOBS)

format:
	@clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build build-test build-bench build-bench-audit-off build-fuzz
