"""Training presets with StyleGAN2-ADA's names and meanings, plus `tiny` for CPU runs.

Fields: ref_gpus (GPUs the batch is split over), kimg (length), mb (global batch), mbstd (minibatch-std
group size), fmaps (channel_base / 32768), cmax (channel_max), lrate (Adam lr), gamma (R1 weight),
ema (EMA half-life in kimg), ramp (EMA ramp-up ratio or None), map (mapping depth), zdim (= w_dim),
pl (path-length weight), mixing (style-mixing probability), fp16 (number of fp16 resolutions), d_arch,
sparse_interval (CG-GAN Jacobian term every N steps). `tiny` drops path-length regularisation and applies
the Jacobian term every 4th step (weight x 4) to stay near 6-10 s/kimg on two CPU cores.
"""
import copy

from dnnlib import EasyDict

#----------------------------------------------------------------------------

_COMMON = dict(cmax=512, zdim=512, pl=2, mixing=0.9, fp16=4, d_arch='resnet', sparse_interval=1)

PRESETS = dict(
    auto=      dict(ref_gpus=-1, kimg=25000,  mb=-1, mbstd=-1, fmaps=-1,  lrate=-1,     gamma=-1,   ema=-1,  ramp=0.05, map=2),
    stylegan2= dict(ref_gpus=8,  kimg=25000,  mb=32, mbstd=4,  fmaps=1,   lrate=0.002,  gamma=10,   ema=10,  ramp=None, map=8),
    paper256=  dict(ref_gpus=8,  kimg=25000,  mb=64, mbstd=8,  fmaps=0.5, lrate=0.0025, gamma=1,    ema=20,  ramp=None, map=8),
    paper512=  dict(ref_gpus=8,  kimg=25000,  mb=64, mbstd=8,  fmaps=1,   lrate=0.0025, gamma=0.5,  ema=20,  ramp=None, map=8),
    paper1024= dict(ref_gpus=8,  kimg=25000,  mb=32, mbstd=4,  fmaps=2,   lrate=0.002,  gamma=2,    ema=10,  ramp=None, map=8),
    cifar=     dict(ref_gpus=2,  kimg=100000, mb=64, mbstd=32, fmaps=1,   lrate=0.0025, gamma=0.01, ema=500, ramp=0.05, map=2, pl=0, mixing=0, d_arch='orig'),
    tiny=      dict(ref_gpus=1,  kimg=60,     mb=32, mbstd=4,  fmaps=1024 / 32768, lrate=0.0025, gamma=0.05, ema=2, ramp=0.05, map=2,
                    cmax=64, zdim=64, fp16=0, pl=0, sparse_interval=4),
)

MODELS = ('stylegan2-ada', 'istylegan', 'cg-gan')

LAMBDA_SPARSE = 0.1       # weight of the mask loss L_m = mean|r| (paper and i-StyleGAN README)
LAMBDA_IMGSPARSE = 1.0    # weight of L_s, the area-normalised L1 norm of a Jacobian column (docs/cg-gan.md)

#----------------------------------------------------------------------------

def resolve(cfg: str, resolution: int, gpus: int) -> EasyDict:
    """The preset `cfg` for a data set of `resolution` trained on `gpus` devices (auto = NVIDIA's formula)."""
    if cfg not in PRESETS:
        raise ValueError(f'Unknown --cfg "{cfg}"; choose one of {", ".join(sorted(PRESETS))}.')
    spec = EasyDict(copy.deepcopy(_COMMON))
    spec.update(copy.deepcopy(PRESETS[cfg]))
    gpus = max(gpus, 1)
    if cfg == 'auto':
        res = resolution
        spec.ref_gpus = gpus
        spec.mb = max(min(gpus * min(4096 // res, 32), 64), gpus)  # keep GPU memory in check
        spec.mbstd = min(spec.mb // gpus, 4)                       # fixed group size behaves predictably
        spec.fmaps = 1 if res >= 512 else 0.5
        spec.lrate = 0.002 if res >= 1024 else 0.0025
        spec.gamma = 0.0002 * (res ** 2) / spec.mb                 # NVIDIA's heuristic
        spec.ema = spec.mb * 10 / 32
    return spec

#----------------------------------------------------------------------------

def network_kwargs(spec, cbase=None, cmax=None, map_depth=None, fp16=True):
    """G_kwargs, D_kwargs (dotted class names) for a resolved preset; --cbase/--cmax/--map-depth override it."""
    cbase = cbase if cbase is not None else int(spec.fmaps * 32768)
    cmax = cmax if cmax is not None else spec.cmax
    num_fp16 = spec.fp16 if fp16 else 0
    conv_clamp = 256 if num_fp16 > 0 else None
    G_kwargs = EasyDict(class_name='training.networks.Generator', z_dim=spec.zdim, w_dim=spec.zdim,
                        mapping_kwargs=EasyDict(num_layers=map_depth if map_depth is not None else spec.map),
                        synthesis_kwargs=EasyDict(channel_base=cbase, channel_max=cmax, num_fp16_res=num_fp16, conv_clamp=conv_clamp))
    D_kwargs = EasyDict(class_name='training.networks.Discriminator', architecture=spec.d_arch, channel_base=cbase, channel_max=cmax,
                        num_fp16_res=num_fp16, conv_clamp=conv_clamp, block_kwargs=EasyDict(), mapping_kwargs=EasyDict(),
                        epilogue_kwargs=EasyDict(mbstd_group_size=spec.mbstd))
    return G_kwargs, D_kwargs


def flow_mapping_kwargs(spec, cfg, cond_mode='flow', i_dim=None, flow_blocks=2, flow_dim=10, flow_norm=True):
    """mapping_kwargs additions for i-StyleGAN / CG-GAN (tiny: i_dim defaults to z_dim / 2)."""
    i_dim = i_dim if i_dim is not None else (spec.zdim // 2 if cfg == 'tiny' else 256)
    return EasyDict(class_name='training.domain_flow.DomainFlowMapping', cond_mode=cond_mode, i_dim=i_dim,
                    flow_blocks=flow_blocks, flow_dim=flow_dim, flow_norm=bool(flow_norm))

#----------------------------------------------------------------------------
