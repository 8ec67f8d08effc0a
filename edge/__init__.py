"""The device application: face detection, frame sources, the per-frame pipeline, MQTT, the
config, the daemon, ``classify``, bundles and their check, the shipped models, and the
``motivnet-edge`` command line.

Imports numpy and OpenCV only; never torch.
"""
