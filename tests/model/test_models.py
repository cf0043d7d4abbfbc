"""Forward shapes of every model and part, ablations, configs and presets."""

import dataclasses

import pytest
import torch

from models.aphidiff.config import Ablation, ModelConfig, preset
from models.aphidiff.fusion import GatedFusion
from models.aphidiff.model import APHiDiff
from models.aphidiff.vqvae import VQVAE
from models.baselines.ddpm import ConditionalDDPM
from models.baselines.pix2pix import Pix2Pix
from models.training.factory import build_model

B, H = 2, 64


def _batch(cfg: ModelConfig) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {
        "ct": torch.rand(B, cfg.data.ct_channels, H, H, generator=g) * 2 - 1,
        "mr": torch.rand(B, 1, H, H, generator=g) * 2 - 1,
        "sequence": torch.tensor([0, 2]),
        "vessels": (torch.rand(B, 1, H, H, generator=g) > 0.9).float(),
        "lesions": (torch.rand(B, H, H, generator=g) > 0.98).long(),
    }


def test_aphidiff_graph_shapes():
    cfg = preset("tiny")
    m = APHiDiff(cfg).eval()
    batch = _batch(cfg)
    conds = m.encode(batch["ct"], batch["sequence"])
    assert [tuple(c.shape) for c in conds] == [
        (B, cfg.unet.base_channels, H // 2**i, H // 2**i) for i in range(3)
    ]
    t = torch.tensor([3.0, 700.0])
    out = m.denoise(batch["mr"], t, batch["sequence"], conds)
    assert out.shape == (B, 1, H, H)
    scales = m.denoise(batch["mr"], t, batch["sequence"], conds, all_scales=True)
    assert [tuple(s.shape) for s in scales] == [(B, 1, H // 2**i, H // 2**i) for i in range(3)]
    # the full-resolution head of all_scales is the inference output
    torch.testing.assert_close(scales[0], out)


def test_vqvae_codes_and_decoder_shapes():
    cfg = preset("tiny")
    vq = VQVAE(cfg.vqvae, cfg.data.ct_channels, ct_center=1).eval()
    batch = _batch(cfg)
    za, _ = vq.encode_anatomy_ct(batch["ct"])
    zm = vq.modality(batch["mr"])
    f = 2**cfg.vqvae.downsamples
    assert za.shape == (B, cfg.vqvae.code_dim, H // f, H // f)
    assert zm.shape == (B, cfg.vqvae.modality_dim)
    assert vq.decoder(za, zm).shape == (B, 1, H, H)
    # every anatomy vector is a codebook entry
    flat = za.permute(0, 2, 3, 1).reshape(-1, cfg.vqvae.code_dim)
    dist = torch.cdist(flat, vq.quantizer.codebook)
    assert dist.min(dim=1).values.max() < 1e-3  # straight-through adds float rounding
    losses = vq.losses(batch["ct"], batch["mr"], batch["sequence"] + 1)
    assert {"vq_rec_ct", "vq_rec_mr", "vq_cross_mr", "vq_cross_ct", "vq_commit"} <= set(losses)


def test_gate_is_in_unit_interval_and_switches_off():
    za, zm = torch.randn(2, 8, 4, 4), torch.randn(2, 16)
    fusion = GatedFusion(8, 16, 12)
    g = fusion.gate(za, zm)
    assert g.shape == (2, 12, 4, 4) and g.min() > 0 and g.max() < 1
    plain = GatedFusion(8, 16, 12, gate=False)
    plain.load_state_dict(fusion.state_dict(), strict=False)  # all but W_g
    a, m = fusion.anatomy(za), fusion.modality(zm)[:, :, None, None]
    torch.testing.assert_close(plain(za, zm), a + m)
    torch.testing.assert_close(fusion(za, zm), g * a + (1 - g) * m)


def test_baseline_shapes():
    cfg = preset("tiny", "ddpm")
    batch = _batch(cfg)
    ddpm = ConditionalDDPM(cfg).eval()
    conds = ddpm.encode(batch["ct"], batch["sequence"])
    assert ddpm.denoise(batch["mr"], torch.ones(B), batch["sequence"], conds).shape == (B, 1, H, H)
    p2p = Pix2Pix(preset("tiny", "pix2pix")).eval()
    fake = p2p.generate(batch["ct"], batch["sequence"])
    assert fake.shape == (B, 1, H, H) and fake.abs().max() <= 1
    score = p2p.discriminator(batch["ct"], fake)
    assert score.shape[0] == B and score.shape[1] == 1 and score.shape[2] > 1


@pytest.mark.parametrize("model", ["ap-hidiff", "ddpm", "pix2pix"])
def test_training_losses_are_finite_and_differentiable(model):
    cfg = preset("tiny", model)
    m = build_model(cfg)
    batch = _batch(cfg)
    g = torch.Generator().manual_seed(1)
    terms = m.training_losses(batch, g, "g") if model == "pix2pix" else m.training_losses(batch, g)
    assert torch.isfinite(terms["loss"])
    terms["loss"].backward()
    grads = [p.grad for p in m.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(gr).all() for gr in grads)


PART_TERMS = {
    "disentangle": "vq_rec_mr",
    "multiscale": "multiscale",
    "anatomical_loss": "anatomical",
    "lesion_loss": "lesion",
    "wavelet_loss": "wavelet",
}


@pytest.mark.parametrize("part", [f.name for f in dataclasses.fields(Ablation)])
def test_each_ablation_switches_one_part_off(part):
    cfg = preset("tiny")
    cfg.ablation = Ablation.parse([part])
    m = APHiDiff(cfg)
    terms = m.training_losses(_batch(cfg), torch.Generator().manual_seed(0))
    full_terms = set(APHiDiff(preset("tiny")).training_losses(_batch(cfg), torch.Generator()))
    if part in PART_TERMS:
        assert PART_TERMS[part] not in terms
        assert full_terms - set(terms) == (
            {k for k in full_terms if k.startswith("vq_")}
            if part == "disentangle"
            else {PART_TERMS[part]}
        )
    else:  # gate: same terms, no gated fusion
        assert set(terms) == full_terms and not m.fusion.use_gate
    if part == "disentangle":
        assert m.vqvae is None


def test_unknown_ablation_is_a_user_error():
    from edge_runtime.errors import InputError

    with pytest.raises(InputError, match="unknown ablation"):
        Ablation.parse(["gates"])


def test_config_round_trips_through_json_dict():
    import json

    cfg = preset("small")
    cfg.ablation = Ablation.parse(["gate"])
    back = ModelConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert back == cfg


@pytest.mark.parametrize("name", ["tiny", "small", "full"])
def test_presets_build_and_grow(name):
    m = APHiDiff(preset(name))
    n = sum(p.numel() for p in m.parameters())
    bounds = {"tiny": (1e5, 2e6), "small": (2e6, 3e7), "full": (1e7, 3e8)}[name]
    assert bounds[0] < n < bounds[1]


def test_gradient_checkpointing_gives_same_gradients():
    cfg = preset("tiny", "ddpm")
    batch = _batch(cfg)
    grads = []
    for ckpt in (False, True):
        cfg.unet.gradient_checkpointing = ckpt
        torch.manual_seed(0)
        m = ConditionalDDPM(cfg)
        m.training_losses(batch, torch.Generator().manual_seed(3))["loss"].backward()
        grads.append(torch.cat([p.grad.flatten() for p in m.parameters() if p.grad is not None]))
    torch.testing.assert_close(grads[0], grads[1])


@pytest.mark.parametrize(
    "variant", ["ap-hidiff", "ddpm", *[f"ablate:{f.name}" for f in dataclasses.fields(Ablation)]]
)
def test_every_parameter_is_trained(variant):
    """Each parameter gets a gradient: nothing is dead weight, and DDP needs no
    find_unused_parameters (which it would otherwise demand and slow down for)."""
    model = "ddpm" if variant == "ddpm" else "ap-hidiff"
    cfg = preset("tiny", model)
    if variant.startswith("ablate:"):
        cfg.ablation = Ablation.parse([variant.split(":")[1]])
    m = build_model(cfg)
    m.training_losses(_batch(cfg), torch.Generator().manual_seed(0))["loss"].backward()
    unused = [n for n, p in m.named_parameters() if p.grad is None]
    assert not unused


def test_pix2pix_phases_train_their_side():
    cfg = preset("tiny", "pix2pix")
    m = Pix2Pix(cfg)
    for phase, side in (("d", m.discriminator), ("g", m.generator)):
        m.zero_grad(set_to_none=True)
        m.training_losses(_batch(cfg), torch.Generator(), phase)["loss"].backward()
        assert all(p.grad is not None for p in side.parameters())
