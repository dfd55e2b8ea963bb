"""Check that NVIDIA StyleGAN2-ADA pickles load through our legacy.py and compute the same outputs.

Needs a checkout of NVlabs/stylegan2-ada-pytorch (not shipped; not part of the test suite):
    git clone https://github.com/NVlabs/stylegan2-ada-pytorch /tmp/nv-sg2ada
    python tools/check_nvidia_equivalence.py --nvidia-repo=/tmp/nv-sg2ada --workdir=/tmp/nv-equiv

Stage 1 (a separate process with only the NVIDIA repo on sys.path): build random-weight G/D for a few
configurations, pickle {G, D, G_ema, augment_pipe, training_set_kwargs} with NVIDIA's own persistence,
and dump fixed inputs and outputs to .npz. Stage 2 (this process, our repo on sys.path): load each
pickle with legacy.load_network_pkl and compare. Prints one JSON line per output and exits 1 if any
max abs difference is >= --tol (default 1e-4). CPU only; fp16 blocks are run with force_fp32=True.
"""
import argparse
import json
import os
import subprocess
import sys

# name, G kwargs (NVIDIA train.py style), D kwargs
CONFIGS = [
    ('uncond32', dict(z_dim=64, w_dim=64, c_dim=0, img_resolution=32, img_channels=3,
                      mapping_kwargs=dict(num_layers=2), synthesis_kwargs=dict(channel_base=2048, channel_max=64)),
                 dict(c_dim=0, img_resolution=32, img_channels=3, channel_base=2048, channel_max=64,
                      block_kwargs={}, mapping_kwargs={}, epilogue_kwargs=dict(mbstd_group_size=4))),
    ('cond32', dict(z_dim=64, w_dim=64, c_dim=3, img_resolution=32, img_channels=3,
                    mapping_kwargs=dict(num_layers=8), synthesis_kwargs=dict(channel_base=2048, channel_max=64, num_fp16_res=4, conv_clamp=256)),
               dict(c_dim=3, img_resolution=32, img_channels=3, channel_base=2048, channel_max=64, num_fp16_res=4, conv_clamp=256,
                    block_kwargs={}, mapping_kwargs={}, epilogue_kwargs=dict(mbstd_group_size=4))),
    ('uncond64', dict(z_dim=64, w_dim=64, c_dim=0, img_resolution=64, img_channels=3,
                      mapping_kwargs=dict(num_layers=8), synthesis_kwargs=dict(channel_base=4096, channel_max=64, num_fp16_res=4, conv_clamp=256)),
                 dict(c_dim=0, img_resolution=64, img_channels=3, channel_base=4096, channel_max=64, num_fp16_res=4, conv_clamp=256,
                      block_kwargs={}, mapping_kwargs={}, epilogue_kwargs=dict(mbstd_group_size=2))),
    ('cond64_resnetG_origD', dict(z_dim=64, w_dim=64, c_dim=3, img_resolution=64, img_channels=3,
                                  mapping_kwargs=dict(num_layers=2), synthesis_kwargs=dict(channel_base=4096, channel_max=64, architecture='resnet')),
                             dict(c_dim=3, img_resolution=64, img_channels=3, channel_base=4096, channel_max=64, architecture='orig',
                                  block_kwargs={}, mapping_kwargs={}, epilogue_kwargs=dict(mbstd_group_size=4))),
]
BATCH = 4

#----------------------------------------------------------------------------

def _inputs(np, cfg_G, seed):
    rnd = np.random.RandomState(seed)
    z = rnd.randn(BATCH, cfg_G['z_dim']).astype(np.float32)
    c = np.eye(cfg_G['c_dim'], dtype=np.float32)[np.arange(BATCH) % cfg_G['c_dim']] if cfg_G['c_dim'] else np.zeros([BATCH, 0], np.float32)
    img = rnd.uniform(-1, 1, [BATCH, 3, cfg_G['img_resolution'], cfg_G['img_resolution']]).astype(np.float32)
    return z, c, img


def _outputs(torch, G_ema, D, z, c, img):
    """The outputs both code bases must agree on (same call signatures in both)."""
    z, c, img = (torch.from_numpy(x) for x in (z, c, img))
    out = {}
    with torch.no_grad():
        out['ws'] = G_ema.mapping(z, c)
        out['ws_trunc'] = G_ema.mapping(z, c, truncation_psi=0.7, truncation_cutoff=4)
        out['img_const'] = G_ema(z, c, noise_mode='const', force_fp32=True)
        out['img_trunc'] = G_ema(z, c, truncation_psi=0.7, noise_mode='const', force_fp32=True)
        out['img_none_unfused'] = G_ema(z, c, noise_mode='none', force_fp32=True, fused_modconv=False)
        out['D'] = D(img, c, force_fp32=True)
    return {k: v.numpy() for k, v in out.items()}


def stage_nvidia(nvidia_repo, workdir):
    """Runs in a process with only NVIDIA's repo importable; writes <cfg>.pkl and <cfg>.npz."""
    sys.path.insert(0, os.path.abspath(nvidia_repo))
    import copy
    import pickle
    import numpy as np
    import torch
    import dnnlib  # NVIDIA's
    import training.networks
    assert os.path.abspath(training.networks.__file__).startswith(os.path.abspath(nvidia_repo)), 'stage 1 must run NVIDIA code'
    for i, (name, g_kwargs, d_kwargs) in enumerate(CONFIGS):
        torch.manual_seed(i)
        G = dnnlib.util.construct_class_by_name(class_name='training.networks.Generator', **copy.deepcopy(g_kwargs))
        D = dnnlib.util.construct_class_by_name(class_name='training.networks.Discriminator', **copy.deepcopy(d_kwargs))
        with torch.no_grad():  # random weights everywhere, also biases, noise strengths and w_avg
            for p in list(G.parameters()) + list(D.parameters()):
                p.add_(torch.randn_like(p) * 0.2)
            G.mapping.w_avg.normal_()
        G_ema = copy.deepcopy(G).eval().requires_grad_(False)
        data = dict(G=G, D=D, G_ema=G_ema, augment_pipe=None,
                    training_set_kwargs=dnnlib.EasyDict(class_name='training.dataset.ImageFolderDataset', path='x.zip', use_labels=bool(g_kwargs['c_dim'])))
        with open(os.path.join(workdir, f'{name}.pkl'), 'wb') as f:
            pickle.dump(data, f)
        z, c, img = _inputs(np, g_kwargs, 1000 + i)
        np.savez(os.path.join(workdir, f'{name}.npz'), z=z, c=c, img=img, **_outputs(torch, G_ema, D, z, c, img))
        print(f'nvidia: wrote {name}.pkl', flush=True)


def stage_ours(workdir, tol):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import numpy as np
    import torch
    import dnnlib
    import legacy
    assert not os.path.isfile(os.path.join(os.path.dirname(legacy.__file__), 'projector.py')), 'stage 2 must run our code'
    worst = 0.0
    for name, _, _ in CONFIGS:
        with dnnlib.util.open_url(os.path.join(workdir, f'{name}.pkl')) as f:
            data = legacy.load_network_pkl(f)
        ref = np.load(os.path.join(workdir, f'{name}.npz'))
        ours = _outputs(torch, data['G_ema'], data['D'], ref['z'], ref['c'], ref['img'])
        for key, value in ours.items():
            diff = float(np.abs(value.astype(np.float64) - ref[key]).max())
            worst = max(worst, diff)
            print(json.dumps(dict(config=name, output=key, shape=list(value.shape), max_abs_diff=diff, ok=diff < tol)), flush=True)
        sd_ref = {k: v for k, v in data['G'].state_dict().items()}
        assert all(torch.equal(sd_ref[k], v) for k, v in data['G_ema'].state_dict().items()), 'G and G_ema differ'
    print(json.dumps(dict(summary='nvidia_equivalence', configs=len(CONFIGS), worst_max_abs_diff=worst, tol=tol, ok=worst < tol)))
    return worst < tol

#----------------------------------------------------------------------------

def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--nvidia-repo', required=True, help='checkout of NVlabs/stylegan2-ada-pytorch')
    parser.add_argument('--workdir', default='/tmp/nvidia-equivalence', help='where pickles and .npz files go')
    parser.add_argument('--tol', type=float, default=1e-4)
    parser.add_argument('--stage', choices=['all', 'nvidia', 'ours'], default='all')
    args = parser.parse_args()
    if not os.path.isfile(os.path.join(args.nvidia_repo, 'torch_utils', 'persistence.py')):
        sys.exit(f'error: {args.nvidia_repo} is not a stylegan2-ada-pytorch checkout (no torch_utils/persistence.py).')
    os.makedirs(args.workdir, exist_ok=True)
    if args.stage == 'nvidia':
        return stage_nvidia(args.nvidia_repo, args.workdir)
    if args.stage == 'all':  # NVIDIA's code runs in its own process so the two code bases never mix
        env = dict(os.environ, PYTHONPATH='')
        cmd = [sys.executable, os.path.abspath(__file__), '--stage=nvidia', f'--nvidia-repo={args.nvidia_repo}', f'--workdir={args.workdir}']
        subprocess.run(cmd, check=True, env=env, cwd=args.workdir)
    sys.exit(0 if stage_ours(args.workdir, args.tol) else 1)


if __name__ == '__main__':
    main()
