# deg: the front door. `make help` lists the targets.
PROFILE  ?= demo
DATASETS ?=
CORES    ?= all
PY       := .venv/bin/python
SNAKE    := .venv/bin/snakemake --snakefile workflow/Snakefile --cores $(CORES) \
            --config profile=$(PROFILE) datasets="$(DATASETS)"

.PHONY: help setup test figures data bench predict tune clean

help:            ## list the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-9s %s\n", $$1, $$2}'

setup:           ## create .venv and install deg (editable) with pinned dependencies
	python3.11 -m venv .venv || python3 -m venv .venv
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e .
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null

test:            ## run the test suite (CPU, tiny profile; fails when no test is collected)
	$(PY) -m pytest -q

figures:         ## regenerate every figure: PROFILE=tiny|demo|paper, DATASETS="a b" narrows
	$(SNAKE) --rerun-incomplete

data:            ## prepare the datasets of PROFILE (synthetic generation, downloads or mirror)
	$(SNAKE) --rerun-incomplete data_all

bench:           ## inference frames/s and training steps/s of DEG_f/m/s -> results/bench.json
	$(PY) -m deg.bench

predict:         ## predict VIDEOS="a.mp4 b.mp4" with the trained RUN=results/.../split0
	$(PY) -m deg.infer --run $(RUN) $(VIDEOS)

tune:            ## hyperparameter search: DATASET= PRESET= STAGE=feature|sequence TRIALS= [JOBS=] [SPLIT=]
	$(PY) -m deg.tune $(DATASET) $(PRESET) --stage $(STAGE) --trials $(or $(TRIALS),20) \
	    --profile $(PROFILE) --split $(or $(SPLIT),0) --jobs $(or $(JOBS),1)

clean:           ## remove results/ and figures/ of PROFILE (data/ is kept)
	rm -rf results/$(PROFILE) figures/$(PROFILE)
