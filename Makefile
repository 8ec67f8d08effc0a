# Two set-up commands that work on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-dev

.PHONY: demo test install rknn-toolkit clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# The main job on the built-in default, in demo sizes: the demo teacher (tiny MotivNet trained
# on synthetic faces, cached) distilled into the default student, exported and quantised to INT8
# ONNX, OpenVINO IR and TFLite, validated; the daemon on a generated video over MQTT; the
# benchmark table of every artifact against the teacher.
DEMO_OUT ?= out/demo

demo: $(STAMP)
	$(VENV)/bin/motivnet-edge info --model motivnet-tiny
	$(VENV)/bin/motivnet-edge compress --out $(DEMO_OUT)
	$(PY) -m motivnet_edge.edge.demo --artifacts $(DEMO_OUT)
	$(VENV)/bin/motivnet-edge bench --artifacts $(DEMO_OUT) --out $(DEMO_OUT)/bench \
		--rounds 3 --per-round 5

# rknn-toolkit2 (RKNN files for Rockchip NPUs) in a venv of its own under the project cache: its
# pins (numpy<=1.26.4, onnx<=1.18) cannot share this one (compress/int8/rknn_ops.py)
rknn-toolkit: $(STAMP)
	$(PY) -m motivnet_edge.compress.int8.rknn_ops --install

# Two pytest processes side by side: the tests on a Debian root (an emulated arm64 install
# runs pip under qemu on one core; the roots are built by mmdebstrap) and all the others (which
# leave about half of two cores idle); the first one's output is kept in $(ROOT_LOG) and shown
# when both have finished. Either failing fails the target.
ROOT_LOG ?= $(VENV)/tests-on-roots.log

test: $(STAMP)
	@echo "tests on Debian roots run beside the others; their log: $(ROOT_LOG)"
	@$(PY) -m pytest -q -m "not gpu and root" --durations=10 -p no:cacheprovider \
		--basetemp=$(CURDIR)/$(VENV)/pytest-roots tests > $(ROOT_LOG) 2>&1 & roots=$$!; \
	$(PY) -m pytest -q -m "not gpu and not root" --durations=15 tests; rest=$$?; \
	wait $$roots; onroots=$$?; \
	echo "--- tests on Debian roots (exit $$onroots) ---"; cat $(ROOT_LOG); \
	test $$rest = 0 && test $$onroots = 0

clean:
	rm -rf $(VENV) build *.egg-info
