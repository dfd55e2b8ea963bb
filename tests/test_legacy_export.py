"""legacy.py --source/--dest: our .pt -> NVIDIA's pickle format (loaded here by a fixture that follows the contract of
NVIDIA's loader) and back, rendering the same images; refusals are one sentence."""
import copy
import importlib.machinery
import pickle
import sys
import types
import uuid

import pytest
import torch
from click.testing import CliRunner

import dnnlib
import legacy
from tests import fixtures_nvidia as fx
from torch_utils import snapshot
from training.networks import Discriminator, Generator

#----------------------------------------------------------------------------
# NVIDIA's loader contract, in our words: legacy.load_network_pkl unpickles the dict; for each persistent record
# torch_utils.persistence executes module_src as a new module, wraps class_name in its persistence decorator
# (which records constructor arguments), makes an instance without __init__ and calls __setstate__(EasyDict(state)).

def _nvidia_reconstruct(meta):
    meta = dnnlib.EasyDict(meta)
    meta.state = dnnlib.EasyDict(meta.state)
    assert meta.version == 6 and meta.type == 'class'
    module = types.ModuleType(f'_imported_module_{uuid.uuid4().hex}')
    sys.modules[module.__name__] = module
    exec(meta.module_src, module.__dict__)  # our own EXPORT_SOURCE: this is what NVIDIA's loader does with it
    orig = module.__dict__[meta.class_name]

    class Decorator(orig):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self._init_args, self._init_kwargs = copy.deepcopy(args), copy.deepcopy(kwargs)
    obj = Decorator.__new__(Decorator)
    obj.__setstate__(meta.state)
    return obj


class _NvidiaContractUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) == ('torch_utils.persistence', '_reconstruct_persistent_obj'):
            return _nvidia_reconstruct
        assert module.startswith(('torch', 'collections', 'builtins', 'numpy', '_codecs', 'copyreg')), (module, name)  # nothing of ours
        return super().find_class(module, name)


def nvidia_load(path):
    with open(path, 'rb') as f:
        data = _NvidiaContractUnpickler(f).load()
    for key in ('G', 'D', 'G_ema'):                                             # the checks of NVIDIA's load_network_pkl
        assert isinstance(data[key], torch.nn.Module)
    assert isinstance(data['training_set_kwargs'], (dict, type(None))) and data['augment_pipe'] is None
    return data

#----------------------------------------------------------------------------

def _networks(c_dim=3, seed=0):
    torch.manual_seed(seed)
    G = Generator(z_dim=16, c_dim=c_dim, w_dim=16, img_resolution=16, img_channels=3, mapping_kwargs=dnnlib.EasyDict(num_layers=2),
                  synthesis_kwargs=dnnlib.EasyDict(channel_base=256, channel_max=32))
    D = Discriminator(c_dim=c_dim, img_resolution=16, img_channels=3, channel_base=256, channel_max=32,
                      epilogue_kwargs=dnnlib.EasyDict(mbstd_group_size=2))
    with torch.no_grad():
        for p in list(G.parameters()) + list(D.parameters()):
            p.add_(torch.randn_like(p) * 0.1)                                   # not the initial values
        G.mapping.w_avg.normal_()
    return G, D


@pytest.fixture
def run_pt(tmp_path):
    G, D = _networks()
    path = tmp_path / 'network-snapshot-000040.pt'
    snapshot.save_snapshot(str(path), dict(G=G, D=D, G_ema=copy.deepcopy(G).eval(), cur_nimg=40000,
                                           training_set_kwargs=dnnlib.EasyDict(class_name='training.dataset.ImageFolderDataset', path='x.zip', use_labels=True)))
    return path


def convert(*args):
    r = CliRunner().invoke(legacy.main, [str(a) for a in args])
    assert 'Traceback' not in r.output
    return r


def _render(G, seed=5):
    z = torch.randn([4, G.z_dim], generator=torch.Generator().manual_seed(seed))
    c = torch.eye(G.c_dim)[torch.tensor([0, 1, 2, 0])] if G.c_dim else torch.zeros([4, 0])
    return G(z, c, truncation_psi=0.7, noise_mode='const')                     # NVIDIA's generate.py call

#----------------------------------------------------------------------------

def test_export_renders_identically_through_nvidias_loader_contract(run_pt, tmp_path, monkeypatch):
    r = convert('--source', run_pt, '--dest', tmp_path / 'run.pkl')
    assert r.exit_code == 0 and 'Wrote' in r.output, r.output
    ours = snapshot.load_snapshot(str(run_pt))
    theirs = nvidia_load(tmp_path / 'run.pkl')
    assert theirs['training_set_kwargs'] == dict(class_name='training.dataset.ImageFolderDataset', path='x.zip', use_labels=True)
    G = theirs['G_ema']
    assert (G.z_dim, G.c_dim, G.img_resolution, G.num_ws) == (16, 3, 16, ours['G_ema'].num_ws) and not G.training
    assert G._init_kwargs['synthesis_kwargs']['channel_base'] == 256                              # what force_fp16 rebuilds from
    assert torch.equal(_render(G), _render(ours['G_ema']))
    img = _render(ours['G'])
    c = torch.eye(3)[torch.tensor([0, 1, 2, 0])]
    assert torch.equal(theirs['D'](img, c), ours['D'](img, c))
    # NVIDIA's stylegan3 repository: networks_stylegan2.Generator takes the synthesis kwargs flat.
    fake = types.ModuleType('training.networks_stylegan2')
    fake.__spec__ = importlib.machinery.ModuleSpec(fake.__name__, None)
    class FlatGenerator(Generator):
        def __init__(self, z_dim, c_dim, w_dim, img_resolution, img_channels, mapping_kwargs={}, **synthesis_kwargs):
            assert 'synthesis_kwargs' not in synthesis_kwargs and 'channel_base' in synthesis_kwargs
            super().__init__(z_dim, c_dim, w_dim, img_resolution, img_channels, mapping_kwargs=mapping_kwargs, **synthesis_kwargs)
    fake.Generator, fake.Discriminator = FlatGenerator, Discriminator
    monkeypatch.setitem(sys.modules, 'training.networks_stylegan2', fake)
    assert torch.equal(_render(nvidia_load(tmp_path / 'run.pkl')['G_ema']), _render(ours['G_ema']))


def test_round_trip_through_our_safe_reader_and_back_to_pt(run_pt, tmp_path):
    assert convert('--source', run_pt, '--dest', tmp_path / 'run.pkl').exit_code == 0
    ours = snapshot.load_snapshot(str(run_pt))
    read = legacy.load_network(str(tmp_path / 'run.pkl'))                       # never executes the embedded source
    assert torch.equal(_render(read['G_ema']), _render(ours['G_ema']))
    r = convert('--source', tmp_path / 'run.pkl', '--dest', tmp_path / 'back.pt')
    assert r.exit_code == 0, r.output
    back = snapshot.load_snapshot(str(tmp_path / 'back.pt'))
    for key in ('G', 'D', 'G_ema'):
        a, b = ours[key].state_dict(), back[key].state_dict()
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), key
    assert back['training_set_kwargs']['path'] == 'x.zip' and 'cur_nimg' not in back          # weights only: a transfer start
    # An NVIDIA-format pickle (written by the test fixtures) converts to .pt with the same images.
    G, D = _networks(seed=1)
    (tmp_path / 'nvidia.pkl').write_bytes(fx.nvidia_pickle_bytes(dict(G=G, D=D, G_ema=G)))
    assert convert('--source', tmp_path / 'nvidia.pkl', '--dest', tmp_path / 'nvidia.pt').exit_code == 0
    assert torch.equal(_render(snapshot.load_snapshot(str(tmp_path / 'nvidia.pt'))['G_ema']), _render(G))


def _flow_generator(**mapping):
    torch.manual_seed(2)
    G = Generator(z_dim=16, c_dim=3, w_dim=16, img_resolution=16, img_channels=3, synthesis_kwargs=dict(channel_base=256, channel_max=32),
                  mapping_kwargs=dict(class_name='training.domain_flow.DomainFlowMapping', num_layers=2, i_dim=8, flow_dim=4, **mapping))
    with torch.no_grad():
        for p in G.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return G.eval()


def test_flow_models_export_in_istylegan_format(tmp_path):
    """i-StyleGAN / CG-GAN: i-StyleGAN's mapping kwargs and names; our reader renders them back exactly; a code base
    without the flow mapping (NVIDIA's, or this one's plain networks) refuses with a sentence that says what it needs."""
    G = _flow_generator()
    _G, D = _networks()
    snapshot.save_snapshot(str(tmp_path / 'cg.pt'), dict(G=G, D=D, G_ema=G))
    assert convert('--source', tmp_path / 'cg.pt', '--dest', tmp_path / 'cg.pkl').exit_code == 0
    with open(tmp_path / 'cg.pkl', 'rb') as f:
        raw = __import__('torch_utils.safe_pickle', fromlist=['x']).safe_load(f)
    m = raw['G_ema'].init_kwargs['mapping_kwargs']
    assert (m['cond_mode'], m['i_dim'], m['flow_dim'], m['flow_norm'], m['use_label']) == ('flow', 8, 4, 1, 0) and 'class_name' not in m
    assert {'mapping.importance', 'mapping.flow.model.0.u_', 'mapping.flow_fc2.weight'} <= set(raw['G_ema'].named_tensors())
    assert torch.equal(_render(legacy.load_network(str(tmp_path / 'cg.pkl'))['G_ema']), _render(G))
    with pytest.raises(TypeError, match="needs i-StyleGAN's code .its flow mapping."):
        nvidia_load(tmp_path / 'cg.pkl')


def test_refusals_are_one_sentence(run_pt, tmp_path):
    cases = []
    cases.append((['--source', run_pt, '--dest', run_pt], 'exists; choose another name'))
    cases.append((['--source', run_pt, '--dest', tmp_path / 'x.png'], 'must end in .pkl'))
    cases.append((['--source', tmp_path / 'missing.pt', '--dest', tmp_path / 'y.pkl'], 'does not exist'))
    G, D = _networks()
    odd = _flow_generator(mask_threshold=0.2)
    snapshot.save_snapshot(str(tmp_path / 'cg.pt'), dict(G=odd, D=D, G_ema=odd))
    cases.append((['--source', tmp_path / 'cg.pt', '--dest', tmp_path / 'cg.pkl'], 'hard-codes the threshold 0.1'))
    snapshot.save_snapshot(str(tmp_path / 'gema.pt'), dict(G_ema=G))
    cases.append((['--source', tmp_path / 'gema.pt', '--dest', tmp_path / 'gema.pkl'], 'needs G, D and G_ema'))
    for args, sentence in cases:
        r = convert(*args)
        assert r.exit_code == 1 and sentence in r.output and r.output.count('\n') == 1, r.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ['cg.pt', 'gema.pt', 'network-snapshot-000040.pt']   # nothing written

#----------------------------------------------------------------------------

def test_help_is_documented():
    import os
    r = CliRunner().invoke(legacy.main, ['--help'], prog_name='legacy.py')
    doc = open(os.path.join(os.path.dirname(__file__), '..', 'docs', 'legacy-help.txt')).read()
    assert r.exit_code == 0 and '--source' in r.output and '--dest' in r.output
    assert doc.strip() == r.output.strip(), 'regenerate docs/legacy-help.txt with: python legacy.py --help'

#----------------------------------------------------------------------------
