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

test: $(STAMP)
	$(PY) -m pytest -q -m "not gpu" --durations=15 tests

clean:
	rm -rf $(VENV) build *.egg-info
