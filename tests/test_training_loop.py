"""Training loop tests, and the tiny fixtures the other training tests import (a two-domain 8x8 image set, configs)."""
import json
import os

import numpy as np
import pytest
import torch

import dnnlib
from torch_utils import persistence
from training.networks import Discriminator
from training.training_loop import TrainingError, training_loop

#----------------------------------------------------------------------------

class TinyDataset:
    """NVIDIA Dataset API subset the training loop uses: (uint8 CHW image, one-hot label) items."""

    def __init__(self, size=32, resolution=8, num_domains=2, use_labels=True, seed=0, **_ignored):
        rnd = np.random.RandomState(seed)
        self.name = 'tiny'
        self._labels = np.arange(size) % num_domains
        yy, xx = np.mgrid[0:resolution, 0:resolution] / max(resolution - 1, 1)
        images = []
        for i in range(size):
            base = xx if self._labels[i] == 0 else yy                   # domain = gradient direction
            img = np.stack([base, 1 - base, np.full_like(base, rnd.rand())]) * 255
            images.append(np.clip(img + rnd.randn(*img.shape) * 10, 0, 255).astype(np.uint8))
        self._images = np.stack(images)
        self.num_domains = num_domains
        self.has_labels = bool(use_labels)
        self.label_dim = num_domains if use_labels else 0
        self.resolution = resolution
        self.num_channels = 3
        self.image_shape = [3, resolution, resolution]
        self.label_shape = [self.label_dim]

    def __len__(self):
        return len(self._images)

    def get_label(self, idx):
        label = np.zeros([self.label_dim], np.float32)
        if self.has_labels:
            label[self._labels[idx]] = 1
        return label

    def __getitem__(self, idx):
        return self._images[idx].copy(), self.get_label(idx)

#----------------------------------------------------------------------------

@persistence.persistent_class
class BiasedDiscriminator(Discriminator):
    """Discriminator whose logits get `offset` added; from the `nan_after`-th call on they are NaN."""

    def __init__(self, *args, offset=0.0, nan_after=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.offset = offset
        self.nan_after = nan_after
        self.calls = 0

    def forward(self, img, c, **kwargs):
        self.calls += 1
        out = super().forward(img, c, **kwargs) + self.offset
        if self.nan_after is not None and self.calls > self.nan_after:
            out = out * float('nan')
        return out

#----------------------------------------------------------------------------

def tiny_kwargs(run_dir, batch_size=8, batch_gpu=None, total_kimg=0.032, model='stylegan2-ada', augment=False, **overrides):
    """training_loop kwargs for an 8x8 two-domain run that takes a few seconds on a CPU."""
    G_kwargs = dnnlib.EasyDict(class_name='training.networks.Generator', z_dim=16, w_dim=16,
                               mapping_kwargs=dnnlib.EasyDict(num_layers=2),
                               synthesis_kwargs=dnnlib.EasyDict(channel_base=128, channel_max=16, num_fp16_res=0, conv_clamp=None))
    if model != 'stylegan2-ada':
        G_kwargs.mapping_kwargs.update(class_name='training.domain_flow.DomainFlowMapping', cond_mode='flow', i_dim=8, flow_blocks=2, flow_dim=4)
    c = dnnlib.EasyDict(
        run_dir=run_dir,
        training_set_kwargs=dnnlib.EasyDict(class_name='tests.test_training_loop.TinyDataset', size=32, resolution=8),
        data_loader_kwargs=dnnlib.EasyDict(num_workers=0),
        G_kwargs=G_kwargs,
        D_kwargs=dnnlib.EasyDict(class_name='training.networks.Discriminator', channel_base=128, channel_max=16,
                                 epilogue_kwargs=dnnlib.EasyDict(mbstd_num_channels=0)),  # mbstd couples samples: off for equivalences
        G_opt_kwargs=dnnlib.EasyDict(class_name='torch.optim.Adam', lr=0.002, betas=[0, 0.99], eps=1e-8),
        D_opt_kwargs=dnnlib.EasyDict(class_name='torch.optim.Adam', lr=0.002, betas=[0, 0.99], eps=1e-8),
        loss_kwargs=dnnlib.EasyDict(class_name='training.loss.StyleGAN2Loss', r1_gamma=1.0),
        batch_size=batch_size, batch_gpu=batch_gpu or batch_size, total_kimg=total_kimg, kimg_per_tick=0.016,
        image_snapshot_ticks=100, network_snapshot_ticks=100, G_reg_interval=2, D_reg_interval=2, ema_kimg=0.01,
        log_fn=lambda *args, **kwargs: None,
    )
    if model == 'cg-gan':
        c.loss_kwargs.update(lambda_sparse=0.1, lambda_imgsparse=0.1, imgsparse_kwargs=dict(delta=0.1))
    if augment:
        c.augment_kwargs = dnnlib.EasyDict(class_name='training.augment.AugmentPipe', xflip=1, brightness=1)
        c.ada_target = 0.6
        c.ada_interval = 1
        c.ada_kimg = 0.1
    c.update(overrides)
    return c

#----------------------------------------------------------------------------

def params_of(module):
    return {k: v.detach().clone() for k, v in list(module.named_parameters()) + list(module.named_buffers())}


def assert_same_params(a, b, atol=1e-5, rtol=1e-4):
    pa, pb = params_of(a), params_of(b)
    assert pa.keys() == pb.keys()
    for k in pa:
        torch.testing.assert_close(pa[k], pb[k], atol=atol, rtol=rtol, msg=lambda m: f'{k}: {m}')

#----------------------------------------------------------------------------

def test_run_writes_grids_stats_snapshot(tmp_path):
    from torch_utils.snapshot import load_snapshot
    r = training_loop(**tiny_kwargs(str(tmp_path), model='cg-gan', augment=True, metrics=[]))
    names = set(os.listdir(tmp_path))
    assert {'reals.png', 'fakes_init.png', 'fakes000000.png', 'stats.jsonl', 'network-snapshot-000000.pt'} <= names
    assert any(n.startswith('events.out.tfevents') for n in names)
    lines = [json.loads(line) for line in open(tmp_path / 'stats.jsonl')]
    assert len(lines) == 3  # ticks at 8, 16 and 32 images
    for key in ('Loss/G/loss', 'Loss/D/loss', 'Loss/D/reg', 'Loss/G/reg', 'Loss/G/sparse', 'Loss/G/imgsparse', 'Progress/kimg', 'Progress/augment'):
        assert any(key in line for line in lines), key
    snap = load_snapshot(str(tmp_path / 'network-snapshot-000000.pt'))
    assert snap['cur_nimg'] == 32 and snap['batch_idx'] == 4
    assert_same_params(snap['G_ema'], r.G_ema, atol=0, rtol=0)
    for key in ('G', 'D', 'G_opt', 'D_opt', 'augment_p', 'torch_rng', 'loss', 'training_set_kwargs'):
        assert key in snap
    import PIL.Image
    grid = PIL.Image.open(tmp_path / 'fakes_init.png')
    assert grid.size == (8 * 8, 8 * 8)  # 8 columns; 2 domains x 4 rows


def test_lazy_regularisation_scales_optimizer(tmp_path):
    r = training_loop(**tiny_kwargs(str(tmp_path), total_kimg=0.008, G_reg_interval=4, D_reg_interval=16,
                                    network_snapshot_ticks=None, image_snapshot_ticks=None))
    for opt, interval in [(r.G_opt, 4), (r.D_opt, 16)]:
        ratio = interval / (interval + 1)  # StyleGAN2 App. C: lr * c, beta ** c
        assert opt.param_groups[0]['lr'] == pytest.approx(0.002 * ratio)
        assert opt.param_groups[0]['betas'][1] == pytest.approx(0.99 ** ratio)


@pytest.mark.parametrize('offset,direction', [(20.0, +1), (-20.0, -1)])
def test_ada_p_moves_towards_target(tmp_path, offset, direction):
    # Real logits forced positive (r_t = 1 > 0.6) must raise p; forced negative (r_t = -1) must lower it.
    kw = tiny_kwargs(str(tmp_path), augment=True, augment_p=0.5, network_snapshot_ticks=None, image_snapshot_ticks=None)
    kw.D_kwargs.class_name = 'tests.test_training_loop.BiasedDiscriminator'
    kw.D_kwargs.offset = offset
    r = training_loop(**kw)
    expected = 0.5 + direction * 4 * 8 / (0.1 * 1000)  # 4 steps, batch 8, ada_kimg 0.1, interval 1
    assert r.augment_p == pytest.approx(expected, abs=1e-6)


def test_nan_loss_stops_with_phase_and_tick_and_keeps_snapshot(tmp_path):
    kw = tiny_kwargs(str(tmp_path), total_kimg=0.064, network_snapshot_ticks=1, image_snapshot_ticks=None)
    kw.D_kwargs.class_name = 'tests.test_training_loop.BiasedDiscriminator'
    kw.D_kwargs.nan_after = 4  # the first tick (one step: D runs in Gmain, Dmain x2, Dreg) stays finite
    with pytest.raises(TrainingError) as e:
        training_loop(**kw)
    msg = str(e.value)
    assert 'NaN or Inf' in msg and 'tick 1' in msg and 'Gmain' in msg
    assert 'network-snapshot-000000.pt' in msg
    from torch_utils.snapshot import load_snapshot
    snap = load_snapshot(str(tmp_path / 'network-snapshot-000000.pt'), rebuild_modules=False)  # test class: not rebuildable
    assert snap['cur_nimg'] == 8
    assert all(torch.isfinite(v).all() for v in snap['G']['state_dict'].values())
    assert msg.endswith('then resume from it.')


def test_nan_loss_before_any_snapshot_does_not_say_resume(tmp_path):
    kw = tiny_kwargs(str(tmp_path), total_kimg=0.064, network_snapshot_ticks=None, image_snapshot_ticks=None)
    kw.D_kwargs.class_name = 'tests.test_training_loop.BiasedDiscriminator'
    kw.D_kwargs.nan_after = 4
    with pytest.raises(TrainingError) as e:
        training_loop(**kw)
    msg = str(e.value)
    assert 'no snapshot was written yet' in msg and msg.endswith('then start again.') and 'resume' not in msg

#----------------------------------------------------------------------------

def test_cli_user_errors_are_one_sentence_and_help_is_documented(tmp_path):
    from click.testing import CliRunner
    import train
    runner = CliRunner()
    r = runner.invoke(train.main, ['--outdir', str(tmp_path), '--data', str(tmp_path / 'missing.zip'), '--metrics=none'])
    assert r.exit_code != 0 and 'Traceback' not in r.output and 'does not exist' in r.output
    r = runner.invoke(train.main, ['--outdir', str(tmp_path), '--data', 'x.zip', '--metrics=nosuchmetric'])
    assert r.exit_code != 0 and 'Unknown metric nosuchmetric' in r.output
    r = runner.invoke(train.main, ['--help'], terminal_width=120)
    doc = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'docs', 'train-help.txt')
    for option in ('--outdir', '--gpus', '--batch-gpu', '--resume', '--model', '--sparse-interval', '--dry-run'):
        assert option in r.output and option in open(doc).read()


def test_presets_follow_nvidia_auto_formula():
    from training.presets import resolve
    spec = resolve('auto', 256, 1)
    assert (spec.mb, spec.mbstd, spec.fmaps, spec.lrate, spec.ema, spec.map) == (16, 4, 0.5, 0.0025, 5, 2)
    assert spec.gamma == pytest.approx(0.0002 * 256 ** 2 / 16)
    spec = resolve('auto', 1024, 8)
    assert (spec.mb, spec.mbstd, spec.fmaps, spec.lrate) == (32, 4, 1, 0.002)
    assert resolve('paper256', 256, 8).gamma == 1 and resolve('cifar', 32, 2).pl == 0
    with pytest.raises(ValueError, match='Unknown --cfg'):
        resolve('huge', 256, 1)


def test_cli_resume_from_a_wrong_kind_of_file_is_one_sentence(tmp_path):
    from click.testing import CliRunner
    import dataset_tool
    import train
    data = tmp_path / 'shapes.zip'
    dataset_tool.convert_dataset('builtin:shapes', str(data), resolution=16, max_images=16, progress=False)
    (tmp_path / 'notes.pkl').write_text('not a pickle')
    for bad, sentence in [(data, 'not a network snapshot (a dataset?)'), (tmp_path / 'notes.pkl', 'is a text file')]:
        r = CliRunner().invoke(train.main, ['--outdir', str(tmp_path / 'runs'), '--data', str(data), '--cfg=tiny', '--kimg=1',
                                            '--metrics=none', '--resume', str(bad)])
        assert r.exit_code != 0 and 'Traceback' not in r.output and sentence in r.output, r.output
        assert not (tmp_path / 'runs').exists() or not any((tmp_path / 'runs').iterdir())   # nothing written


def test_cli_fine_tunes_istylegan_run_as_cg_gan_exactly(tmp_path):
    """--resume=<our istylegan snapshot> --model=cg-gan: same run state (counter, networks), cg-gan losses."""
    from click.testing import CliRunner
    import dataset_tool
    import train
    from torch_utils.snapshot import load_snapshot
    data = tmp_path / 'shapes.zip'
    dataset_tool.convert_dataset('builtin:shapes', str(data), resolution=16, max_images=64, progress=False)
    common = ['--data', str(data), '--cfg=tiny', '--batch=8', '--metrics=none', '--tick=0.016', '--snap=1', '--aug=noaug']
    r = CliRunner().invoke(train.main, ['--outdir', str(tmp_path / 'a'), '--model=istylegan', '--kimg=0.016', *common])
    assert r.exit_code == 0, r.output
    first = sorted((tmp_path / 'a').glob('*/network-snapshot-*.pt'))[-1]
    r = CliRunner().invoke(train.main, ['--outdir', str(tmp_path / 'b'), '--model=cg-gan', '--sparse-interval=1', '--kimg=0.032', '--resume', str(first), *common])
    assert r.exit_code == 0, r.output
    assert 'Fine-tuning: continuing the istylegan run as cg-gan' in r.output
    run = sorted((tmp_path / 'b').glob('*'))[0]
    assert 'cg-gan' in run.name
    last = load_snapshot(str(sorted(run.glob('network-snapshot-*.pt'))[-1]), rebuild_modules=False)
    from training import presets
    assert last["cur_nimg"] == 32 and last["options"]["loss_kwargs"]["lambda_imgsparse"] == presets.LAMBDA_IMGSPARSE
    assert last['domain_names'] == ['red-on-dark', 'green-on-grey', 'blue-on-light']       # for generate.py --domain NAME
    stats = [json.loads(l) for l in open(run / 'stats.jsonl')]
    assert any('Loss/G/imgsparse' in s for s in stats)
