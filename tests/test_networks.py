"""training.networks: NVIDIA StyleGAN2 parameter names/shapes, forward semantics, gradients."""
import numpy as np
import pytest
import torch

import dnnlib
from torch_utils import persistence
from training import networks

#----------------------------------------------------------------------------


#----------------------------------------------------------------------------

SMALL = dict(channel_base=256, channel_max=16)  # channels: min(256 // res, 16)

def make_G(res=16, c_dim=0, architecture='skip', num_fp16_res=0, seed=0, **kwargs):
    torch.manual_seed(seed)
    return networks.Generator(z_dim=8, c_dim=c_dim, w_dim=8, img_resolution=res, img_channels=3,
        mapping_kwargs=dict(num_layers=2), synthesis_kwargs=dict(architecture=architecture, num_fp16_res=num_fp16_res,
        conv_clamp=(256 if num_fp16_res else None), **SMALL), **kwargs)

def make_D(res=16, c_dim=0, architecture='resnet', num_fp16_res=0, seed=1, **kwargs):
    torch.manual_seed(seed)
    return networks.Discriminator(c_dim=c_dim, img_resolution=res, img_channels=3, architecture=architecture,
        num_fp16_res=num_fp16_res, conv_clamp=(256 if num_fp16_res else None), **SMALL, **kwargs)

def labels(n, c_dim):
    return torch.eye(c_dim)[torch.arange(n) % c_dim] if c_dim else torch.zeros([n, 0])

#----------------------------------------------------------------------------
# Parameter names and shapes, as NVIDIA's code names them (written from reading stylegan2-ada-pytorch).

def expected_G_shapes(res, c_dim, w_dim, img_channels, num_layers, architecture, ch):
    out = {}
    if c_dim:
        out |= {'mapping.embed.weight': [w_dim, c_dim], 'mapping.embed.bias': [w_dim]}
    z_in = 8 + (w_dim if c_dim else 0)
    for i in range(num_layers):
        out |= {f'mapping.fc{i}.weight': [w_dim, z_in if i == 0 else w_dim], f'mapping.fc{i}.bias': [w_dim]}
    out['mapping.w_avg'] = [w_dim]
    r = 4
    while r <= res:
        b, c = f'synthesis.b{r}', ch(r)
        out[f'{b}.resample_filter'] = [4, 4]
        convs = [('conv1', c)] if r == 4 else [('conv0', ch(r // 2)), ('conv1', c)]
        if r == 4:
            out[f'{b}.const'] = [c, 4, 4]
        for name, cin in convs:
            out |= {f'{b}.{name}.weight': [c, cin, 3, 3], f'{b}.{name}.bias': [c], f'{b}.{name}.noise_strength': [],
                f'{b}.{name}.noise_const': [r, r], f'{b}.{name}.resample_filter': [4, 4],
                f'{b}.{name}.affine.weight': [cin, w_dim], f'{b}.{name}.affine.bias': [cin]}
        if architecture == 'skip' or r == res:
            out |= {f'{b}.torgb.weight': [img_channels, c, 1, 1], f'{b}.torgb.bias': [img_channels],
                f'{b}.torgb.affine.weight': [c, w_dim], f'{b}.torgb.affine.bias': [c]}
        if architecture == 'resnet' and r > 4:
            out |= {f'{b}.skip.weight': [c, ch(r // 2), 1, 1], f'{b}.skip.resample_filter': [4, 4]}
        r *= 2
    return out


def expected_D_shapes(res, c_dim, img_channels, architecture, ch, mbstd=1):
    out = {}
    r = res
    while r >= 8:
        b, c = f'b{r}', ch(r)
        out[f'{b}.resample_filter'] = [4, 4]
        if r == res or architecture == 'skip':
            out |= {f'{b}.fromrgb.weight': [c, img_channels, 1, 1], f'{b}.fromrgb.bias': [c], f'{b}.fromrgb.resample_filter': [4, 4]}
        out |= {f'{b}.conv0.weight': [c, c, 3, 3], f'{b}.conv0.bias': [c], f'{b}.conv0.resample_filter': [4, 4],
            f'{b}.conv1.weight': [ch(r // 2), c, 3, 3], f'{b}.conv1.bias': [ch(r // 2)], f'{b}.conv1.resample_filter': [4, 4]}
        if architecture == 'resnet':
            out |= {f'{b}.skip.weight': [ch(r // 2), c, 1, 1], f'{b}.skip.resample_filter': [4, 4]}
        r //= 2
    c4 = ch(4)
    cmap = c4 if c_dim else 0
    if c_dim:
        out |= {'mapping.embed.weight': [cmap, c_dim], 'mapping.embed.bias': [cmap]}
        out |= {k: v for i in range(8) for k, v in [(f'mapping.fc{i}.weight', [cmap, cmap]), (f'mapping.fc{i}.bias', [cmap])]}
    if architecture == 'skip':
        out |= {'b4.fromrgb.weight': [c4, img_channels, 1, 1], 'b4.fromrgb.bias': [c4], 'b4.fromrgb.resample_filter': [4, 4]}
    out |= {'b4.conv.weight': [c4, c4 + mbstd, 3, 3], 'b4.conv.bias': [c4], 'b4.conv.resample_filter': [4, 4],
        'b4.fc.weight': [c4, c4 * 16], 'b4.fc.bias': [c4], 'b4.out.weight': [cmap or 1, c4], 'b4.out.bias': [cmap or 1]}
    return out


@pytest.mark.parametrize('architecture', ['skip', 'resnet', 'orig'])
@pytest.mark.parametrize('c_dim', [0, 3])
def test_state_dict_names_and_shapes(architecture, c_dim):
    ch = lambda r: min(256 // r, 16)
    G = make_G(res=32, c_dim=c_dim, architecture=architecture)
    got = {k: list(v.shape) for k, v in G.state_dict().items()}
    assert got == expected_G_shapes(32, c_dim, 8, 3, 2, architecture, ch)
    D = make_D(res=32, c_dim=c_dim, architecture=architecture)
    got = {k: list(v.shape) for k, v in D.state_dict().items()}
    assert got == expected_D_shapes(32, c_dim, 3, architecture, ch)
    # A few names spelled out literally, as they appear in NVIDIA pickles.
    assert {'synthesis.b4.const', 'synthesis.b8.conv0.affine.weight', 'synthesis.b32.torgb.weight', 'mapping.fc0.weight'} <= set(G.state_dict())
    assert {'b32.fromrgb.weight', 'b4.fc.weight', 'b4.out.weight', 'b4.conv.weight'} <= set(D.state_dict())
    assert G.num_ws == 1 + 2 * 3 + 1 and G.synthesis.num_ws == G.num_ws  # 1 conv at 4x4, 2 per later block, final toRGB


def test_default_config_matches_nvidia_counts():
    # stylegan2-ada-pytorch, paper256-like: 256x256, z=w=512, 8 mapping layers, channel_base 16384.
    torch.manual_seed(0)
    G = networks.Generator(z_dim=512, c_dim=0, w_dim=512, img_resolution=256, img_channels=3,
        synthesis_kwargs=dict(channel_base=16384, channel_max=512))
    assert G.num_ws == 14
    assert sum(p.numel() for p in G.mapping.parameters()) == 8 * (512 * 512 + 512)
    assert G.synthesis.b256.conv1.weight.shape == (64, 64, 3, 3) and G.synthesis.b8.conv0.weight.shape == (512, 512, 3, 3)

#----------------------------------------------------------------------------
# Forward passes.

@pytest.mark.parametrize('res', [16, 32, 64])
@pytest.mark.parametrize('c_dim', [0, 3])
@pytest.mark.parametrize('num_fp16_res', [0, 2])
def test_forward_shapes(res, c_dim, num_fp16_res):
    G = make_G(res=res, c_dim=c_dim, num_fp16_res=num_fp16_res).eval()
    D = make_D(res=res, c_dim=c_dim, num_fp16_res=num_fp16_res).eval()
    z, c = torch.randn([4, 8]), labels(4, c_dim)
    img = G(z, c, noise_mode='const')
    assert img.shape == (4, 3, res, res) and img.dtype == torch.float32 and torch.isfinite(img).all()
    logits = D(img, c)
    assert logits.shape == (4, 1) and logits.dtype == torch.float32 and torch.isfinite(logits).all()
    if num_fp16_res:  # on CPU the fp16 blocks compute in float32, identical to force_fp32
        assert getattr(G.synthesis, f'b{res}').use_fp16 and getattr(D, f'b{res}').use_fp16
        torch.testing.assert_close(img, G(z, c, noise_mode='const', force_fp32=True), rtol=0, atol=0)


def test_fp16_path_forced_on_cpu(monkeypatch):
    """The CUDA-only fp16 code path, run on the CPU: dtypes line up and results stay near float32."""
    G = make_G(res=16, c_dim=3, num_fp16_res=2).eval()
    D = make_D(res=16, c_dim=3, num_fp16_res=2).eval()
    with torch.no_grad():
        for name, p in G.named_parameters():
            if name.endswith('noise_strength'):
                p.fill_(0.1)
    z, c = torch.randn([2, 8]), labels(2, 3)
    ref_img = G(z, c, noise_mode='const')
    ref_logits = D(ref_img, c)
    monkeypatch.setattr(networks, 'fp16_supported', lambda device: True)
    try:
        img = G(z, c, noise_mode='const')                          # eval, batch 2: unfused modconv
        img_fused = G(z, c, noise_mode='const', fused_modconv=True)
        logits = D(ref_img, c)
        G.train(); D.train()
        G(z, c, noise_mode='random').mean().backward()          # unfused modconv in fp16
        D(ref_img, c).sum().backward()
    except (RuntimeError, NotImplementedError) as e:
        if 'Half' in str(e) or 'half' in str(e):
            pytest.skip(f'this PyTorch build lacks a float16 CPU kernel: {e}')
        raise
    assert img.dtype == torch.float32 and logits.dtype == torch.float32
    torch.testing.assert_close(img, ref_img, rtol=0, atol=0.05)
    torch.testing.assert_close(img_fused, ref_img, rtol=0, atol=0.05)
    torch.testing.assert_close(logits, ref_logits, rtol=0, atol=0.05)
    assert torch.isfinite(G.synthesis.b16.conv0.weight.grad).all()


@pytest.mark.parametrize('architecture', ['orig', 'resnet'])
def test_forward_other_architectures(architecture):
    G = make_G(res=16, c_dim=2, architecture=architecture).eval()
    D = make_D(res=16, c_dim=2, architecture={'orig': 'skip', 'resnet': 'orig'}[architecture]).eval()
    img = G(torch.randn([2, 8]), labels(2, 2), noise_mode='none')
    assert img.shape == (2, 3, 16, 16) and D(img, labels(2, 2)).shape == (2, 1)


def test_truncation():
    G = make_G(c_dim=3).eval()
    with torch.no_grad():
        G.mapping.w_avg.copy_(torch.randn([8]))
    z, c = torch.randn([3, 8]), labels(3, 3)
    ws = G.mapping(z, c)
    assert ws.shape == (3, G.num_ws, 8)
    assert torch.equal(ws[:, 0], ws[:, -1])  # broadcast
    w_avg = G.mapping.w_avg.expand(3, G.num_ws, 8)
    torch.testing.assert_close(G.mapping(z, c, truncation_psi=0), w_avg)
    torch.testing.assert_close(G.mapping(z, c, truncation_psi=0.5), w_avg + 0.5 * (ws - w_avg))
    cut = G.mapping(z, c, truncation_psi=0, truncation_cutoff=2)
    torch.testing.assert_close(cut[:, :2], w_avg[:, :2])
    torch.testing.assert_close(cut[:, 2:], ws[:, 2:])


def test_w_avg_update_rules():
    G = make_G()
    z = torch.randn([4, 8])
    G.eval(); G(z, None)
    assert (G.mapping.w_avg == 0).all()                        # eval: no update
    G.train(); G.mapping(z, None, skip_w_avg_update=True)
    assert (G.mapping.w_avg == 0).all()
    G.mapping(z, None, update_emas=False)                      # stylegan3 spelling overrides the training flag
    assert (G.mapping.w_avg == 0).all()
    w = G.mapping(z, None)[:, 0].detach()                      # stylegan2-ada rule: training mode updates
    torch.testing.assert_close(G.mapping.w_avg, (1 - 0.995) * w.mean(0))
    G.eval(); before = G.mapping.w_avg.clone()
    G(z, None, update_emas=True)
    assert not torch.equal(G.mapping.w_avg, before)


def test_noise_modes():
    G = make_G().eval()
    with torch.no_grad():
        for name, p in G.named_parameters():
            if name.endswith('noise_strength'):
                p.fill_(0.5)
    z = torch.randn([2, 8])
    a, b = G(z, None, noise_mode='const'), G(z, None, noise_mode='const')
    assert torch.equal(a, b)
    torch.manual_seed(0); r1 = G(z, None)                      # NVIDIA default: noise_mode='random'
    torch.manual_seed(0); r2 = G(z, None)
    torch.manual_seed(1); r3 = G(z, None)
    assert torch.equal(r1, r2) and not torch.allclose(r1, r3)
    assert not torch.allclose(a, G(z, None, noise_mode='none'))
    with pytest.raises(ValueError, match='noise_mode'):
        G(z, None, noise_mode='fixed')


def test_fused_and_unfused_modconv_agree():
    G = make_G(res=16, c_dim=3, architecture='resnet').eval()
    z, c = torch.randn([3, 8]), labels(3, 3)
    torch.testing.assert_close(G(z, c, noise_mode='const', fused_modconv=True), G(z, c, noise_mode='const', fused_modconv=False),
        rtol=1e-5, atol=1e-5)

#----------------------------------------------------------------------------
# Building blocks against naive references.

def naive_modulated_conv2d(x, weight, styles, up, demodulate, f, flip_weight):
    """Per sample: scale input channels of the weight (Eq. 1), demodulate (Eq. 3), then convolve."""
    from torch_utils.ops import conv2d_resample
    outs = []
    for i in range(x.shape[0]):
        w = weight * styles[i].reshape(1, -1, 1, 1)
        if demodulate:
            w = w / (w.square().sum(dim=[1, 2, 3], keepdim=True) + 1e-8).sqrt()
        outs.append(conv2d_resample.conv2d_resample(x[i:i + 1], w, f=f, up=up, padding=weight.shape[-1] // 2, flip_weight=flip_weight))
    return torch.cat(outs)


@pytest.mark.parametrize('up', [1, 2])
@pytest.mark.parametrize('demodulate', [True, False])
@pytest.mark.parametrize('fused', [True, False])
def test_modulated_conv2d_matches_naive(up, demodulate, fused):
    from torch_utils.ops import upfirdn2d
    gen = torch.Generator().manual_seed(0)
    x = torch.randn([3, 4, 5, 5], generator=gen, dtype=torch.float64)
    weight = torch.randn([2, 4, 3, 3], generator=gen, dtype=torch.float64)
    styles = torch.randn([3, 4], generator=gen, dtype=torch.float64)
    f = upfirdn2d.setup_filter([1, 3, 3, 1])
    y = networks.modulated_conv2d(x, weight, styles, up=up, padding=1, resample_filter=f, demodulate=demodulate,
        flip_weight=(up == 1), fused_modconv=fused)
    torch.testing.assert_close(y, naive_modulated_conv2d(x, weight, styles, up, demodulate, f, up == 1))


@pytest.mark.parametrize('fused', [True, False])
def test_modulated_conv2d_gradgradcheck(fused):
    from torch_utils.ops import upfirdn2d
    gen = torch.Generator().manual_seed(1)
    x = torch.randn([2, 2, 3, 3], generator=gen, dtype=torch.float64, requires_grad=True)
    weight = torch.randn([2, 2, 3, 3], generator=gen, dtype=torch.float64, requires_grad=True)
    styles = torch.randn([2, 2], generator=gen, dtype=torch.float64, requires_grad=True)
    f = upfirdn2d.setup_filter([1, 3, 3, 1])
    fn = lambda x, w, s: networks.modulated_conv2d(x, w, s, up=2, padding=1, resample_filter=f, flip_weight=False, fused_modconv=fused)
    assert torch.autograd.gradcheck(fn, (x, weight, styles), fast_mode=True)
    assert torch.autograd.gradgradcheck(fn, (x, weight, styles), fast_mode=True)


def test_minibatch_std_matches_naive():
    x = torch.randn([8, 6, 3, 3], dtype=torch.float64)
    y = networks.MinibatchStdLayer(group_size=4, num_channels=2)(x)
    assert y.shape == (8, 8, 3, 3) and torch.equal(y[:, :6], x)
    n = 8 // 4
    for i in range(8):
        group = x[i % n::n]                                     # samples i, i+n, ... share a group
        for k in range(2):
            std = group[:, 3 * k:3 * k + 3].std(dim=0, unbiased=False)
            torch.testing.assert_close(y[i, 6 + k], torch.full([3, 3], float(std.mean()), dtype=torch.float64), rtol=1e-6, atol=1e-6)


def test_fully_connected_layer_equalized_lr():
    torch.manual_seed(0)
    layer = networks.FullyConnectedLayer(4, 3, activation='lrelu', lr_multiplier=0.01, bias_init=1)
    x = torch.randn([2, 4])
    ref = torch.nn.functional.leaky_relu(x @ (layer.weight * 0.01 / 2).t() + 0.01 * layer.bias, 0.2) * np.sqrt(2)
    torch.testing.assert_close(layer(x), ref)
    assert torch.allclose(layer.bias, torch.ones([3]))

#----------------------------------------------------------------------------
# Gradients through D, extension hook, rebuilding, validation.

def test_r1_double_backward_through_D():
    D = make_D(res=16, c_dim=3, num_fp16_res=2)
    img = torch.randn([4, 3, 16, 16], requires_grad=True)
    logits = D(img, labels(4, 3))
    grad, = torch.autograd.grad(logits.sum(), img, create_graph=True)
    r1 = grad.square().sum(dim=[1, 2, 3]).mean()
    r1.backward()
    grads = {name: p.grad for name, p in D.named_parameters()}
    assert grads['b4.out.bias'] is None                        # a constant offset has no input gradient
    assert all(g is not None and torch.isfinite(g).all() for name, g in grads.items() if name != 'b4.out.bias')
    assert D.b16.conv0.weight.grad.abs().sum() > 0 and D.b4.fc.weight.grad.abs().sum() > 0


def test_generator_training_backward():
    G = make_G(c_dim=3).train()
    img = G(torch.randn([2, 8]), labels(2, 3))
    img.square().mean().backward()
    assert G.mapping.fc0.weight.grad.abs().sum() > 0 and G.synthesis.b4.const.grad.abs().sum() > 0


class TinyMapping(torch.nn.Module):
    """Stand-in for a custom mapping (CG-GAN's flow mapping): ws = broadcast(z @ A)."""
    def __init__(self, z_dim, c_dim, w_dim, num_ws, scale=1.0):
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim, self.num_ws, self.scale = z_dim, c_dim, w_dim, num_ws, scale
        self.proj = torch.nn.Parameter(torch.eye(z_dim, w_dim))

    def forward(self, z, c, truncation_psi=1, truncation_cutoff=None, **_):
        return (z @ self.proj * self.scale).unsqueeze(1).repeat([1, self.num_ws, 1])


def test_mapping_class_name_hook():
    torch.manual_seed(0)
    G = networks.Generator(z_dim=8, c_dim=2, w_dim=8, img_resolution=16, img_channels=3,
        mapping_kwargs=dict(class_name='tests.test_networks.TinyMapping', scale=2.0), synthesis_kwargs=SMALL).eval()
    assert isinstance(G.mapping, TinyMapping) and G.mapping.num_ws == G.num_ws and G.mapping.scale == 2.0
    assert G.init_kwargs['mapping_kwargs']['class_name'] == 'tests.test_networks.TinyMapping'
    z = torch.randn([2, 8])
    torch.testing.assert_close(G(z, labels(2, 2), noise_mode='const'), G.synthesis(2 * z.unsqueeze(1).repeat([1, G.num_ws, 1]), noise_mode='const'))


def test_rebuild_from_spec_and_stylegan3_spelling():
    G = make_G(c_dim=3).eval()
    spec = persistence.module_spec(G)
    assert spec['class_name'] == 'training.networks.Generator'
    G2 = dnnlib.util.construct_class_by_name(class_name=spec['class_name'], **spec['init_kwargs']).eval()
    G2.load_state_dict(G.state_dict())
    z, c = torch.randn([2, 8]), labels(2, 3)
    assert torch.equal(G(z, c, noise_mode='const'), G2(z, c, noise_mode='const'))
    # stylegan3 repo: synthesis kwargs passed flat; fused_modconv_default; update_emas on D.
    torch.manual_seed(0)
    G3 = networks.Generator(z_dim=8, c_dim=3, w_dim=8, img_resolution=16, img_channels=3, mapping_kwargs=dict(num_layers=2),
        architecture='skip', num_fp16_res=0, conv_clamp=None, fused_modconv_default='inference_only', **SMALL).eval()
    assert set(G3.state_dict()) == set(G.state_dict())
    G3.load_state_dict(G.state_dict())
    torch.testing.assert_close(G3(z, c, noise_mode='const', update_emas=False), G(z, c, noise_mode='const'))
    D = make_D(c_dim=3)
    assert D(G(z, c), c, update_emas=False).shape == (2, 1)


def test_freeze_layers():
    D = make_D(res=16, block_kwargs=dict(freeze_layers=2))
    names = dict(D.named_parameters())
    buffers = dict(D.named_buffers())
    assert 'b16.fromrgb.weight' in buffers and 'b16.conv0.weight' in buffers and 'b16.conv0.bias' in buffers
    assert 'b16.conv1.weight' in names and 'b8.conv0.weight' in names
    assert D.b16.num_layers == 4 and D.b8.first_layer_idx == 4


def test_invalid_arguments():
    with pytest.raises(ValueError, match='power of two'):
        networks.SynthesisNetwork(w_dim=8, img_resolution=24, img_channels=3)
    with pytest.raises(ValueError, match='architecture'):
        make_G(architecture='unet')
    with pytest.raises(AssertionError, match='dimension'):
        make_G()(torch.randn([2, 7]), None)

#----------------------------------------------------------------------------
