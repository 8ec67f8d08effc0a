"""FP32 export and INT8: the per-format operations (formats), the post-training recipes
(recipes), quantization-aware fine-tuning (qat) and its ONNX graph edits (graph), and the
quantize stage that tries them in order against the gate (stage)."""
