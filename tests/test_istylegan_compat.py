"""i-StyleGAN snapshots: their mapping (names, kwargs, semantics) converts onto DomainFlowMapping exactly.

`RefMapping` below is a naive, direct re-statement of what i-StyleGAN's MappingNetwork computes
(Mid-Push/i-stylegan: the networks.py and flow.py of its training folder), with their parameter names, their
constructor kwargs and defaults, raw eps into the flow, and flow_norm by boolean-mask assignment.
"""
import io

import numpy as np
import pytest
import torch

import dnnlib
from training.domain_flow import DomainFlowMapping, convert_istylegan_mapping

#----------------------------------------------------------------------------

class RefFC(torch.nn.Module):
    def __init__(self, n_in, n_out, activation='linear', lr_multiplier=1.0):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn(n_out, n_in))
        self.bias = torch.nn.Parameter(torch.randn(n_out))
        self.act, self.lr, self.n_in = activation, lr_multiplier, n_in

    def forward(self, x):
        y = x @ (self.weight * self.lr / np.sqrt(self.n_in)).t() + self.bias * self.lr
        return torch.nn.functional.leaky_relu(y, 0.2) * np.sqrt(2) if self.act == 'lrelu' else y


class RefBlock(torch.nn.Module):
    def __init__(self, H, n_in, n_out):
        super().__init__()
        self.H, self.n_in = H, n_in
        self.u_ = torch.nn.Parameter(torch.randn(H, n_in))
        self.w_ = torch.nn.Parameter(torch.randn(n_out, H))
        self.act_a = lambda x: torch.nn.functional.softplus(x)                 # lambdas as attributes, as theirs
        self.act_w = lambda x: torch.softmax(x, dim=3)
        self.num_params = 3 * H + n_in

    def forward(self, x, p):                                                  # x [B, D, in], p [B, D, P]
        H = self.H
        out = torch.zeros(x.shape[0], x.shape[1], self.w_.shape[0])
        inv = np.log(np.exp(1 - 1e-7) - 1)
        for b in range(x.shape[0]):
            for d in range(x.shape[1]):
                q = p[b, d]
                a = self.act_a(q[:H] + inv)
                u = torch.softmax(self.u_ + q[-self.n_in:], dim=1)
                w = torch.softmax(self.w_ + q[2 * H:3 * H], dim=1)
                out[b, d] = w @ torch.selu(a * (u @ x[b, d]) + q[H:2 * H])
        return out


class RefDDSF(torch.nn.Module):
    def __init__(self, n_blocks, H):
        super().__init__()
        dims = [1] + [H] * (n_blocks - 1) + [1]
        self.model = torch.nn.Sequential(*[RefBlock(H, i, o) for i, o in zip(dims[:-1], dims[1:])])
        self.num_params = sum(b.num_params for b in self.model)

    def forward(self, x, p):
        x, start = x.unsqueeze(2), 0
        for blk in self.model:
            x = blk(x, p[:, :, start:start + blk.num_params])
            start += blk.num_params
        return x.squeeze(2)


class RefMapping(torch.nn.Module):
    """i-StyleGAN MappingNetwork semantics (their defaults: cond_mode='concat', i_dim=4, ...)."""
    def __init__(self, z_dim, c_dim, w_dim, num_ws, num_layers=8, embed_features=None, layer_features=None,
                 activation='lrelu', lr_multiplier=0.01, w_avg_beta=0.995, cond_mode='concat', i_dim=4,
                 flow_blocks=2, flow_dim=10, flow_norm=1, use_label=0):
        super().__init__()
        self.z_dim, self.c_dim, self.i_dim, self.num_ws, self.L = z_dim, c_dim, i_dim, num_ws, num_layers
        self.cond_mode, self.flow_norm = cond_mode, flow_norm
        E = 0 if c_dim == 0 else (w_dim if embed_features is None else embed_features)
        F = w_dim if layer_features is None else layer_features
        kw = dict(activation=activation, lr_multiplier=lr_multiplier)
        if c_dim > 0 and cond_mode in ('flow', 'concat'):
            self.embed = RefFC(c_dim, E)
        if c_dim > 0 and cond_mode in ('flow', 'mlp'):
            self.importance = torch.nn.Parameter(torch.ones([1, i_dim]))
        if c_dim > 0 and cond_mode == 'flow':
            self.flow = RefDDSF(flow_blocks, flow_dim)
            fl = [E] + [F] * num_layers
            for j in range(num_layers):
                setattr(self, f'flow_fc{j}', RefFC(fl[j], fl[j + 1], **kw))
            setattr(self, f'flow_fc{num_layers}', RefFC(F, self.flow.num_params * i_dim, lr_multiplier=lr_multiplier))
        if c_dim > 0 and cond_mode == 'mlp':
            fl = [i_dim] + [F] * num_layers
            for k in range(c_dim):
                for j in range(num_layers):
                    setattr(self, f'{k}mlp_fc{j}', RefFC(fl[j], fl[j + 1], **kw))
                setattr(self, f'{k}mlp_fc{num_layers}', RefFC(F, i_dim, lr_multiplier=lr_multiplier))
        fl = [z_dim + (E if cond_mode == 'concat' else 0)] + [F] * (num_layers - 1) + [w_dim]
        for j in range(num_layers):
            setattr(self, f'fc{j}', RefFC(fl[j], fl[j + 1], **kw))
        self.register_buffer('w_avg', torch.zeros([w_dim]))

    def forward(self, z, c, truncation_psi=1):
        nrm = lambda v: v * (v.square().mean(1, keepdim=True) + 1e-8).rsqrt()
        x = nrm(z)
        if self.c_dim > 0 and self.cond_mode in ('flow', 'mlp'):
            z_in, z_same = z[:, :self.i_dim], z[:, self.i_dim:]
            if self.cond_mode == 'flow':
                y = nrm(self.embed(c))
                for j in range(self.L + 1):
                    y = getattr(self, f'flow_fc{j}')(y)
                z_out = self.flow(z_in, y.view(len(y), self.i_dim, -1))
            else:
                outs = []
                for k in range(self.c_dim):
                    h = z_in
                    for j in range(self.L + 1):
                        h = getattr(self, f'{k}mlp_fc{j}')(h)
                    outs.append(h)
                z_out = torch.stack(outs, 1)[torch.arange(len(c)), c.argmax(1)]
            mask = (self.importance > 0.1).float()
            x = torch.cat([z_in + mask * self.importance * z_out, z_same], 1)
            if self.flow_norm:
                style = torch.cat([mask, torch.zeros(1, self.z_dim - self.i_dim)], 1).bool().expand(len(x), -1)
                x = x.clone()
                x[style] = nrm(x[style].view(len(x), -1)).view(-1)
                x[~style] = nrm(x[~style].view(len(x), -1)).view(-1)
        elif self.c_dim > 0:
            x = torch.cat([x, nrm(self.embed(c))], 1)
        for j in range(self.L):
            x = getattr(self, f'fc{j}')(x)
        x = x.unsqueeze(1).repeat(1, self.num_ws, 1)
        return self.w_avg.lerp(x, truncation_psi) if truncation_psi != 1 else x

#----------------------------------------------------------------------------

def _ref(cond_mode, flow_norm=1, c_dim=3, seed=0, **kwargs):
    torch.manual_seed(seed)
    kw = dict(z_dim=12, c_dim=c_dim, w_dim=10, num_ws=5, num_layers=2, layer_features=14, embed_features=6,
              cond_mode=cond_mode, i_dim=7, flow_blocks=2, flow_dim=4, flow_norm=flow_norm)
    kw.update(kwargs)
    ref = RefMapping(**kw)
    with torch.no_grad():
        for name, p in ref.named_parameters():
            p.mul_(0.5 if name.endswith('_') else 1.0)
        ref.w_avg.normal_()
        if hasattr(ref, 'importance'):
            ref.importance.copy_(torch.tensor([[1.0, 0.05, 0.5, -1.0, 0.1, 0.3, 2.0]]))
    return ref.eval(), kw


def _convert(ref, kw):
    name, kwargs, sd = convert_istylegan_mapping(kw, ref.state_dict())
    ours = dnnlib.util.construct_class_by_name(class_name=name, **kwargs).eval()
    ours.load_state_dict(sd, strict=True)
    return ours

def _inputs(n=6, c_dim=3, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 12, generator=g), torch.eye(c_dim)[torch.randint(0, c_dim, [n], generator=g)]

#----------------------------------------------------------------------------

@pytest.mark.parametrize('cond_mode,flow_norm', [('flow', 1), ('flow', 0), ('mlp', 1), ('concat', 1)])
def test_converted_mapping_gives_the_same_ws(cond_mode, flow_norm):
    ref, kw = _ref(cond_mode, flow_norm)
    ours = _convert(ref, kw)
    assert isinstance(ours, DomainFlowMapping)
    z, c = _inputs()
    with torch.no_grad():
        for psi in (1, 0.7):
            torch.testing.assert_close(ours(z, c, truncation_psi=psi), ref(z, c, truncation_psi=psi), rtol=1e-5, atol=1e-5)
    if cond_mode != 'concat':
        assert ours.num_active() == 4


def test_unconditional_and_defaults_from_the_tensors():
    ref, kw = _ref('flow', c_dim=0)
    ours = _convert(ref, kw)
    z, _ = _inputs()
    torch.testing.assert_close(ours(z, None), ref(z, None))
    # Only z/c/w dims and num_ws recorded: i-StyleGAN's defaults plus what the tensors say.
    ref, kw = _ref('flow', flow_blocks=3, flow_dim=5)
    passed = dict(z_dim=12, c_dim=3, w_dim=10, num_ws=5, num_layers=2, layer_features=14, embed_features=6, cond_mode='flow')
    name, kwargs, sd = convert_istylegan_mapping(passed, ref.state_dict())
    assert (kwargs['i_dim'], kwargs['flow_blocks'], kwargs['flow_dim'], kwargs['flow_norm']) == (7, 3, 5, True)
    ours = _convert(ref, passed)
    z, c = _inputs(n=3)
    torch.testing.assert_close(ours(z, c), ref(z, c), rtol=1e-5, atol=1e-5)


def test_converter_refuses_what_it_cannot_represent():
    ref, kw = _ref('flow')
    with pytest.raises(ValueError, match='use_label'):
        convert_istylegan_mapping(dict(kw, use_label=1), ref.state_dict())
    with pytest.raises(ValueError, match='cond_mode'):
        convert_istylegan_mapping(dict(kw, cond_mode='mlp'), ref.state_dict())
    with pytest.raises(ValueError, match='z_dim'):
        convert_istylegan_mapping({k: v for k, v in kw.items() if k != 'z_dim'}, ref.state_dict())
    # the state dict may come prefixed from a Generator
    sd = {f'mapping.{k}': v for k, v in ref.state_dict().items()}
    assert set(convert_istylegan_mapping(kw, sd)[2]) == set(ref.state_dict())


def test_istylegan_pickle_loads_end_to_end():
    legacy = pytest.importorskip('legacy')
    fx = pytest.importorskip('tests.fixtures_nvidia')
    from training.networks import Generator
    ref, kw = _ref('flow', num_ws=6)
    G_kwargs = dict(z_dim=12, c_dim=3, w_dim=10, img_resolution=16, img_channels=3,
                    mapping_kwargs=dnnlib.EasyDict({k: v for k, v in kw.items() if k not in ('z_dim', 'c_dim', 'w_dim', 'num_ws')}, use_label=0),
                    synthesis_kwargs=dnnlib.EasyDict(channel_base=256, channel_max=16))
    torch.manual_seed(2)
    shell = Generator(**dict(G_kwargs, mapping_kwargs=dict(num_layers=2))).eval() # synthesis weights to carry along
    assert shell.num_ws == kw['num_ws']
    rec = fx.nvidia_record(shell, G_kwargs)
    m_meta = rec._args[0]['state']['_modules']['mapping']._args[0]
    m_meta['class_name'] = 'MappingNetwork'
    m_meta['state']['_modules'] = {k: fx.nvidia_record(v, {}) for k, v in ref._modules.items() if k != 'flow'}
    m_meta['state']['_modules']['flow'] = fx.istylegan_flow_object(ref.state_dict())
    m_meta['state']['_parameters'] = dict(importance=ref.importance)
    m_meta['state']['_buffers'] = dict(w_avg=ref.w_avg)
    m_meta['state']['_init_kwargs'] = dnnlib.EasyDict(kw, use_label=0)
    G = legacy.load_network_pkl(io.BytesIO(fx.fake_dumps(dict(G_ema=rec, G=rec, D=None))))['G_ema']
    assert isinstance(G.mapping, DomainFlowMapping)
    z, c = _inputs()
    with torch.no_grad():
        torch.testing.assert_close(G.mapping(z, c, truncation_psi=0.7), ref(z, c, truncation_psi=0.7), rtol=1e-5, atol=1e-5)
        ws = ref(z, c)
        torch.testing.assert_close(G(z, c, noise_mode='const'), shell.synthesis(ws, noise_mode='const'), rtol=1e-4, atol=1e-4)

#----------------------------------------------------------------------------
