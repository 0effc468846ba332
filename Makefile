# fmprune: every target sets up .venv on first use (pinned by requirements.lock).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(abspath $(VENV))/bin
STAMP := $(VENV)/.installed-$(shell cat requirements.lock pyproject.toml | cksum | cut -d' ' -f1)
FMPRUNE := $(BIN)/fmprune

NET ?= mobilenet
LAYER ?= mobilenet.conv3
EPS ?= 0

.DEFAULT_GOAL := help
.PHONY: bitstream timing-sweep test-boards train prune-study sweep-eps analyze help setup test test-slow test-all layers golden sim run regress verilog bench-golden bench-engine bench-link bench-sim clean distclean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

setup: $(STAMP) iverilog ## create .venv and install the pinned tools (done by every target)

$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@rm -f $(VENV)/.installed-*
	@touch $@

iverilog: ## Icarus Verilog from Debian (installed with apt-get when root)
	@command -v iverilog >/dev/null && exit 0; \
	if [ "$$(id -u)" = 0 ]; then \
		echo "installing Icarus Verilog: apt-get install -y iverilog"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iverilog >/dev/null; \
	else \
		echo "Icarus Verilog (iverilog) is missing. Install it with:  sudo apt-get install -y iverilog"; exit 1; \
	fi

test: setup ## default test tier, one pytest worker a core (about 10 minutes on 2 cores; the iCEBreaker smoke bitstream build included)
	$(BIN)/python -m pytest -n auto

test-slow: setup ## the slow tier: every network's error bounds; MobileNet and SqueezeNet 1.1 through the RTL; the ULX3S smoke build and a two-seed sweep
	$(BIN)/python -m pytest -m slow

test-all: setup ## both tiers
	$(BIN)/python -m pytest -m ''

layers: setup ## list the layers of NET (make layers NET=vgg16)
	$(FMPRUNE) layers $(NET)

golden: setup ## export LAYER's test vector to build/golden/LAYER (make golden LAYER=mobilenet.conv3 EPS=0)
	$(FMPRUNE) golden $(LAYER) --eps $(EPS) $(if $(WEIGHTS),--weights $(WEIGHTS))

SIM ?= verilator
P ?= 16
sim: setup ## one layer through the RTL: make sim LAYER=mobilenet.conv3 [SIM=icarus] [EPS=1] [P=8] [DENSE=1] [WAVES=1] [WEIGHTS=FILE] [CROP=N]
	$(FMPRUNE) sim $(LAYER) --sim $(SIM) --eps $(EPS) --lanes $(P) $(if $(filter 1,$(DENSE)),--dense) \
		$(if $(filter 1,$(WAVES)),--waves) $(if $(WEIGHTS),--weights $(WEIGHTS)) $(if $(CROP),--crop $(CROP))

run: setup ## a whole network through the simulated engine: make run NET=mobilenet [EPS=1] [SIM=icarus]
	$(FMPRUNE) run $(NET) --sim $(SIM) --eps $(EPS) --lanes $(P) $(if $(WEIGHTS),--weights $(WEIGHTS))

verilog: setup ## the engine alone as build/verilog/fmprune_engine.v (make verilog P=16), ports, lint
	$(FMPRUNE) verilog --lanes $(P)

train: setup ## train the digit network here (deterministic, a minute on the CPU); build/train/digitnet.pt
	$(BIN)/python -m fmprune.sw.train

prune-study: setup ## structured pruning of the trained digit network: accuracy against sparsity, particle filter and magnitude; build/prune/study.*
	$(BIN)/python -m fmprune.sw.prune

sweep-eps: setup ## accuracy against eps on the trained network; build/sweep/
	$(FMPRUNE) sweep-eps

analyze: setup ## sparsity / bandwidth study: make analyze NET=mobilenet (or NET=--all)
	$(FMPRUNE) analyze $(NET)

regress: setup ## every mobilenet conv + one layer of each other network, whole, on Verilator; build/regress/
	$(BIN)/python -m fmprune.sim.regress $(SIM)

bench-golden: setup ## time the integer golden model per network; writes build/bench/golden.json
	$(BIN)/python -m fmprune.sw.bench

bench-engine: setup ## engine on real layers, Verilator, P=16: cycles, utilisation, bytes; build/bench/engine.json
	$(BIN)/python -m fmprune.sim.bench_engine --lanes $(P)

bench-link: setup ## bytes over a board's serial link for NET, tile by tile (make bench-link NET=mobilenet BOARD=ulx3s [BAUD=3000000]); build/bench/link_NET_BOARD.json
	$(BIN)/python -m fmprune.sim.link_budget $(NET) --board $(BOARD) $(if $(BAUD),--baud $(BAUD))

bench-sim: setup ## simulation speed: make sim cold / warm against the raw Verilator model; build/bench/simspeed.json
	$(BIN)/python -m fmprune.sim.bench_speed $(LAYER)

clean: ## remove build outputs
	rm -rf build .pytest_cache

distclean: clean ## also remove .venv
	rm -rf $(VENV)

BOARD ?= ulx3s
SEEDS ?= 4
JOBS ?= 2
bitstream: setup ## a board's bitstream with YoWASP: make bitstream BOARD=ulx3s|icebreaker [P=..] [CLK_MHZ=..] [BAUD=..] [SEED=..] [ROUTER=router1|router2]; build/boards/BOARD/report.json
	$(FMPRUNE) bitstream $(BOARD) $(if $(filter command line,$(origin P)),--lanes $(P)) $(if $(CLK_MHZ),--clk-mhz $(CLK_MHZ)) $(if $(BAUD),--baud $(BAUD)) $(if $(SEED),--seed $(SEED)) $(if $(ROUTER),--router $(ROUTER))

timing-sweep: setup ## Fmax over placement seeds: make timing-sweep BOARD=ulx3s [SEEDS=4] [JOBS=2] [P=..] [ROUTER=..]; build/boards/BOARD/sweep.json
	$(FMPRUNE) bitstream $(BOARD) --sweep $(SEEDS) --jobs $(JOBS) $(if $(filter command line,$(origin P)),--lanes $(P)) $(if $(CLK_MHZ),--clk-mhz $(CLK_MHZ)) $(if $(BAUD),--baud $(BAUD)) $(if $(ROUTER),--router $(ROUTER))

test-boards: setup ## boards only: UART co-simulation, tiles on the RTL, the iCEBreaker smoke bitstream build
	$(BIN)/python -m pytest tests/test_boards.py
