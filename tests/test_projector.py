"""projector.py and generate.py --projected-*: a tiny random CG-GAN generator projects its own images
back (W and latent space), swaps domains, runs offline, and refuses bad input with one sentence."""
import os

import numpy as np
import PIL.Image
import pytest
import torch
from click.testing import CliRunner

import dnnlib
import generate
import projector
from metrics import weights
from torch_utils import snapshot
from training import domain_swap, projection

#----------------------------------------------------------------------------

def _generator(c_dim):
    torch.manual_seed(0)
    G = dnnlib.util.construct_class_by_name(class_name='training.networks.Generator', z_dim=8, w_dim=8, c_dim=c_dim,
        img_resolution=16, img_channels=3, synthesis_kwargs=dict(channel_base=256, channel_max=16),
        mapping_kwargs=dict(class_name='training.domain_flow.DomainFlowMapping', num_layers=2, i_dim=4))
    if c_dim:
        with torch.no_grad():
            getattr(G.mapping, f'flow_fc{G.mapping.num_layers}').weight.mul_(30)  # domains that differ visibly
    return G.eval().requires_grad_(False)


@pytest.fixture(scope='module')
def nets(tmp_path_factory):
    root = tmp_path_factory.mktemp('proj')
    out = {}
    for name, c_dim in (('cg', 3), ('uncond', 0), ('other', 2)):
        G = _generator(c_dim)
        path = root / f'{name}.pt'
        snapshot.save_snapshot(str(path), dict(G_ema=G, training_set_kwargs=dict(domain_names=['red', 'green', 'blue'][:c_dim] or None)))
        out[name] = (str(path), G)
    G = out['cg'][1]
    img = G(domain_swap.seed_latent(5, G.z_dim), torch.eye(3)[[1]], noise_mode='const')
    target = root / 'target.png'
    PIL.Image.fromarray(generate.to_uint8(img)[0]).save(target)
    out['target'] = str(target)
    return out


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    monkeypatch.setenv('CGGAN_OFFLINE', '1')
    monkeypatch.setenv('CGGAN_CACHE_DIR', str(tmp_path / 'cache'))
    monkeypatch.delenv('CGGAN_VGG16', raising=False)
    monkeypatch.setattr(weights, 'download', lambda *a, **k: pytest.fail('the offline path tried a download'))


def _run(main, *args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def _png(path):
    with PIL.Image.open(path) as im:
        return np.asarray(im.convert('RGB'))

#----------------------------------------------------------------------------

@pytest.mark.parametrize('space', ['w', 'latent'])
def test_projecting_own_image_recovers_it(nets, space):
    G = nets['cg'][1]
    eps, c = domain_swap.seed_latent(5, G.z_dim), torch.eye(3)[[1]]
    target = G(eps, c, noise_mode='const')
    res = projection.project(G, target, c, space=space, num_steps=150, seed=1, progress=False)
    start = projection.PixelPyramidDistance(target)(G.synthesis(projection.domain_w_avg(G, c)[0].repeat(1, G.num_ws, 1), noise_mode='const'))
    assert res['loss'][-1] < 0.05 * float(start)                        # far closer than the domain's mean image
    w_true = G.mapping(eps, c)
    w_dist = (res['w'] - w_true).norm() / (projection.domain_w_avg(G, c)[0] - w_true).norm()
    assert w_dist < 0.5, float(w_dist)                                  # the W found is near the true one
    if space == 'latent':
        x_true, x_proj = G.mapping.latent(eps, c), G.mapping.latent(res['eps'], c)
        assert torch.nn.functional.cosine_similarity(x_true, x_proj).item() > 0.9
    assert torch.equal(G.synthesis.b4.conv1.noise_const, nets['cg'][1].synthesis.b4.conv1.noise_const)  # G untouched


def test_noise_buffers_stay_white_and_normalised(nets):
    G = nets['cg'][1]
    white = {'a': torch.randn([16, 16], generator=torch.Generator().manual_seed(0))}
    smooth = {'a': torch.nn.functional.interpolate(white['a'][None, None, :4, :4], size=(16, 16), mode='bilinear')[0, 0]}
    assert float(projection._noise_penalty(smooth)) > 100 * float(projection._noise_penalty(white))
    res = projection.project(G, torch.zeros([1, 3, 16, 16]), torch.eye(3)[[0]], space='latent', num_steps=5, progress=False)
    for buf in res['noise'].values():
        assert abs(float(buf.mean())) < 1e-5 and float(buf.square().mean()) == pytest.approx(1, abs=1e-4)


def test_projector_cli_swap_grid_and_generate_round_trip(nets, tmp_path):
    path, G = nets['cg']
    res = _run(projector.main, '--network', path, '--target', nets['target'], '--domain', 'green', '--swap', '--num-steps', 20,
               '--save-video', 'true', '--outdir', tmp_path, '--device', 'cpu')
    assert res.exit_code == 0, res.output
    said = res.output.splitlines()
    distance = next(line for line in said if line.startswith('Distance: '))      # said before the first step, with the reason
    assert said.index(distance) < said.index(next(line for line in said if line.startswith('step ')))
    assert "pixel pyramid (offline, no weights; its numbers are not comparable with NVIDIA's LPIPS distances)" in distance
    assert '--loss=auto: VGG16 weights not found' in distance and 'space: latent.' in distance
    steps = [line for line in said if line.startswith('step ')]                 # NVIDIA's per-step lines
    assert len(steps) == 20 and steps[0].startswith('step    1/20: dist ') and ' loss ' in steps[0] and steps[-1].startswith('step   20/20:')
    for name in ('target.png', 'proj.png', 'projected_w.npz', 'projected_latent.npz', 'proj.gif', 'swap.png', 'projection.json'):
        assert (tmp_path / name).is_file(), name
    eps = torch.from_numpy(np.load(tmp_path / 'projected_latent.npz')['eps'])
    assert eps.shape == (1, G.z_dim)
    grid = domain_swap.swap_grid_latents(G, [eps], truncation_psi=1.0)
    assert grid.shape[:2] == (1, 3)                                      # one image per domain
    swap = _png(tmp_path / 'swap.png')
    assert swap.shape == np.asarray(domain_swap.grid_image(grid, col_headers=['red', 'green', 'blue'], row_headers=['proj (latent)'])).shape
    res = _run(generate.main, '--network', path, '--projected-latent', tmp_path / 'projected_latent.npz', '--swap-grid', '--outdir', tmp_path / 'g')
    assert res.exit_code == 0, res.output
    expected = np.asarray(domain_swap.grid_image(grid, col_headers=['red', 'green', 'blue'], row_headers=['proj00']))
    assert np.array_equal(_png(tmp_path / 'g' / 'swap-grid.png'), expected)
    res = _run(generate.main, '--network', path, '--projected-w', tmp_path / 'projected_w.npz', '--outdir', tmp_path / 'w')
    assert res.exit_code == 0, res.output
    w = torch.from_numpy(np.load(tmp_path / 'projected_w.npz')['w'])
    assert np.array_equal(_png(tmp_path / 'w' / 'proj00.png'), generate.to_uint8(G.synthesis(w, noise_mode='const'))[0])


def test_offline_distance_and_lpips_path(nets):
    target = torch.zeros([1, 3, 16, 16])
    assert isinstance(projection.make_distance(target, 'auto'), projection.PixelPyramidDistance)
    with pytest.raises(weights.MetricUnavailableError, match='VGG16 weights not found'):
        projection.make_distance(target, 'lpips')
    seen = []
    def fake_vgg(img, resize_images, return_lpips):
        seen.append((tuple(img.shape), float(img.min()), float(img.max()), resize_images, return_lpips))
        return img.mean(dim=(2, 3))
    dist = projection.LPIPSDistance(target, fake_vgg)
    assert float(dist(torch.ones([1, 3, 16, 16]))) == pytest.approx(3 * 127.5 ** 2)
    assert seen[-1] == ((1, 3, 256, 256), 255.0, 255.0, False, True)   # NVIDIA's 256 px in [0, 255], not resized again


def test_resized_and_converted_target_said_in_a_line(nets, tmp_path):
    big = tmp_path / 'big.png'
    PIL.Image.fromarray(np.full([40, 30], 200, np.uint8), 'L').save(big)
    res = _run(projector.main, '--network', nets['cg'][0], '--target', big, '--domain', 0, '--num-steps', 2,
               '--save-video', 'false', '--outdir', tmp_path / 'o')
    assert res.exit_code == 0, res.output
    assert 'L image converted to RGB' in res.output and '30x40 image centre-cropped and resized to 16x16' in res.output
    assert _png(tmp_path / 'o' / 'target.png').shape == (16, 16, 3)


def test_bad_inputs_one_sentence(nets, tmp_path, monkeypatch):
    bad = tmp_path / 'bad.png'
    bad.write_bytes(b'not an image')
    cases = [
        (projector.main, ['--network', nets['uncond'][0], '--target', nets['target'], '--domain', 1], 'the network is unconditional'),
        (projector.main, ['--network', nets['cg'][0], '--target', nets['target']], 'pick one with --domain'),
        (projector.main, ['--network', nets['cg'][0], '--target', bad, '--domain', 0], 'is not a readable image'),
        (projector.main, ['--network', nets['cg'][0], '--target', nets['target'], '--domain', 0, '--loss', 'lpips'], 'VGG16 weights not found'),
    ]
    res = _run(projector.main, '--network', nets['cg'][0], '--target', nets['target'], '--domain', 0, '--num-steps', 2,
               '--save-video', 'false', '--outdir', tmp_path / 'p')
    assert res.exit_code == 0, res.output
    np.savez(tmp_path / 'junk.npz', w=np.array(['a']))
    monkeypatch.setattr(generate, 'MAX_PROJECTION_BYTES', 1 << 20)
    np.savez_compressed(tmp_path / 'bomb.npz', w=np.zeros([2 << 20], np.uint8))  # 2 MB of zeros in a 2 kB file
    cases += [
        (generate.main, ['--network', nets['other'][0], '--projected-latent', tmp_path / 'p' / 'projected_latent.npz', '--swap-grid'], 'projected with another network'),
        (generate.main, ['--network', nets['cg'][0], '--projected-w', tmp_path / 'junk.npz'], 'has no float array "w"'),
        (generate.main, ['--network', nets['cg'][0], '--projected-w', bad], 'is not a projection file'),
        (generate.main, ['--network', nets['cg'][0], '--projected-w', tmp_path / 'bomb.npz'], 'unpacks to more than'),
        (generate.main, ['--network', nets['cg'][0], '--projected-w', tmp_path / 'p' / 'projected_w.npz', '--seeds', 1], 'replaces --seeds'),
    ]
    for main, args, sentence in cases:
        res = _run(main, *args, '--outdir', tmp_path / 'o')
        errors = [line for line in res.output.splitlines() if line.startswith('Error:')]
        assert res.exit_code == 1 and 'Traceback' not in res.output, (args, res.output)
        assert len(errors) == 1 and sentence in errors[0], (args, res.output)


def test_help_text_is_documented():
    res = CliRunner().invoke(projector.main, ['--help'], prog_name='projector.py')
    doc = open(os.path.join(os.path.dirname(__file__), '..', 'docs', 'projector-help.txt')).read()
    assert doc.split() == res.output.split(), 'regenerate docs/projector-help.txt with: COLUMNS=80 python projector.py --help'  # wrapping aside

#----------------------------------------------------------------------------
