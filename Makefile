# Two commands do all the set-up on a fresh machine:
#   make demo   builds the built-in builtin:patches data set and trains the tiny CG-GAN preset on the CPU
#   make test   runs the test suite
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
DEMO   ?= demo-out

.PHONY: demo test venv clean-venv

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

test: venv
	$(PY) -m pytest tests -q -p no:cacheprovider

demo: venv
	$(PY) dataset_tool.py --source=builtin:patches --dest=$(DEMO)/patches-16.zip --resolution=16 --max-images=10000 --seed=0 --overwrite
	$(PY) train.py --outdir=$(DEMO)/runs --data=$(DEMO)/patches-16.zip --cfg=tiny --cbase=512 --cmax=32 --i-dim=8 --model=cg-gan --aug=noaug --kimg=100 --tick=20 --snap=5 --metrics=none
	$(PY) tools/demo_report.py --run=$(DEMO)/runs --data=$(DEMO)/patches-16.zip --outdir=$(DEMO)/swap
	@echo "Done: grids and snapshots are in $(DEMO)/runs/ (fakes*.png, network-snapshot-*.pt), the swap grid in $(DEMO)/swap/."

clean-venv:
	rm -rf $(VENV)
