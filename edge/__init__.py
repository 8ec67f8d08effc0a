"""On-device runtime: preprocessing, face detection, labels and the command line.

Imports numpy and OpenCV only; never torch.
"""
