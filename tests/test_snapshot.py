"""Our .pt snapshot format (torch_utils/snapshot.py) and dnnlib.url.open_url."""
import io
import os
import time

import numpy as np
import pytest
import torch

import dnnlib
import legacy
from dnnlib import url as url_lib
from torch_utils import snapshot

#----------------------------------------------------------------------------

def _G(c_dim=2, seed=0):
    torch.manual_seed(seed)
    G = dnnlib.util.construct_class_by_name(class_name='training.networks.Generator', z_dim=8, w_dim=8, c_dim=c_dim,
        img_resolution=8, img_channels=3, mapping_kwargs=dnnlib.EasyDict(num_layers=2),
        synthesis_kwargs=dnnlib.EasyDict(channel_base=64, channel_max=16))
    with torch.no_grad():
        for p in G.parameters():
            p.add_(torch.randn_like(p) * 0.1)
        G.mapping.w_avg.normal_()
    return G


def _D(c_dim=2):
    return dnnlib.util.construct_class_by_name(class_name='training.networks.Discriminator', c_dim=c_dim, img_resolution=8,
        img_channels=3, channel_base=64, channel_max=16, epilogue_kwargs=dnnlib.EasyDict(mbstd_group_size=2))

#----------------------------------------------------------------------------

def test_round_trip_outputs_and_kwargs(tmp_path):
    G, D = _G(), _D()
    opt = torch.optim.Adam(G.parameters(), lr=1e-3)
    G(torch.randn(2, 8), torch.eye(2)).square().mean().backward()
    opt.step()
    G_ema = G.eval().requires_grad_(False)
    path = tmp_path / 'network-snapshot-000004.pt'
    extra = dict(cur_nimg=4000, rng=torch.get_rng_state(), np_value=np.float32(0.5), options=dnnlib.EasyDict(a=[1, 2], b=dict(c=None)))
    snapshot.save_snapshot(str(path), dict(G_ema=G_ema, D=D, G_opt=opt.state_dict(), **extra))
    out = snapshot.load_snapshot(str(path))
    assert out['format'] == 'cggan-snapshot' and out['version'] == 1
    assert out['G_ema'].init_kwargs == G_ema.init_kwargs and out['D'].init_kwargs == D.init_kwargs
    assert out['cur_nimg'] == 4000 and out['np_value'] == 0.5 and out['options'] == dict(a=[1, 2], b=dict(c=None))
    assert torch.equal(out['rng'], extra['rng'])
    z, c = torch.randn(4, 8), torch.eye(2)[[0, 1, 1, 0]]
    with torch.no_grad():
        assert torch.equal(out['G_ema'](z, c, noise_mode='const', truncation_psi=0.5), G_ema(z, c, noise_mode='const', truncation_psi=0.5))
    opt2 = torch.optim.Adam(out['G_ema'].parameters(), lr=1e-3)
    opt2.load_state_dict(out['G_opt'])
    assert not out['G_ema'].training and out['D'].training
    # Also through legacy (the same entry point as NVIDIA pickles).
    with dnnlib.util.open_url(str(path)) as f:
        data = legacy.load_network_pkl(f)
    assert data['G'] is None and data['augment_pipe'] is None
    assert torch.equal(data['G_ema'].mapping.w_avg, G_ema.mapping.w_avg)


def test_records_without_rebuild_are_plain_data(tmp_path):
    path = tmp_path / 's.pt'
    snapshot.save_snapshot(str(path), dict(G=_G()))
    raw = snapshot.load_snapshot(str(path), rebuild_modules=False)
    assert raw['G']['class_name'] == 'training.networks.Generator' and 'mapping.w_avg' in raw['G']['state_dict']
    assert isinstance(raw['G']['init_kwargs']['mapping_kwargs'], dict)


def test_atomic_write_leaves_no_temp_file(tmp_path):
    path = tmp_path / 'network-snapshot-000000.pt'
    snapshot.save_snapshot(str(path), dict(G=_G()))
    before = path.read_bytes()
    with pytest.raises(snapshot.SnapshotError, match='not plain data'):
        snapshot.save_snapshot(str(path), dict(G=_G(), bad=object()))
    with pytest.raises(snapshot.SnapshotError, match='persistent_class'):
        snapshot.save_snapshot(str(path), dict(G=torch.nn.Linear(2, 2)))
    assert sorted(os.listdir(tmp_path)) == [path.name]
    assert path.read_bytes() == before


def test_failed_torch_save_leaves_old_file(tmp_path, monkeypatch):
    path = tmp_path / 'snap.pt'
    snapshot.save_snapshot(str(path), dict(step=1))
    def boom(obj, f):
        f.write(b'PK\x03\x04partial')
        raise KeyboardInterrupt
    monkeypatch.setattr(torch, 'save', boom)
    with pytest.raises(KeyboardInterrupt):
        snapshot.save_snapshot(str(path), dict(step=2))
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ['snap.pt'] and snapshot.load_snapshot(str(path))['step'] == 1


def test_truncated_and_wrong_kind_files(tmp_path):
    good = tmp_path / 'good.pt'
    snapshot.save_snapshot(str(good), dict(G=_G()))
    data = good.read_bytes()
    (tmp_path / 'trunc.pt').write_bytes(data[:len(data) // 3])
    with pytest.raises(snapshot.SnapshotError, match='truncated, corrupt or not a snapshot'):
        snapshot.load_snapshot(str(tmp_path / 'trunc.pt'))
    with pytest.raises(legacy.LegacyError, match='truncated'):
        legacy.load_network(str(tmp_path / 'trunc.pt'))
    torch.save({'model': torch.zeros(2)}, tmp_path / 'other.pt')
    with pytest.raises(snapshot.SnapshotError, match='not a cggan-snapshot'):
        snapshot.load_snapshot(str(tmp_path / 'other.pt'))
    (tmp_path / 'text.pt').write_text('not a snapshot')
    with pytest.raises(snapshot.SnapshotError, match='no torch zip header'):
        snapshot.load_snapshot(str(tmp_path / 'text.pt'))
    with pytest.raises(snapshot.SnapshotError, match='not found'):
        snapshot.load_snapshot(str(tmp_path / 'missing.pt'))


def test_foreign_class_names_and_globals_are_refused(tmp_path):
    record = snapshot.module_to_record(_G())
    record['class_name'] = 'os.system'
    with pytest.raises(snapshot.SnapshotError, match="'os.system', which is not a G class of this code"):
        snapshot.module_from_record(record)
    # A torch.save file whose pickle names an arbitrary callable never gets past weights_only.
    sentinel = tmp_path / 'pwned'
    class Evil:
        def __reduce__(self):
            return (os.system, (f'touch {sentinel}',))
    torch.save(dict(format='cggan-snapshot', version=1, x=Evil()), tmp_path / 'evil.pt')
    with pytest.raises(snapshot.SnapshotError, match='which snapshots of this code never hold'):
        snapshot.load_snapshot(str(tmp_path / 'evil.pt'))
    assert not sentinel.exists()


def test_newer_version_refused(tmp_path):
    torch.save(dict(format='cggan-snapshot', version=99), tmp_path / 'new.pt')
    with pytest.raises(snapshot.SnapshotError, match='newer than this code reads'):
        snapshot.load_snapshot(str(tmp_path / 'new.pt'))


def test_reserved_keys():
    with pytest.raises(snapshot.SnapshotError, match='reserved'):
        snapshot.save_snapshot('/nonexistent/x.pt', dict(format='x'))

#----------------------------------------------------------------------------
# open_url

def test_open_url_local_and_file_urls(tmp_path):
    path = tmp_path / 'a b.bin'
    path.write_bytes(b'abc')
    with dnnlib.util.open_url(str(path)) as f:
        assert f.read() == b'abc'
    with url_lib.open_url('file://' + str(path).replace(' ', '%20')) as f:
        assert f.read() == b'abc'
    assert url_lib.open_url(str(path), return_filename=True) == str(path)
    with pytest.raises(FileNotFoundError, match='File not found'):
        url_lib.open_url(str(tmp_path / 'missing.pkl'))
    with pytest.raises(url_lib.DownloadError, match='only local paths'):
        url_lib.open_url('ftp://example.com/x.pkl')


def test_open_url_offline_fails_fast_with_sentence(tmp_path, monkeypatch):
    monkeypatch.setenv('CGGAN_OFFLINE', '1')
    monkeypatch.setenv('CGGAN_CACHE_DIR', str(tmp_path / 'cache'))
    url = 'https://unreachable.invalid/network-snapshot.pkl'
    start = time.monotonic()
    with pytest.raises(url_lib.DownloadError) as info:
        url_lib.open_url(url)
    assert time.monotonic() - start < 5
    msg = str(info.value)
    assert msg.startswith(f'Cannot download {url}:') and 'pass the local path' in msg
    assert str(tmp_path / 'cache' / 'downloads') in msg


def test_open_url_uses_cache(tmp_path, monkeypatch):
    monkeypatch.setenv('CGGAN_OFFLINE', '1')
    url = 'https://example.com/some/net.pkl'
    dest = url_lib.cache_path_for(url, str(tmp_path))
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    with open(dest, 'wb') as f:
        f.write(b'cached')
    with url_lib.open_url(url, cache_dir=str(tmp_path)) as f:
        assert f.read() == b'cached'
    assert url_lib.open_url(url, cache_dir=str(tmp_path), return_filename=True) == dest

#----------------------------------------------------------------------------
