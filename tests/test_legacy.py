"""legacy.load_network_pkl on NVIDIA-format, i-StyleGAN-format, malicious and wrong-kind files."""
import copy
import io
import os
import pickle
import subprocess
import zipfile

import pytest
import torch

import dnnlib
import legacy
from tests import fixtures_nvidia as fx
from torch_utils import safe_pickle

#----------------------------------------------------------------------------

def _kwargs(c_dim):
    G = dict(z_dim=16, w_dim=16, c_dim=c_dim, img_resolution=16, img_channels=3,
             mapping_kwargs=dnnlib.EasyDict(num_layers=2), synthesis_kwargs=dnnlib.EasyDict(channel_base=256, channel_max=32))
    D = dict(c_dim=c_dim, img_resolution=16, img_channels=3, channel_base=256, channel_max=32,
             block_kwargs=dnnlib.EasyDict(), mapping_kwargs=dnnlib.EasyDict(), epilogue_kwargs=dnnlib.EasyDict(mbstd_group_size=2))
    return G, D


def _randomize(*modules, seed=0):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in modules:
            for t in list(m.parameters()) + list(m.buffers()):
                if t.is_floating_point():
                    t.add_(torch.randn(t.shape, generator=gen) * 0.1)


def _networks(c_dim, seed=0):
    torch.manual_seed(seed)
    Gk, Dk = _kwargs(c_dim)
    G = dnnlib.util.construct_class_by_name(class_name='training.networks.Generator', **Gk)
    D = dnnlib.util.construct_class_by_name(class_name='training.networks.Discriminator', **Dk)
    G_ema = copy.deepcopy(G).eval().requires_grad_(False)
    _randomize(G, D, G_ema, seed=seed)
    return dict(G=G, D=D, G_ema=G_ema), dict(G=Gk, D=Dk, G_ema=Gk)


def _inputs(c_dim, n=4):
    gen = torch.Generator().manual_seed(123)
    z = torch.randn([n, 16], generator=gen)
    c = torch.eye(c_dim)[torch.arange(n) % c_dim] if c_dim else torch.zeros([n, 0])
    img = torch.randn([n, 3, 16, 16], generator=gen)
    return z, c, img

#----------------------------------------------------------------------------

@pytest.mark.parametrize('c_dim,protocol', [(0, 4), (3, 2)])
def test_nvidia_format_matches_original(c_dim, protocol):
    nets, passed = _networks(c_dim)
    data = fx.nvidia_pickle_bytes(nets, passed, extra=dict(augment_pipe=None, training_set_kwargs=dnnlib.EasyDict(path='d.zip')), protocol=protocol)
    out = legacy.load_network_pkl(io.BytesIO(data))
    assert set(out) >= {'G', 'D', 'G_ema', 'augment_pipe', 'training_set_kwargs'}
    assert out['training_set_kwargs'].path == 'd.zip' and out['augment_pipe'] is None
    z, c, img = _inputs(c_dim)
    with torch.no_grad():
        for psi in (1, 0.7):
            ref = nets['G_ema'](z, c, truncation_psi=psi, noise_mode='const')
            assert torch.equal(out['G_ema'](z, c, truncation_psi=psi, noise_mode='const'), ref)
        assert torch.equal(out['D'](img, c), nets['D'](img, c))
    for key in ('G', 'D', 'G_ema'):
        sd_ref, sd = nets[key].state_dict(), out[key].state_dict()
        assert sd.keys() == sd_ref.keys() and all(torch.equal(sd[k], sd_ref[k]) for k in sd)
        assert type(out[key]).__module__ == 'training.networks'
    assert not out['G_ema'].training and not any(p.requires_grad for p in out['G_ema'].parameters())
    assert out['G'].training and all(p.requires_grad for p in out['G'].parameters())


def test_open_url_entry_point(tmp_path):
    nets, passed = _networks(0)
    path = tmp_path / 'network-snapshot-000000.pkl'
    path.write_bytes(fx.nvidia_pickle_bytes(nets, passed))
    with dnnlib.util.open_url(str(path)) as f:
        G = legacy.load_network_pkl(f)['G_ema']
    assert torch.equal(G.mapping.w_avg, nets['G_ema'].mapping.w_avg)
    assert isinstance(legacy.load_network(str(path))['D'], torch.nn.Module)


def test_missing_and_unexpected_tensors_are_reported():
    nets, passed = _networks(0)
    rec = fx.nvidia_record(nets['G_ema'], passed['G_ema'])
    mapping_state = rec._args[0]['state']['_modules']['mapping']._args[0]['state']
    mapping_state['_buffers'] = {}  # drop w_avg
    with pytest.raises(legacy.LegacyError, match=r'missing 1 tensors \(e\.g\. mapping\.w_avg\)'):
        legacy.load_network_pkl(io.BytesIO(fx.fake_dumps(dict(G_ema=rec))))
    rec = fx.nvidia_record(nets['G_ema'], passed['G_ema'])
    rec._args[0]['state']['_parameters'] = {'stray': torch.nn.Parameter(torch.zeros(2))}
    with pytest.raises(legacy.LegacyError, match=r'unexpected tensors \(e\.g\. stray\)'):
        legacy.load_network_pkl(io.BytesIO(fx.fake_dumps(dict(G_ema=rec))))


def test_wrong_kwargs_give_clear_error():
    nets, passed = _networks(0)
    bad = dict(passed['G_ema'], img_resolution=32)  # tensors of a 16x16 network
    rec = fx.nvidia_record(nets['G_ema'], bad)
    with pytest.raises(legacy.LegacyError, match='do not fit the network'):
        legacy.load_network_pkl(io.BytesIO(fx.fake_dumps(dict(G_ema=rec))))


def test_stylegan3_networks_are_refused():
    nets, passed = _networks(0)
    rec = fx.nvidia_record(nets['G_ema'], passed['G_ema'], module_src='class SynthesisInput: pass\n')
    with pytest.raises(legacy.LegacyError, match='StyleGAN3'):
        legacy.load_network_pkl(io.BytesIO(fx.fake_dumps(dict(G_ema=rec))))


def test_stylegan3_repo_defaults_are_filled_in():
    kwargs = dnnlib.EasyDict(z_dim=8, synthesis_kwargs=dnnlib.EasyDict(conv_clamp=None))
    legacy._add_stylegan3_repo_defaults('Generator', kwargs)
    assert kwargs.num_fp16_res == 4 and 'conv_clamp' not in kwargs and kwargs.mapping_kwargs.w_avg_beta == 0.998

#----------------------------------------------------------------------------
# Malicious files: refused by name, nothing runs.

class _Evil:
    def __init__(self, func, args):
        self.func, self.args = func, args

    def __reduce__(self):
        return (self.func, self.args)


@pytest.mark.parametrize('make', [
    lambda s: _Evil(os.system, (f'touch {s}',)),
    lambda s: _Evil(eval, (f"open({str(s)!r}, 'w').close()",)),
    lambda s: _Evil(subprocess.call, (['touch', str(s)],)),
    lambda s: _Evil(exec, (f"open({str(s)!r}, 'w').close()",)),
])
@pytest.mark.parametrize('protocol', [2, 4])
def test_malicious_pickle_refused_before_running(tmp_path, make, protocol):
    sentinel = tmp_path / 'pwned'
    evil = make(sentinel)
    expected = f'{evil.func.__module__}.{evil.func.__name__}'.replace('posix.', '').replace('nt.', '')
    path = tmp_path / 'evil.pkl'
    path.write_bytes(pickle.dumps(dict(G=evil, D=None, G_ema=None), protocol=protocol))
    with pytest.raises(safe_pickle.UnsafePickleError, match='refusing to load') as info:
        with open(path, 'rb') as f:
            legacy.load_network_pkl(f)
    assert evil.func.__name__ in str(info.value) and str(path) in str(info.value)
    assert not sentinel.exists()
    assert expected.split('.')[-1] in str(info.value)


def test_malicious_global_inside_persistent_state_refused(tmp_path):
    sentinel = tmp_path / 'pwned'
    nets, passed = _networks(0)
    rec = fx.nvidia_record(nets['G_ema'], passed['G_ema'])
    rec._args[0]['state']['hook'] = fx.FakeObject(fx.FakeGlobal('os', 'system'), (f'touch {sentinel}',))
    with pytest.raises(safe_pickle.UnsafePickleError, match=r'refusing to load os\.system'):
        legacy.load_network_pkl(io.BytesIO(fx.fake_dumps(dict(G_ema=rec))))
    assert not sentinel.exists()


def test_allowed_constructors_check_their_arguments():
    # Reductions may only call allow-listed callables, and those validate their inputs.
    bad = fx.FakeObject(fx.FakeGlobal('numpy.core.multiarray', '_reconstruct'), (fx.FakeGlobal('collections', 'OrderedDict'), (0,), b'b'))
    with pytest.raises(safe_pickle.UnsafePickleError):
        safe_pickle.safe_load(io.BytesIO(fx.fake_dumps(bad)))
    with pytest.raises(safe_pickle.UnsafePickleError, match='getattr'):
        safe_pickle.safe_load(io.BytesIO(fx.fake_dumps(fx.FakeObject(fx.FakeGlobal('builtins', 'getattr'), ({}, 'update')))))

#----------------------------------------------------------------------------
# Wrong kinds of files.

def test_wrong_kind_files(tmp_path):
    cases = {
        'dict.pkl': pickle.dumps({'weights': [1, 2, 3]}),
        'list.pkl': pickle.dumps([1, 2]),
        'notes.txt': b'hello, this is not a network\n',
        'random.bin': bytes(range(256)) * 4,
        'empty.pkl': b'',
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
    with zipfile.ZipFile(tmp_path / 'dataset.zip', 'w') as z:
        z.writestr('dataset.json', '{"labels": null}')
    nets, passed = _networks(0)
    good = fx.nvidia_pickle_bytes(nets, passed)
    (tmp_path / 'truncated.pkl').write_bytes(good[:len(good) // 2])
    expect = {'dict.pkl': 'not a network snapshot', 'list.pkl': 'not a network snapshot', 'notes.txt': 'text file',
              'random.bin': 'unknown binary', 'empty.pkl': 'empty', 'dataset.zip': 'zip archive but not a network',
              'truncated.pkl': 'truncated or corrupt'}
    for name, msg in expect.items():
        with pytest.raises(legacy.LegacyError, match=msg):
            with open(tmp_path / name, 'rb') as f:
                legacy.load_network_pkl(f)


def test_tensorflow_pickle_has_its_own_sentence():
    tf = fx.FakeObject(fx.FakeGlobal('dnnlib.tflib.network', 'Network'), ())
    with pytest.raises(safe_pickle.UnsafePickleError, match='TensorFlow'):
        legacy.load_network_pkl(io.BytesIO(fx.fake_dumps((tf, tf, tf))))

#----------------------------------------------------------------------------
# i-StyleGAN (dill) snapshots.

def test_istylegan_flow_snapshot_converts():
    pytest.importorskip('training.domain_flow')
    torch.manual_seed(1)
    i_kwargs = dict(num_layers=2, cond_mode='flow', i_dim=6, flow_blocks=2, flow_dim=4, flow_norm=1, use_label=0)
    Gk, _ = _kwargs(3)
    ours = dnnlib.util.construct_class_by_name(class_name='training.networks.Generator', **dict(Gk, mapping_kwargs=dict(
        class_name='training.domain_flow.DomainFlowMapping', **{k: v for k, v in i_kwargs.items() if k != 'use_label'})))
    _randomize(ours, seed=1)
    with torch.no_grad():
        ours.mapping.importance.copy_(torch.tensor([[1.0, 0.05, 0.5, 2.0, 0.0, 0.3]]))
    ours.eval().requires_grad_(False)

    # Their layout: Generator(mapping_kwargs=i-StyleGAN kwargs) with MappingNetwork holding a DDSF by reference.
    their_G_kwargs = dict(Gk, mapping_kwargs=dnnlib.EasyDict(i_kwargs))
    rec = fx.nvidia_record(ours, their_G_kwargs)
    m_rec = rec._args[0]['state']['_modules']['mapping']
    m_meta = m_rec._args[0]
    m_meta['class_name'] = 'MappingNetwork'
    m_meta['module_src'] = 'class DDSF: pass  # i-StyleGAN networks.py imports DDSF\n'
    m_meta['state']['_init_kwargs'] = dnnlib.EasyDict(z_dim=16, c_dim=3, w_dim=16, num_ws=ours.num_ws, **i_kwargs)
    m_meta['state']['_modules']['flow'] = fx.istylegan_flow_object(ours.mapping.state_dict())
    data = legacy.load_network_pkl(io.BytesIO(fx.fake_dumps(dict(G_ema=rec, G=rec, D=None))))
    G = data['G_ema']
    assert type(G.mapping).__name__ == 'DomainFlowMapping'
    z, c, _ = _inputs(3)
    with torch.no_grad():
        assert torch.equal(G(z, c, noise_mode='const'), ours(z, c, noise_mode='const'))


def test_missing_domain_flow_gives_sentence(monkeypatch):
    import builtins
    real_import = builtins.__import__
    def fake_import(name, *args, **kwargs):
        if name == 'training.domain_flow':
            raise ImportError('no module')
        return real_import(name, *args, **kwargs)
    nets, passed = _networks(3)
    rec = fx.nvidia_record(nets['G_ema'], passed['G_ema'])
    rec._args[0]['state']['_modules']['mapping']._args[0]['state']['_init_kwargs']['cond_mode'] = 'flow'
    monkeypatch.setattr(builtins, '__import__', fake_import)
    with pytest.raises(legacy.LegacyError, match='i-StyleGAN snapshot; its flow mapping needs training/domain_flow.py'):
        legacy.load_network_pkl(io.BytesIO(fx.fake_dumps(dict(G_ema=rec))))

#----------------------------------------------------------------------------
