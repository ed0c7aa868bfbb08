# Two commands do everything on a fresh machine:
#   make demo       run the whole DVC pipeline on the built-in demo dataset (offline)
#   make test       the tests that check behaviour on small inputs (a few minutes)
# and, for CI and before a release:
#   make test-all   every test, the slow ones too (long clips, Ray sessions, real-speech WER, dvc queues)
SHELL := /bin/bash
VENV := .venv
BIN := $(abspath $(VENV))/bin
STAMP := $(VENV)/.emi-installed
PLOTS_TEMPLATE := .dvc/offline-plots.html

# The CI-size demo: the metrics gate runs the pipeline with these overrides and compares
# eval/metrics.json with the baseline committed on main (docs/grids.md, "CI metrics gate").
CI_SIZE := -S demo.n_train=48 -S demo.n_valid=24 -S demo.n_test=12

.PHONY: setup demo demo-va demo-expr demo-au test test-all lint grid grid-va ci-gate-frames hume-baselines bench-scale bench-plots figures ci-gate ci-baseline clean-data

setup: $(STAMP)

$(STAMP): requirements.txt requirements-nodeps.txt pyproject.toml scripts/setup.sh
	bash scripts/setup.sh
	touch $@

demo: setup $(PLOTS_TEMPLATE)
	PATH="$(BIN):$$PATH" dvc repro
	PATH="$(BIN):$$PATH" dvc metrics show

# The offline page `dvc plots show` fills (.dvc/config names it). setup.sh writes it; this rule
# rewrites it when it is missing or its generator changed.
$(PLOTS_TEMPLATE): pipeline/plots/template.py | $(STAMP)
	$(BIN)/python -m pipeline.plots template

# The pictures docs/plots.md shows, from the run in the workspace (run `make demo` first).
figures: setup
	PATH="$(BIN):$$PATH" python -m pipeline.plots export --out docs/figures

# Both use the two cores (pytest-xdist); tests marked slow run only in test-all.
test: setup lint
	PATH="$(BIN):$$PATH" python -m pytest -q -n 2 -m "not slow" $(PYTEST_ARGS)

test-all: setup lint
	PATH="$(BIN):$$PATH" python -m pytest -q -n 2 $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The frame-level tasks on the built-in tracks demo (docs/frame-tasks.md), each an experiment on top
# of the workspace: prosody audio (5 numbers per 20 ms: the 512-d Whisper states and the per-track
# text token let the fusion models learn the 16 training tracks apart instead of their affect),
# face and voice streams, patience 10. Decode, ASR and features run once for the three.
FRAME_DEMO := -S features.audio.model=prosody -S 'fusion.modalities=[visual,audio]' -S train.patience=10
FRAME_MODEL_va := reliability
FRAME_MODEL_expr := dual_branch
FRAME_MODEL_au := reliability
FRAME_TASKS := va expr au
frame_run = PATH="$(BIN):$$PATH" dvc exp run $(FRAME_DEMO) -S task=$(1) -S fusion.model=$(FRAME_MODEL_$(1))

demo-va demo-expr demo-au: demo-%: setup $(PLOTS_TEMPLATE)
	$(call frame_run,$*)
	PATH="$(BIN):$$PATH" dvc metrics show

# The VA fusion table on the tracks demo, grid.seeds seeds per row: sets task=va and prosody audio
# in params.yaml, computes the upstream stages once, commits params.yaml and dvc.lock, queues the rows.
grid-va: setup
	PATH="$(BIN):$$PATH" python -m pipeline.experiments.grid run --tables va_fusion --prepare \
		--set features.audio.model=prosody

# The papers' ablation tables on the configured dataset (run `make demo` and commit dvc.lock first).
grid: setup
	PATH="$(BIN):$$PATH" python -m pipeline.experiments.grid run

# The organisers' baseline rows (ViT, wav2vec2, both; papers 0.09 / 0.24 / 0.25) on their own
# feature pickles, by one command (docs/hume-features.md): sets data.root and the hume-vit /
# hume-wav2vec2 sources in params.yaml, runs the stages upstream of training once, commits
# params.yaml and dvc.lock, then queues the three rows x grid.seeds.
#   make hume-baselines HUME=/path/to/Hume-Vidmimic2
hume-baselines: setup
	@test -n "$(HUME)" || { echo "usage: make hume-baselines HUME=/path/to/Hume-Vidmimic2"; exit 2; }
	PATH="$(BIN):$$PATH" python -m pipeline.experiments.grid run --tables hume_baselines --prepare \
		--set data.source=hume --set data.root=$(abspath $(HUME))

# Every heavy stage on a Hume-like corpus beside its floor (docs/scale.md); about 20 minutes here,
# plus the corpus on the first run.
bench-scale: setup
	PATH="$(BIN):$$PATH" python -m benchmarks.bench_scale $(SCALE_ARGS)

# dvc plots show in headless Chromium with the network blocked (installs Debian's chromium if missing).
bench-plots: setup $(PLOTS_TEMPLATE)
	PATH="$(BIN):$$PATH" python -m benchmarks.bench_plots --install-chromium

ci-gate: setup
	PATH="$(BIN):$$PATH" dvc exp run $(CI_SIZE)
	PATH="$(BIN):$$PATH" python -m pipeline.experiments.gate
	git checkout -- params.yaml
	$(MAKE) ci-gate-frames

# The frame-level gates: the tracks demo at its default size (decode, ASR and features once, then
# train + evaluate per task), each task's headline against eval/baselines/<task>.json.
ci-gate-frames: setup
	$(foreach task,$(FRAME_TASKS),$(call frame_run,$(task)) && \
		PATH="$(BIN):$$PATH" python -m pipeline.experiments.gate --task $(task) && ) true
	git checkout -- params.yaml

# Deliberate step: rerun the CI-size pipelines and leave their metrics as the new baselines to commit.
ci-baseline: setup
	PATH="$(BIN):$$PATH" dvc exp run $(CI_SIZE)
	git checkout -- params.yaml
	cp eval/metrics.json eval/metrics.emi.json
	mkdir -p eval/baselines
	$(foreach task,$(FRAME_TASKS),$(call frame_run,$(task)) && cp eval/metrics.json eval/baselines/$(task).json && ) true
	git checkout -- params.yaml
	mv eval/metrics.emi.json eval/metrics.json
	@echo "New baselines in eval/metrics.json and eval/baselines/. Review them, then commit them."

clean-data:
	rm -rf data eval .dvc/cache .dvc/tmp
