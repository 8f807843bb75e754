# deg: the front door. `make help` lists the targets.
PROFILE  ?= demo
DATASETS ?=
# JSON object of Profile fields / HPARAMS entries to replace, e.g. OVERRIDES='{"flow_steps": 2}';
# results then go to results/<PROFILE>+<digest>/ (see README, "Overrides")
OVERRIDES ?=
CORES    ?= all
PY       := .venv/bin/python
SNAKE    := .venv/bin/snakemake --snakefile workflow/Snakefile --cores $(CORES) \
            --config profile=$(PROFILE) datasets="$(DATASETS)" overrides='$(OVERRIDES)'

.PHONY: help setup test soak figures data bench bench-published predict course tune clean

help:            ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-15s %s\n", $$1, $$2}'

setup:           ## create .venv and install deg (editable) with pinned dependencies
	python3.11 -m venv .venv || python3 -m venv .venv
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e .
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null

test:            ## run the test suite (CPU, tiny profile; fails when no test is collected); TEST_JOBS=1 runs it in one process
	@# one pytest-xdist worker per core (TEST_JOBS, default auto); a test file stays on one worker, so
	@# module and session fixtures are built once; --no-loadscope-reorder keeps tests/conftest.py's longest-first order
	@# (xdist's default hands out the files with most tests first, the one-test end-to-end files last)
	$(PY) -m pytest -q -n $(or $(TEST_JOBS),auto) --dist loadfile --no-loadscope-reorder

soak:            ## long fault injection: a whole tiny run killed in every stage and dataset preparation, SOAK_ROUNDS times (default 5)
	DEG_SOAK=$(or $(SOAK_ROUNDS),5) $(PY) -m pytest -q tests/reliability/test_runs.py

figures:         ## regenerate every figure: PROFILE=tiny|demo|paper, DATASETS="a b" narrows, OVERRIDES='{"flow_steps":2}' replaces profile fields
	@# data first: the plan trains a dataset when its prepared folder has videos (deg.workflow)
	$(SNAKE) --rerun-incomplete data_all
	$(SNAKE) --rerun-incomplete

data:            ## prepare the datasets of PROFILE; DATASET=id [FROM=archive_or_folder] prepares one
ifdef DATASET
	$(PY) -m deg.data.prepare $(DATASET) $(if $(FROM),--from "$(FROM)")
else
	$(SNAKE) --rerun-incomplete data_all
endif

bench:           ## inference frames/s and training steps/s of DEG_f/m/s -> results/bench.json
	$(PY) -m deg.bench

bench-published: ## side by side with the published deepethogram 0.5.0 (own venv) -> results/_bench/published.{md,json}
	$(PY) -m deg.bench_published $(if $(THREADS),--threads $(THREADS))

predict:         ## predict VIDEOS="a.mp4 b.mp4" with the trained RUN=results/.../split0 [BACKEND=eager|onnxruntime|onnxruntime-int8|auto]
	$(PY) -m deg.infer --run $(RUN) $(if $(BACKEND),--backend $(BACKEND)) $(VIDEOS)

tune:            ## hyperparameter search: DATASET= PRESET= STAGE=feature|sequence TRIALS= [JOBS=] [SPLIT=]
	$(PY) -m deg.tune $(DATASET) $(PRESET) --stage $(STAGE) --trials $(or $(TRIALS),20) \
	    --profile $(PROFILE) --split $(or $(SPLIT),0) --jobs $(or $(JOBS),1)

course:          ## build the course notebooks, execute every lesson (solutions) -> results/course/
	$(PY) -m deg.course.build --execute results/course

clean:           ## remove results/ and figures/ of PROFILE, its override folders too (data/ is kept)
	rm -rf results/$(PROFILE) figures/$(PROFILE) results/$(PROFILE)+* figures/$(PROFILE)+*
