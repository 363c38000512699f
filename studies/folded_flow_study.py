"""Does folding a trained flow's constants into its convolutions make the exported graph faster?

    python studies/folded_flow_study.py --backbones resnet18 wide_resnet50_2 --repeats 20

Each ``FastFlowBlock`` computes, for an input split into the passive half ``x1`` and the active
half ``x2`` (FrEIA's ``AllInOneBlock``, forward direction)::

    a = 0.1 * subnet(x1);  y2 = x2 * exp(clamp * tanh(a_s)) + a_t
    out = permute(cat(x1, y2) * g + o)          # g, o: the global affine scale and shift

Once trained, ``0.1`` and the active half's ``g`` and ``o`` are constants and fold into the
subnet's last convolution (its scale rows times ``0.1``, its shift rows times ``0.1 * g`` with ``o``
added to their bias, and ``g > 0`` moved into the exponent as ``log g``)::

    u, t = split(conv2'(relu(conv1(x1))));  y2 = x2 * exp(clamp * tanh(u) + log g2) + t
    out = permute(cat(x1 * g1 + o1, y2))

so the elementwise work over the whole map becomes work over half of it. The anomaly map reads
``mean_c z_c^2``, which does not depend on the order of channels, so the last step's permutation
can be dropped as well. Variants, each exported with our exporter (ONNX, OpenVINO FP32) from the
same random model (parameters moved off their initial values): ``plain`` (the flows as trained),
``folded`` (constants folded, every permutation kept), ``folded, last permutation dropped``. Each
variant's map is checked against ``plain`` (within 1e-4 of its range, else the study stops), then
the variants are timed in turns at batch 1. Prints a Markdown table with the CPU named
(``docs/deployed_speed.md``).
"""

import argparse
import copy
import tempfile
from pathlib import Path

import numpy as np
import torch
from FrEIA.framework import SequenceINN
from torch import nn
from torch.nn import functional as F

from anomalib_fastflow import FastFlow
from anomalib_fastflow.export import OnnxRuntime, OpenVINORuntime, export_formats
from anomalib_fastflow.export.parity import measure_latencies
from anomalib_fastflow.flow import FastFlowBlock
from anomalib_fastflow.provenance import provenance

# variant -> keep the last step's permutation (None: the flows as trained)
VARIANTS: dict[str, bool | None] = {"plain": None, "folded": True, "folded, last permutation dropped": False}


class FusedCouplingStep(nn.Module):
    """One ``FastFlowBlock`` with its constants folded: ``(N, C, H, W) -> (N, C, H, W)``.

    Args:
        block: The trained block (left unchanged; its weights are copied).
        permute: Apply the block's channel permutation (False: channels come out unpermuted).
    """

    def __init__(self, block: FastFlowBlock, permute: bool = True) -> None:
        super().__init__()
        first, activation, last = block.subnet
        if not (
            isinstance(first, nn.Conv2d) and isinstance(activation, nn.ReLU) and isinstance(last, nn.Conv2d)
        ):
            msg = f"Expected a Conv2d -> ReLU -> Conv2d subnet, got {block.subnet}."
            raise TypeError(msg)
        passive, active = block.splits
        with torch.no_grad():
            scale = block.global_scale_activation(block.global_scale).reshape(-1)
            offset = block.global_offset.reshape(-1)
            weight, bias = last.weight.clone(), last.bias.clone()
            weight[:active] *= 0.1
            bias[:active] *= 0.1
            weight[active:] *= (0.1 * scale[passive:]).reshape(-1, 1, 1, 1)
            bias[active:] = 0.1 * bias[active:] * scale[passive:] + offset[passive:]
        self.first = copy.deepcopy(first)
        self.last = nn.Conv2d(last.in_channels, last.out_channels, last.kernel_size, padding=last.padding)
        self.last.weight.data.copy_(weight)
        self.last.bias.data.copy_(bias)
        self.splits = (passive, active)
        self.clamp = float(block.clamp)
        self.register_buffer("passive_scale", scale[:passive].reshape(1, -1, 1, 1).clone())
        self.register_buffer("passive_offset", offset[:passive].reshape(1, -1, 1, 1).clone())
        self.register_buffer("log_active_scale", torch.log(scale[passive:]).reshape(1, -1, 1, 1).clone())
        self.register_buffer("permutation", block.permutation.clone() if permute else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The block's output (permuted unless built with ``permute=False``)."""
        x1, x2 = torch.split(x, self.splits, dim=1)
        u, t = torch.split(self.last(F.relu(self.first(x1))), self.splits[1], dim=1)
        y2 = x2 * torch.exp(self.clamp * torch.tanh(u) + self.log_active_scale) + t
        out = torch.cat((x1 * self.passive_scale + self.passive_offset, y2), dim=1)
        return out if self.permutation is None else torch.index_select(out, 1, self.permutation)


class FusedFlow(nn.Module):
    """A trained flow for inference: ``(N, C, H, W)`` features -> latents ``z``, channel order free.

    Called as the flow it replaces, ``flow(x) -> (z, log_jac_det)``; the log-determinant is not
    computed (``None``). ``z`` holds the flow's latents in the last step's order before its
    permutation unless ``keep_last_permutation`` is set, so ``mean_c z_c^2`` (all the anomaly map
    reads) is the flow's.

    Args:
        flow: A trained ``SequenceINN`` of ``FastFlowBlock``s (left unchanged).
        keep_last_permutation: Permute the last step's output as the flow does.
    """

    def __init__(self, flow: SequenceINN, keep_last_permutation: bool = False) -> None:
        super().__init__()
        blocks = list(flow.module_list)
        if not blocks or not all(isinstance(block, FastFlowBlock) for block in blocks):
            msg = "FusedFlow folds flows of FastFlowBlocks only."
            raise TypeError(msg)
        self.steps = nn.Sequential(
            *(
                FusedCouplingStep(block, permute=keep_last_permutation or index < len(blocks) - 1)
                for index, block in enumerate(blocks)
            )
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, None]:
        """``(z, None)``: the latents and no log-determinant."""
        return self.steps(x), None


def export_variants(backbone: str, output: Path) -> tuple[dict[str, dict[str, Path]], tuple[int, int]]:
    """Each variant of one random model exported to ONNX and OpenVINO FP32; and the input size."""
    torch.manual_seed(0)
    model = FastFlow(backbone=backbone, weights="random").eval()
    trained = model.model.flows
    with torch.no_grad():
        for parameter in trained.parameters():  # off their initial values (offsets 0, scales 1)
            parameter.add_(0.05 * torch.randn_like(parameter))
    paths = {}
    for name, keep_last in VARIANTS.items():
        if keep_last is not None:
            model.model.flows = nn.ModuleList(FusedFlow(flow, keep_last) for flow in trained)
        paths[name], _ = export_formats(
            model, output / name.replace(" ", "_").replace(",", ""), ["onnx", "openvino_fp32"]
        )
        model.model.flows = trained
    return paths, tuple(model.input_size)


def main() -> None:
    """Export, check parity, time; print the table."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backbones", nargs="+", default=["resnet18", "wide_resnet50_2"])
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(2)
    work = Path(tempfile.mkdtemp(prefix="folded_flow_"))
    lines = [
        "| backbone | runtime | " + " | ".join(VARIANTS) + " | largest map difference / range |",
        "|---|---|" + "---|" * (len(VARIANTS) + 1),
    ]
    for backbone in args.backbones:
        paths, size = export_variants(backbone, work / backbone)
        images = np.random.default_rng(0).random((1, 3, *size), dtype=np.float32)
        for runtime, load in (
            ("onnxruntime", lambda p: OnnxRuntime(p["onnx"])),
            ("openvino", lambda p: OpenVINORuntime(p["openvino_fp32"])),
        ):
            runtimes = {name: load(p) for name, p in paths.items()}
            maps = {name: run(images)["anomaly_map"] for name, run in runtimes.items()}
            span = float(maps["plain"].max() - maps["plain"].min())
            worst = max(float(np.abs(m - maps["plain"]).max()) / span for m in maps.values())
            if worst > 1e-4:
                msg = f"{backbone}, {runtime}: a folded map differs by {worst:.1e} of the range from the plain one."
                raise AssertionError(msg)
            latencies = measure_latencies(runtimes, images, 1, args.repeats, 3)
            cells = [str(latencies[name]) for name in VARIANTS]
            lines.append(f"| {backbone} | {runtime} | " + " | ".join(cells) + f" | {worst:.1e} |")
            print(lines[-1], flush=True)
    print(
        "\n"
        + provenance("python studies/folded_flow_study.py")
        + "\n\nWhole model, batch 1, ms median (min-max):\n\n"
        + "\n".join(lines)
    )


if __name__ == "__main__":
    main()
