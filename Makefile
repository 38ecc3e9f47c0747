# Two entry points for a fresh clone (see README.md):
#   make repro   install everything into .venv, then run the whole DVC pipeline on the real corpora
#   make test    install everything into .venv, then lint and run the test suite
#   make verify  re-hash every DVC output and cache object against dvc.lock (DVC itself trusts file metadata)
#   make cv-report   gather the folds run as separate experiments (reports/folds/<k>/; FOLDS="1 2" picks) into reports/cv/
#                    (REPORTS=reports/candidate-one-version: those of issue 13's recipe that was not kept;
#                    REPORTS=reports/tess-once METRICS=metrics/cv-6fold.json: the default's six folds)
#   make plots-template  rebuild .dvc/plots/offline.html, the offline page of dvc plots (needs npm; maintainers)
#   make report  report/report.md: dvc metrics diff and params diff against AGAINST (default main), and the figures
# Set SER_DATA_MIRROR to a folder holding ravdess/, tess/ and cremad/ to read the corpora from there.

VENV := .venv
BIN := $(VENV)/bin
# torch is pinned so pip takes the CPU wheel; on a CUDA machine install a CUDA build of the same version.
TORCH := torch==2.13.0

.PHONY: install repro test verify cv-report report plots-template

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH) -e '.[dev]'
	touch $@

# A relative SER_DATA_MIRROR is made absolute here: DVC runs queued experiments in other folders.
repro: install
	$(if $(SER_DATA_MIRROR),SER_DATA_MIRROR="$(abspath $(SER_DATA_MIRROR))") PATH="$(abspath $(BIN)):$$PATH" dvc repro

test: install
	$(BIN)/ruff check
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/pytest

verify: install
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m ser.verify

plots-template: install
	$(BIN)/python tools/plots_template.py

# What the workspace changes against a revision, for a pull request or a CI artefact: report/report.md and its images.
AGAINST ?= main
report: install
	$(BIN)/python -m ser.change_report --against $(AGAINST) --out report

# The cv stage's script over folds run as separate experiments, one session at a time: each fold's result files
# (metrics/folds/<k>/ and plots/folds/<k>/ of its experiment) committed to reports/folds/<k>/ as it finished.
# For the folds in FOLDS, into reports/cv/ (or those under REPORTS), the summary into METRICS. The default's six
# folds: make cv-report REPORTS=reports/tess-once METRICS=metrics/cv-6fold.json (dvc metrics show metrics/cv-6fold.json).
REPORTS ?= reports
METRICS ?= $(REPORTS)/cv/cv.json
FOLDS ?= $(sort $(notdir $(wildcard $(REPORTS)/folds/*)))
CV_PARAMS := $(REPORTS)/cv/params.yaml
comma := ,
empty :=
space := $(empty) $(empty)

cv-report: install
	mkdir -p $(REPORTS)/cv
	printf 'cv:\n  folds: [%s]\n' "$(subst $(space),$(comma),$(strip $(FOLDS)))" > $(CV_PARAMS)
	$(BIN)/python src/stages/cv.py --params $(CV_PARAMS) --fold-metrics $(REPORTS)/folds --fold-plots $(REPORTS)/folds \
		--baseline plots/baseline/folds.csv --metrics $(METRICS) --folds $(REPORTS)/cv/folds.csv --predictions $(REPORTS)/cv/predictions.csv \
		--history $(REPORTS)/cv/training.csv --confusion $(REPORTS)/cv/confusion.png
