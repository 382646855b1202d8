# Set-up is automatic: every target that needs Python creates .venv on first use (idempotent:
# the stamp file .venv/.installed is newer than pyproject.toml when nothing needs doing).
# Versions are pinned in pyproject.toml (a set measured to install and work together; why: see there).
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
export HF_HUB_OFFLINE ?= 1
export WANDB_MODE ?= offline
export PYTHONUNBUFFERED := 1

.PHONY: install test test-slow train lint bench compare compare-long clean gpu-bundle

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	# torch first and alone: pinned CUDA-capable 2.14.1 + torchvision 0.29.1 (from the local disk here)
	$(BIN)/pip install --quiet --disable-pip-version-check torch==2.14.1 torchvision==0.29.1
	# dev: pytest + ruff; slurm: the submitit launcher, so the SLURM preset's test runs instead of skipping
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev,slurm]'
	touch $(STAMP)

install: $(STAMP)

# The fast suite (< 10 min on 2 cores). Slow tests are marked and run by `make test-slow`.
test: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider --durations=15 tests

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider -m slow tests

# The main job on the embedded default: LDM on the toy world (trains the toy CLIP and VAE first
# if they are not cached). Extra Hydra overrides: make train ARGS="trainer.max_images=20000"
train: $(STAMP)
	$(BIN)/python -m ldm_vs_gan.train model=ldm $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check ldm_vs_gan tests experiments benchmarks
	$(BIN)/ruff format --check ldm_vs_gan tests experiments benchmarks

clean:
	rm -rf $(VENV) .pytest_cache

# Benchmarks (print numbers; not tests). Each script documents what it measures.
bench: $(STAMP)
	for f in benchmarks/bench_*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

# The first study: both families on the toy world, same budget, 3 seeds each, then the report.
compare: $(STAMP)
	$(BIN)/python experiments/toy_ldm_vs_galip/run.py

# The study's long ladder (run once, committed): seed 0 of both families again at 48k images, and
# GALIP at its official learning rates without translation at 12k and 48k; reuses make compare's runs.
compare-long: $(STAMP)
	$(BIN)/python experiments/toy_ldm_vs_galip/run.py --budgets 12000,48000 --long-seeds 0 \
		--side-contestants galip_faithful --out experiments/toy_ldm_vs_galip/report-long

# Wheels for benchmarks/gpu_check.py on a GPU machine without a package index: what its Python
# 3.12 lacks (pinned as here, manylinux x86_64), into .gpu_bundle/ (ignored; carried there).
# How to run the check there: docs/GPU.md.
gpu-bundle: $(STAMP)
	$(BIN)/python benchmarks/gpu_parts/bundle.py .gpu_bundle
	du -sh .gpu_bundle
