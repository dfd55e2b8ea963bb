"""NVIDIA's README idiom `pickle.load(f)['G_ema']` with this code on the path: our exports and NVIDIA-format
pickles give our modules (rebuilt through the allow-list, the embedded source never run), anything else is one
sentence naming legacy.load_network_pkl."""
import io
import pickle

import pytest
import torch

import legacy
from tests import fixtures_nvidia as fx
from training.augment import AugmentPipe
from training.networks import Discriminator, Generator

#----------------------------------------------------------------------------

def _networks():
    torch.manual_seed(0)
    G = Generator(z_dim=16, c_dim=3, w_dim=16, img_resolution=16, img_channels=3, mapping_kwargs=dict(num_layers=2),
                  synthesis_kwargs=dict(channel_base=128, channel_max=16)).eval()
    D = Discriminator(c_dim=3, img_resolution=16, img_channels=3, channel_base=128, channel_max=16)
    return G, D


def _images(G):
    z = torch.randn([3, G.z_dim], generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        return G(z, torch.eye(3), noise_mode='const')


def test_nvidia_format_pickle_loads_with_plain_pickle_and_never_runs_its_source():
    G, D = _networks()
    pipe = AugmentPipe(xflip=1, rotate90=1)
    pipe.p.fill_(0.25)
    data = fx.nvidia_pickle_bytes(dict(G=G, D=D, G_ema=G, augment_pipe=pipe))  # module_src raises if executed
    loaded = pickle.load(io.BytesIO(data))
    assert type(loaded['G_ema']) is Generator and type(loaded['D']) is Discriminator and type(loaded['augment_pipe']) is AugmentPipe
    torch.testing.assert_close(_images(loaded['G_ema']), _images(G))
    assert float(loaded['augment_pipe'].p) == pytest.approx(0.25)
    torch.testing.assert_close(_images(legacy.load_network_pkl(io.BytesIO(data))['G_ema']), _images(G))


def test_our_export_loads_with_plain_pickle(tmp_path):
    from torch_utils import nvidia_export
    G, D = _networks()
    path = tmp_path / 'network-snapshot-000000.pkl'
    path.write_bytes(nvidia_export.export_bytes(dict(G=G, D=D, G_ema=G)))
    with open(path, 'rb') as f:
        G_loaded = pickle.load(f)['G_ema']
    assert type(G_loaded) is Generator
    torch.testing.assert_close(_images(G_loaded), _images(G))


@pytest.mark.parametrize('class_name, source, words', [
    ('SynthesisInput', fx.FIXTURE_MODULE_SRC, 'met a persistent "SynthesisInput", which this code does not rebuild'),
    ('Generator', fx.FIXTURE_MODULE_SRC + '\nclass SynthesisInput: pass\n', 'cannot rebuild this Generator (pickle.load: Generator is a StyleGAN3'),
])
def test_what_cannot_be_rebuilt_is_one_sentence_naming_legacy(class_name, source, words):
    G, _D = _networks()
    record = fx.nvidia_record(G, module_src=source)
    record._args[0]['class_name'] = class_name
    with pytest.raises(pickle.UnpicklingError) as e:
        pickle.load(io.BytesIO(fx.fake_dumps(dict(G_ema=record))))
    message = str(e.value)
    assert words in message and 'legacy.load_network_pkl(f)' in message and '\n' not in message
