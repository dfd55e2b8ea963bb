"""Tiny stand-ins shared by the training tests: a deterministic two-domain image set and small configs."""
import numpy as np

import dnnlib

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

def tiny_kwargs(run_dir, batch_size=8, batch_gpu=None, total_kimg=0.032, model='stylegan2-ada', augment=False, **overrides):
    """training_loop kwargs for an 8x8 two-domain run that takes a few seconds on a CPU."""
    G_kwargs = dnnlib.EasyDict(class_name='training.networks.Generator', z_dim=16, w_dim=16,
                               mapping_kwargs=dnnlib.EasyDict(num_layers=2),
                               synthesis_kwargs=dnnlib.EasyDict(channel_base=128, channel_max=16, num_fp16_res=0, conv_clamp=None))
    if model != 'stylegan2-ada':
        G_kwargs.mapping_kwargs.update(class_name='training.domain_flow.DomainFlowMapping', cond_mode='flow', i_dim=8, flow_blocks=2, flow_dim=4)
    c = dnnlib.EasyDict(
        run_dir=run_dir,
        training_set_kwargs=dnnlib.EasyDict(class_name='tests.training_fixtures.TinyDataset', size=32, resolution=8),
        data_loader_kwargs=dnnlib.EasyDict(num_workers=0),
        G_kwargs=G_kwargs,
        D_kwargs=dnnlib.EasyDict(class_name='training.networks.Discriminator', channel_base=128, channel_max=16,
                                 epilogue_kwargs=dnnlib.EasyDict(mbstd_group_size=2)),
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
