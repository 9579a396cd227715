# Thin wrapper: install what is missing, configure, build, test or serve.
BUILD      ?= build
SAN_BUILD  ?= build-san
JOBS       ?= $(shell nproc)
CTEST_ARGS ?=
# Each fuzz target's run in `make test`: a regression replay of its corpus plus a short search.
FUZZ_SECONDS ?= 12
DEMO_MODEL ?= tests/data/models/demo-trained
SERVE_ARGS ?= --host 127.0.0.1 --port 8000 --enable-auto-tool-choice --tool-call-parser kimi_k2 --reasoning-parser kimi_k2

.PHONY: deps build test test-release test-san serve clean

deps:
	@bash scripts/install-deps.sh

$(BUILD)/build.ninja:
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release

build: deps $(BUILD)/build.ninja
	cmake --build $(BUILD) -j $(JOBS)

# The whole suite: the release build's tests, then the unit tests and fuzz targets under
# ASan+UBSan (clang, so libFuzzer is available).
test: test-release test-san

test-release: build
	ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS) --repeat until-pass:2 $(CTEST_ARGS)

$(SAN_BUILD)/build.ninja:
	CC=clang CXX=clang++ cmake -S . -B $(SAN_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DK2_SANITIZE=ON -DK2_FUZZ=ON -DK2_FUZZ_MAX_SECONDS=$(FUZZ_SECONDS)

test-san: deps $(SAN_BUILD)/build.ninja
	cmake --build $(SAN_BUILD) -j $(JOBS) --target unit_and_fuzz
	ctest --test-dir $(SAN_BUILD) --output-on-failure -j $(JOBS) -L 'unit|fuzz' --repeat until-pass:2 $(CTEST_ARGS)

serve: build
	$(BUILD)/bin/k2serve serve $(DEMO_MODEL) $(SERVE_ARGS)

clean:
	rm -rf $(BUILD) $(SAN_BUILD)
