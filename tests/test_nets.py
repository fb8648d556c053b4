"""nets/: shapes, receptive fields and strides against the authors' diagrams; registry; export."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import nets

# (stage module, output (channels, size) for a 224x224 input, receptive field px, stride px),
# as the diagrams give them (e.g. ResNet50-Late-Concat-RFA-Thinner: rfa 32/8, res3 96/8,
# res4a 128/16, res4f 288/16, res5c 480/32).
STAGES = {
    "upsampling": [("trunk.layer3", 512, 28, 72, 8), ("trunk.layer4", 1024, 14, 264, 16), ("trunk.layer5", 2048, 7, 456, 32)],
    "upsampling_rfa": [("trunk.rfa", 1024, 28, 32, 8), ("trunk.layer3", 512, 28, 96, 8),
                       ("trunk.layer4", 1024, 14, 288, 16), ("trunk.layer5", 2048, 7, 480, 32)],
    "deconvolution_rfa": [("trunk.rfa", 1024, 28, 32, 8), ("trunk.layer3", 512, 28, 96, 8),
                          ("trunk.layer4", 1024, 14, 288, 16), ("trunk.layer5", 2048, 7, 480, 32)],
    "downsampling": [("luma.down", 256, 14, 16, 16), ("trunk.rfa", 1024, 14, 64, 16), ("trunk.layer3", 512, 14, 192, 16),
                     ("trunk.layer4", 1024, 14, 384, 16), ("trunk.layer5", 2048, 7, 576, 32)],
    "late_concat": [("luma.layer3", 512, 28, 72, 8), ("luma.layer4a", 512, 14, 104, 16), ("chroma.block", 512, 14, None, 16),
                    ("trunk.layer4", 1024, 14, 264, 16), ("trunk.layer5", 2048, 7, 456, 32)],
    "late_concat_rfa": [("luma.rfa", 1024, 28, 32, 8), ("luma.layer3", 512, 28, 96, 8), ("luma.layer4a", 512, 14, 128, 16),
                        ("chroma.block", 512, 14, None, 16), ("trunk.layer4", 1024, 14, 288, 16),
                        ("trunk.layer5", 2048, 7, 480, 32)],
    "late_concat_rfa_thinner": [("luma.rfa", 384, 28, 32, 8), ("luma.layer3", 384, 28, 96, 8),
                                ("luma.layer4a", 768, 14, 128, 16), ("chroma.block", 256, 14, None, 16),
                                ("trunk.layer4", 1024, 14, 288, 16), ("trunk.layer5", 2048, 7, 480, 32)],
}


def contract(batch=2, size=224, luma=64, chroma=128, dtype=torch.float32):
    return torch.randn(batch, luma, size // 8, size // 8, dtype=dtype), torch.randn(batch, chroma, size // 16, size // 16, dtype=dtype)


def test_registry():
    assert nets.list_models() == sorted(["resnet50", *STAGES])
    with pytest.raises(ValueError, match="unknown model"):
        nets.create_model("resnet51")
    with pytest.raises(ValueError, match="RGB input"):
        nets.create_model("resnet50", channels="dctnet24")
    assert nets.create_model("resnet50", num_classes=10)(torch.randn(1, 3, 64, 64)).shape == (1, 10)


@pytest.mark.parametrize("name", sorted(STAGES))
def test_stage_shapes_for_a_224_input(name):
    model = nets.create_model(name, num_classes=10).eval()
    seen = {}
    modules = dict(model.named_modules())
    for stage, *_ in STAGES[name]:
        modules[stage].register_forward_hook(lambda m, i, o, stage=stage: seen.__setitem__(stage, tuple(o.shape)))
    with torch.no_grad():
        assert model(*contract()).shape == (2, 10)
    for stage, channels, size, _, _ in STAGES[name]:
        assert seen[stage] == (2, channels, size, size), stage


def positive_copy(model: nn.Module) -> nn.Module:
    """Same graph, every weight positive and averaging: a unit's input gradient is
    non-zero exactly on its receptive field (no cancellation)."""
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.constant_(m.weight, 1.0 / m.weight[0].numel())
    return model.eval().double()


class _Reached(Exception):
    pass


def receptive_field(model: nn.Module, stage: str, field: int = 600) -> tuple[int, int]:
    """(receptive field, stride) in pixels of ``stage``'s centre unit, measured from the
    graph: the extent of its input gradient on the luma block grid (8 pixels a block)
    and how far that support moves when the unit moves by one. The input is a little
    wider than ``field`` pixels, and the forward pass stops at ``stage``."""
    blocks = 2 * (field // 16 + 6)
    y, cbcr = [t.abs().requires_grad_() for t in contract(1, blocks * 8, dtype=torch.float64)]
    out = {}

    def reached(module, inputs, output):
        out["x"] = output
        raise _Reached

    handle = dict(model.named_modules())[stage].register_forward_hook(reached)
    try:
        model(y, cbcr)
    except _Reached:
        pass
    finally:
        handle.remove()
    feature = out["x"]
    centre = feature.shape[-1] // 2
    supports = []
    for column in (centre, centre + 1):
        (grad,) = torch.autograd.grad(feature[0, :, centre, column].sum(), y, retain_graph=True)
        cols = grad[0].abs().sum(dim=(0, 1)).nonzero().flatten()
        supports.append((int(cols.min()), int(cols.max())))
    (first, last), (moved, _) = supports
    assert first > 0 and last < blocks - 1, "the support reached the border: widen the input"
    return 8 * (last - first + 1), 8 * (moved - first)


@pytest.mark.parametrize("name", sorted(STAGES))
def test_receptive_fields_and_strides_match_the_diagrams(name):
    model = positive_copy(nets.create_model(name, num_classes=10))
    for stage, _, _, field, stride in STAGES[name]:
        if field is None:  # chroma-only stages do not see the luma
            continue
        assert receptive_field(model, stage, field) == (field, stride), stage


def test_rfa_blocks_grow_the_receptive_field_like_rgb_resnet50():
    """RGB ResNet-50 (v1) reaches 99 px at the end of stage 3 and 131 at res4a; the
    RFA models reach 96 and 128, the plain Late-Concat only 72 and 104."""
    thinner = positive_copy(nets.create_model("late_concat_rfa_thinner"))
    plain = positive_copy(nets.create_model("late_concat"))
    assert receptive_field(thinner, "luma.layer3", 96)[0] == 96 and receptive_field(plain, "luma.layer3", 72)[0] == 72


def test_channel_subsets_and_zero_init():
    model = nets.create_model("late_concat_rfa_thinner", num_classes=5, channels="dctnet24", zero_init_residual=True)
    assert model(*contract(luma=16, chroma=8)).shape == (2, 5)
    block = model.luma.layer3.a
    assert not block.last_bn.weight.any()
    deconv = nets.create_model("deconvolution_rfa", num_classes=5, in_channels=(16, 8))
    assert deconv(*contract(luma=16, chroma=8)).shape == (2, 5)


def test_count_of_trainable_parameters_per_variant_is_resnet50_scale():
    counts = {name: sum(p.numel() for p in nets.create_model(name).parameters()) for name in nets.list_models()}
    assert 25_000_000 < counts["resnet50"] < 26_000_000
    assert counts["late_concat_rfa_thinner"] < counts["resnet50"] < counts["late_concat_rfa"]


def test_channels_last_autocast_compile_and_export():
    model = nets.create_model("late_concat_rfa_thinner", num_classes=10).eval()
    y, cbcr = contract()
    with torch.no_grad():
        reference = model(y, cbcr)
        cl = model.to(memory_format=torch.channels_last)
        out = cl(y.to(memory_format=torch.channels_last), cbcr.to(memory_format=torch.channels_last))
        torch.testing.assert_close(out, reference, rtol=1e-4, atol=1e-4)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert cl(y, cbcr).dtype == torch.bfloat16
        compiled = torch.compile(model, backend="aot_eager", fullgraph=True)
        torch.testing.assert_close(compiled(y, cbcr), reference, rtol=1e-4, atol=1e-4)
    exported = torch.export.export(model, (y, cbcr))
    torch.testing.assert_close(exported.module()(y, cbcr), reference, rtol=1e-4, atol=1e-4)


def test_normalize_module_matches_the_cpu_transform():
    import dctload.transforms as T

    mean, std = (torch.randn(64), torch.randn(128)), (torch.rand(64) + 0.5, torch.rand(128) + 0.5)
    y, cbcr = contract()
    ours = nets.Normalize(mean, std)(y, cbcr)
    cpu = [T.Normalize(mean, std)((a, b)) for a, b in zip(y, cbcr)]
    torch.testing.assert_close(ours[0], torch.stack([c[0] for c in cpu]))
    torch.testing.assert_close(ours[1], torch.stack([c[1] for c in cpu]))


@pytest.mark.parametrize("name", nets.list_models())
def test_width_scales_every_model(name):
    full = nets.create_model(name, num_classes=7)
    small = nets.create_model(name, num_classes=7, width=0.25)
    count = lambda m: sum(p.numel() for p in m.parameters())
    assert count(small) < count(full) / 8
    inputs = (torch.randn(2, 3, 64, 64),) if name == "resnet50" else (torch.randn(2, 64, 8, 8), torch.randn(2, 128, 4, 4))
    assert small.eval()(*inputs).shape == (2, 7)
