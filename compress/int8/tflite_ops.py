"""TFLite in the compress chain: the FP32 export and full-integer INT8 through litert-torch (NHWC
input), int8 weights only (ai-edge-quantizer), and the quantization-aware fine-tuned graph."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import torch

from motivnet_edge.compress.int8.recipes import Calibration, Recipe
from motivnet_edge.targets.formats import FORMATS, artifact_name
from motivnet_edge.targets.preprocess import CropSpec


def nhwc_module(model: torch.nn.Module) -> torch.nn.Module:
    """The model taking NHWC input (litert-torch's wrapper), LiteRT's logging quietened."""
    import litert_torch

    from motivnet_edge.compress.quiet import quiet_litert

    quiet_litert()

    return litert_torch.to_channel_last_io(model.eval(), args=[0]).eval()


def export(model: torch.nn.Module, spec: CropSpec, tmp: Path, out_dir: Path) -> None:
    """The FP32 student with NHWC input, the layout LiteRT and XNNPACK prefer (litert-torch)."""
    import litert_torch

    x = torch.zeros(FORMATS["tflite"].crop(spec).input_shape)
    litert_torch.convert(nhwc_module(model), (x,)).export(str(tmp))


def quantize(cal: Calibration, recipe: Recipe, tmp: Path) -> None:
    """Full integer through litert-torch's PT2E flow: symmetric per-channel int8 weights, int8
    activations; every Linear left in float for a recipe that keeps ``linear``."""
    import litert_torch

    from motivnet_edge.compress.quiet import quiet_litert

    quiet_litert()
    from litert_torch.quantize import pt2e_quantizer as pq
    from litert_torch.quantize.quant_config import QuantConfig
    from torchao.quantization.pt2e import quantize_pt2e

    from motivnet_edge.compress.int8.qat import split_output_concat

    calib = cal.inputs
    x = torch.from_numpy(calib[:1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exported = torch.export.export(nhwc_module(cal.model), (x,)).module()
        split_output_concat(exported)  # a two-head student: each head its own output
        quantizer = pq.PT2EQuantizer().set_global(
            pq.get_symmetric_quantization_config(is_per_channel=True))
        if "linear" in recipe.keep_float:
            # litert-torch can exclude by module type only: every Linear stays float (in a CNN
            # just the classifier; in a ViT most of the model, which the file inspection shows)
            quantizer.set_module_type(torch.nn.Linear, None)
        prepared = quantize_pt2e.prepare_pt2e(exported, quantizer)
        with torch.no_grad():
            for i in range(len(calib)):
                prepared(torch.from_numpy(calib[i:i + 1]))
        converted = quantize_pt2e.convert_pt2e(prepared, fold_quantize=False)
        litert_torch.convert(converted, (x,), quant_config=QuantConfig(pt2e_quantizer=quantizer)
                             ).export(str(tmp))


def weights_only(fp32: Path, tmp: Path) -> None:
    """int8 weights, float activations (ai-edge-quantizer's weight-only recipe)."""
    from ai_edge_quantizer import quantizer
    from ai_edge_quantizer import recipe as aeq_recipe

    q = quantizer.Quantizer(str(fp32))
    q.load_quantization_recipe(aeq_recipe.weight_only_wi8_afp32())
    q.quantize().export_model(str(tmp), overwrite=True)


def export_qat(prepared, quantizer, spec: CropSpec, path: Path) -> None:
    """The fine-tuned graph as full-integer TFLite with NHWC input (float weights quantised in
    the graph: what LiteRT's converter takes)."""
    import litert_torch

    from motivnet_edge.compress.quiet import quiet_litert

    quiet_litert()
    from litert_torch.quantize.quant_config import QuantConfig

    from motivnet_edge.compress.int8.qat import convert, split_output_concat

    converted = convert(prepared)
    split_output_concat(converted)  # a two-head student: each head its own output
    x = torch.zeros(FORMATS["tflite"].crop(spec).input_shape)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        litert_torch.convert(ChannelsLast(converted), (x,),
                             quant_config=QuantConfig(pt2e_quantizer=quantizer)
                             ).export(str(path))


class ChannelsLast(torch.nn.Module):
    """NHWC in, the NCHW graph inside (LiteRT's own wrapper cannot hold a converted graph)."""

    def __init__(self, graph: torch.nn.Module) -> None:
        super().__init__()
        self.body = graph

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x.permute(0, 3, 1, 2))


def from_qat(folder: Path, tmp: Path, cal: Calibration | None = None) -> None:
    """The fine-tuned student's full-integer TFLite file, as it is."""
    shutil.copyfile(folder / artifact_name("student", "int8", "tflite"), tmp)
