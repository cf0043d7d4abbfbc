"""The student: AP-HiDiff's inference core, pruned and distilled, saved without pickle.

A student checkpoint is a folder:
    student.json        {"format": "hidiff-student/1", "model": the teacher's ModelConfig,
                         "mr_scales", "teacher": {run, checkpoint_sha256}, "pruning_history":
                         torch-pruning's history (module name, out/in, channel indices),
                         "sampler": the sampler the student was distilled for (or null)}
    weights.safetensors the student's tensors
Loading rebuilds the teacher's architecture, strips the training-only parts, replays the
pruning history with torch-pruning on the same example input, and loads the weights: no
module is ever pickled (`torch.save`/`torch.load` of modules never happen).

What is stripped (`inference_core`): everything `encode`/`denoise` never run: the VQ-VAE's
decoder, modality encoder and MR stem, the lesion head, the wavelet loss and the U-Net's coarse
output heads (multi-scale training only). They would otherwise hold channels the pruner cannot
see (they are not on the traced inference path) and break after pruning.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch_pruning as tp
from safetensors.torch import load as safetensors_load
from torch import nn

from edge_runtime.atomic import atomic_directory
from edge_runtime.errors import InputError
from models.aphidiff.config import ModelConfig
from models.aphidiff.model import APHiDiff
from models.training.checkpoint import tensors_bytes
from models.training.factory import build_model

STUDENT_FORMAT = "hidiff-student/1"
STUDENT_JSON = "student.json"
STUDENT_WEIGHTS = "weights.safetensors"


class EncodeDenoise(nn.Module):
    """encode + one denoise step as one forward: the graph torch-pruning traces, so channel
    groups that cross from the encoder's condition pyramid into the U-Net are pruned together."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, ct: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor, sequence: torch.Tensor
    ) -> torch.Tensor:
        return self.model.denoise(x_t, t, sequence, self.model.encode(ct, sequence))


def inference_core(model: nn.Module) -> APHiDiff:
    """`model` with every module that inference never runs removed (in place)."""
    if not isinstance(model, APHiDiff):
        raise InputError(f"only AP-HiDiff models are compressed, not {type(model).__name__}")
    model.lesion_head = None
    model.wavelet = None
    if model.vqvae is not None:
        model.vqvae.decoder = None
        model.vqvae.modality = None
        model.vqvae.anatomy.stem_mr = None
    unet = model.unet
    unet.heads = nn.ModuleList([nn.Identity() for _ in unet.heads[:-1]] + [unet.heads[-1]])
    unet.scale_heads = False
    return model


def example_inputs(mc: ModelConfig, size: int = 64) -> tuple[torch.Tensor, ...]:
    """A fixed small input for tracing: (ct, x_t, t, sequence); `size` divides by every stride."""
    g = torch.Generator().manual_seed(0)
    ct = torch.randn(1, mc.data.ct_channels, size, size, generator=g)
    x = torch.randn(1, 1, size, size, generator=g)
    return ct, x, torch.full((1,), 500.0), torch.zeros(1, dtype=torch.int64)


def fixed_layers(model: APHiDiff) -> list[nn.Module]:
    """Layers whose output channels are part of the model's contract, never pruned: the anatomy
    code (tied to the VQ codebook), the modality prior, and the prediction head (1 channel)."""
    keep: list[nn.Module] = [model.unet.heads[-1][-1]]
    if model.vqvae is not None:
        keep += [model.vqvae.anatomy.trunk[-1], model.vqvae.modality_prior]
    else:
        assert model.encoder is not None and model.sequence_code is not None
        keep += [model.encoder.trunk[-1], model.sequence_code]
    return keep


def dependency_graph(model: APHiDiff, mc: ModelConfig) -> tp.DependencyGraph:
    wrapper = EncodeDenoise(model).eval()
    return tp.DependencyGraph().build_dependency(
        wrapper, example_inputs=list(example_inputs(mc)), verbose=False
    )


def jsonable_history(history: list) -> list[list[Any]]:
    """torch-pruning's history with plain ints (it may hold numpy or tensor indices)."""
    return [[str(name), bool(out), [int(i) for i in idx]] for name, out, idx in history]


@dataclass
class Student:
    """A student network with what is needed to save it and to say where it came from."""

    model: APHiDiff
    mc: ModelConfig
    mr_scales: dict[str, float]
    teacher: dict[str, Any]
    pruning_history: list[list[Any]] = field(default_factory=list)
    sampler: dict[str, Any] | None = None

    def save(self, folder: Path) -> Path:
        """Write the checkpoint folder atomically (complete or absent)."""
        doc = {
            "format": STUDENT_FORMAT,
            "model": self.mc.to_dict(),
            "mr_scales": self.mr_scales,
            "teacher": self.teacher,
            "pruning_history": self.pruning_history,
            "sampler": self.sampler,
        }
        with atomic_directory(Path(folder), overwrite=True) as tmp:
            (tmp / STUDENT_WEIGHTS).write_bytes(tensors_bytes(self.model.state_dict()))
            (tmp / STUDENT_JSON).write_text(json.dumps(doc, indent=1) + "\n")
        return Path(folder)


def core_from_config(mc: ModelConfig, history: list[list[Any]]) -> APHiDiff:
    """The teacher's architecture, stripped, with `history` replayed (weights not loaded)."""
    model = inference_core(build_model(mc)).eval()
    if history:
        dg = dependency_graph(model, mc)
        # the wrapper's module names start with "model."
        dg.load_pruning_history([(name, out, idx) for name, out, idx in history])
    return model


def load_student(folder: Path) -> Student:
    """A student checkpoint folder back as a `Student` (weights loaded, eval mode)."""
    folder = Path(folder)
    path = folder / STUDENT_JSON
    if not path.is_file():
        raise InputError(f"{folder}: not a student checkpoint (no {STUDENT_JSON})")
    doc = json.loads(path.read_text())
    if doc.get("format") != STUDENT_FORMAT:
        raise InputError(f"{path}: unknown format {doc.get('format')!r}, expected {STUDENT_FORMAT}")
    mc = ModelConfig.from_dict(doc["model"])
    model = core_from_config(mc, doc["pruning_history"])
    model.load_state_dict(safetensors_load((folder / STUDENT_WEIGHTS).read_bytes()))
    return Student(
        model.eval(),
        mc,
        doc["mr_scales"],
        doc["teacher"],
        doc["pruning_history"],
        doc.get("sampler"),
    )


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def encoder_denoiser_gflops(model: APHiDiff, mc: ModelConfig, size: int) -> tuple[float, float]:
    """(encoder, one denoiser step) GMACs x 2 at a `size`^2 slice, counted by torch-pruning."""
    from models.aphidiff.graphs import EncoderGraph

    ct, x, t, seq = example_inputs(mc, size)
    enc_macs, _ = tp.utils.count_ops_and_params(EncoderGraph(model).eval(), (ct, seq))
    all_macs, _ = tp.utils.count_ops_and_params(EncodeDenoise(model).eval(), (ct, x, t, seq))
    return 2 * enc_macs / 1e9, 2 * (all_macs - enc_macs) / 1e9
