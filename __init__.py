"""motivnet-edge: MotivNet facial-emotion recognition compressed for edge devices.

The repository root is the package ``motivnet_edge``; its folders are its subpackages, in the
one direction they depend on each other:

- ``motivnet_edge.targets``: the artifact contract (errors, labels, the crop spec and the one
  crop-and-preprocess function, the format table, metadata, manifest), engines and profiles;
- ``motivnet_edge.edge``: the device application (detection, sources, tracker, pipeline, MQTT,
  config, daemon, command line), on top of ``targets``;
- ``motivnet_edge.compress``: distillation, export and INT8 (torch), on top of both;
- ``motivnet_edge.benchmarks``: measurements, using all three;
- ``motivnet_edge.experiments``: the measurements that chose the project's defaults.

The package root offers the Python API: ``from motivnet_edge import EmotionRecognizer``
(:mod:`motivnet_edge.edge.api`, docs/api.md).
"""

__version__ = "0.1.0"

# the Python API (docs/api.md), imported when first named: ``import motivnet_edge`` stays light
API = {"EmotionRecognizer": "motivnet_edge.edge.api", "FaceEmotion": "motivnet_edge.edge.api",
       "FrameEmotions": "motivnet_edge.edge.api",
       "MotivnetError": "motivnet_edge.targets.errors"}
__all__ = ["__version__", *API]


def __getattr__(name: str):
    if name in API:
        import importlib

        return getattr(importlib.import_module(API[name]), name)
    raise AttributeError(f"module 'motivnet_edge' has no attribute {name!r}")
