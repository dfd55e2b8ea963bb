"""CG-GAN / i-StyleGAN domain flow mapping: eps, u -> z (flow + importance mask) -> w.

Method (docs/method.md "CG-GAN", the i-StyleGAN paper and Eq. 9 of the CG paper):
  theta(u) = hypernetwork(u)                                   per-dimension flow parameters
  z_s = eps_s + (m * r) * f(eps_s; theta(u)),  m = 1[r > 0.1]  domain-specific ("style") dims
  z_c = eps_c                                                  domain-invariant ("content") dims
  x   = flow_norm(z)  (2nd-moment normalisation per group: active style dims / all other dims)
  w   = MLP(x), then w-average tracking, truncation and broadcast as in StyleGAN2-ADA.

Parameter names equal i-StyleGAN's (`importance`, `embed.*`, `flow.model.{i}.u_`, `flow.model.{i}.w_`,
`flow_fc{j}.*`, `{k}mlp_fc{j}.*`, `fc{j}.*`, buffer `w_avg`), so an i-StyleGAN mapping state dict
loads as is; `convert_istylegan_mapping` translates their constructor kwargs.
"""
import numpy as np
import torch

from torch_utils import persistence
from training.networks import FullyConnectedLayer, broadcast_and_truncate, normalize_2nd_moment

#----------------------------------------------------------------------------
# Dense sigmoid flow (Huang et al. 2018, NAF), as i-StyleGAN uses it: SELU inside, no final logit,
# no log-det. One block R^in -> R^out per latent dimension, with per-sample parameters q of size 3H+in.

_SOFTPLUS_INV_ONE = float(np.log(np.exp(1 - 1e-7) - 1)) # c0: softplus(0 + c0) ~= 1.

@persistence.persistent_class
class DenseSigmoidFlowBlock(torch.nn.Module):
    def __init__(self, hidden_dim, in_dim=1, out_dim=1):
        super().__init__()
        self.hidden_dim = hidden_dim
        self.in_dim = in_dim
        self.out_dim = out_dim
        self.num_params = 3 * hidden_dim + in_dim
        self.u_ = torch.nn.Parameter(torch.empty([hidden_dim, in_dim]).uniform_(-1e-3, 1e-3)) # u_base
        self.w_ = torch.nn.Parameter(torch.empty([out_dim, hidden_dim]).uniform_(-1e-3, 1e-3)) # w_base

    def forward(self, x, q):
        # x: [B, D, in], q: [B, D, 3H + in] -> [B, D, out].
        H = self.hidden_dim
        a = torch.nn.functional.softplus(q[..., 0:H] + _SOFTPLUS_INV_ONE)             # a = softplus(q_a + c0)
        b = q[..., H:2*H]                                                              # b = q_b
        W = torch.softmax(self.w_.to(q.dtype) + q[..., None, 2*H:3*H], dim=-1)        # W = row-softmax(w_base + q_w)
        U = torch.softmax(self.u_.to(q.dtype) + q[..., None, 3*H:3*H+self.in_dim], dim=-1) # U = row-softmax(u_base + q_u)
        h = a * (U @ x.unsqueeze(-1)).squeeze(-1) + b                                  # a * (U x) + b
        return (W @ torch.selu(h).unsqueeze(-1)).squeeze(-1)                           # y = W selu(.)

#----------------------------------------------------------------------------

@persistence.persistent_class
class DenseSigmoidFlow(torch.nn.Module):
    """Stack of `num_blocks` blocks 1 -> H -> ... -> H -> 1, applied element-wise: f(eps_i; theta_i)."""
    def __init__(self, num_blocks=2, hidden_dim=10):
        super().__init__()
        if num_blocks < 1:
            raise ValueError(f'flow_blocks must be >= 1, got {num_blocks}')
        dims = [1] + [hidden_dim] * (num_blocks - 1) + [1]
        self.model = torch.nn.Sequential(*[DenseSigmoidFlowBlock(hidden_dim, in_dim=i, out_dim=o) for i, o in zip(dims[:-1], dims[1:])])
        self.num_params = sum(block.num_params for block in self.model)

    def forward(self, eps, theta):
        # eps: [B, D], theta: [B, D, P] -> [B, D].
        x = eps.unsqueeze(-1)
        start = 0
        for block in self.model:
            x = block(x, theta[..., start:start+block.num_params])
            start += block.num_params
        return x.squeeze(-1)

#----------------------------------------------------------------------------

@persistence.persistent_class
class DomainFlowMapping(torch.nn.Module):
    """Drop-in replacement for StyleGAN2's MappingNetwork (same call signature, same w_avg buffer).

    cond_mode: 'flow' (the paper: domain-conditioned dense sigmoid flow on the first i_dim dims),
    'mlp' (i-StyleGAN ablation: one MLP per domain on eps_s), 'concat' (plain StyleGAN2-ADA label
    concatenation; numerically NVIDIA's MappingNetwork). c is the one-hot domain label.
    """
    def __init__(self,
        z_dim,                      # Input latent dimensionality.
        c_dim,                      # Number of domains K (one-hot label length), 0 = unconditional.
        w_dim,                      # Intermediate latent (W) dimensionality.
        num_ws,                     # Number of ws to broadcast to, None = do not broadcast.
        num_layers      = 8,        # Depth of the z -> w MLP (and of the flow hypernetwork).
        embed_features  = None,     # Label embedding width, None = w_dim.
        layer_features  = None,     # Hidden width, None = w_dim.
        activation      = 'lrelu',  # Activation of the hidden layers.
        lr_multiplier   = 0.01,     # Learning-rate multiplier of the MLPs.
        w_avg_beta      = 0.995,    # Decay of the tracked W average, None = do not track.
        cond_mode       = 'flow',   # 'flow' | 'mlp' | 'concat'.
        i_dim           = 256,      # Candidate domain-specific dims d_s (the first i_dim of z).
        flow_blocks     = 2,        # Dense sigmoid flow blocks.
        flow_dim        = 10,       # Hidden width H of each flow block.
        flow_norm       = True,     # Normalise active style dims and the other dims separately.
        mask_threshold  = 0.1,      # A dim is domain-specific iff its importance r > mask_threshold.
    ):
        super().__init__()
        if cond_mode not in ('flow', 'mlp', 'concat'):
            raise ValueError(f'cond_mode must be "flow", "mlp" or "concat", got {cond_mode!r}')
        if cond_mode != 'concat' and c_dim > 0 and not 0 < i_dim <= z_dim:
            raise ValueError(f'i_dim must be in 1..z_dim={z_dim} for cond_mode={cond_mode!r}, got {i_dim}')
        self.z_dim = z_dim
        self.c_dim = c_dim
        self.w_dim = w_dim
        self.num_ws = num_ws
        self.num_layers = num_layers
        self.w_avg_beta = w_avg_beta
        self.cond_mode = cond_mode
        self.i_dim = i_dim
        self.flow_norm = bool(flow_norm)
        self.mask_threshold = float(mask_threshold)
        self.has_importance = c_dim > 0 and cond_mode in ('flow', 'mlp')
        embed_features = w_dim if embed_features is None else embed_features
        embed_features = 0 if c_dim == 0 else embed_features
        layer_features = w_dim if layer_features is None else layer_features
        fc_kwargs = dict(activation=activation, lr_multiplier=lr_multiplier)

        # Label embedding (concat conditioning, or the input of the flow hypernetwork).
        if c_dim > 0 and cond_mode in ('flow', 'concat'):
            self.embed = FullyConnectedLayer(c_dim, embed_features)
        if self.has_importance:
            self.importance = torch.nn.Parameter(torch.ones([1, i_dim]))                # r, init 1
        if c_dim > 0 and cond_mode == 'flow':
            self.flow = DenseSigmoidFlow(num_blocks=flow_blocks, hidden_dim=flow_dim)
            features = [embed_features] + [layer_features] * num_layers
            for idx in range(num_layers):
                setattr(self, f'flow_fc{idx}', FullyConnectedLayer(features[idx], features[idx + 1], **fc_kwargs))
            setattr(self, f'flow_fc{num_layers}', FullyConnectedLayer(layer_features, self.flow.num_params * i_dim, lr_multiplier=lr_multiplier))
        if c_dim > 0 and cond_mode == 'mlp':
            features = [i_dim] + [layer_features] * num_layers
            for k in range(c_dim):
                for idx in range(num_layers):
                    setattr(self, f'{k}mlp_fc{idx}', FullyConnectedLayer(features[idx], features[idx + 1], **fc_kwargs))
                setattr(self, f'{k}mlp_fc{num_layers}', FullyConnectedLayer(layer_features, i_dim, lr_multiplier=lr_multiplier))

        # z -> w MLP.
        features = [z_dim + (embed_features if cond_mode == 'concat' else 0)] + [layer_features] * (num_layers - 1) + [w_dim]
        for idx in range(num_layers):
            setattr(self, f'fc{idx}', FullyConnectedLayer(features[idx], features[idx + 1], **fc_kwargs))
        if num_ws is not None and w_avg_beta is not None:
            self.register_buffer('w_avg', torch.zeros([w_dim]))

    # Mask ----------------------------------------------------------------

    def active_mask(self):
        """Bool [i_dim]: which candidate dims are domain-specific (r > threshold). Empty without r."""
        if not self.has_importance:
            return torch.zeros([0], dtype=torch.bool)
        return (self.importance.detach()[0] > self.mask_threshold).cpu()

    def num_active(self):
        return int(self.active_mask().sum())

    def active_dims(self):
        """Indices of the active style dims, most important (largest r) first."""
        if not self.has_importance:
            return []
        r = self.importance.detach()[0].cpu()
        return [int(i) for i in torch.argsort(-r, stable=True) if r[i] > self.mask_threshold]

    def style_mask(self, device=None):
        """Bool [z_dim] over the latent: True on active style dims (the columns L_s may perturb)."""
        mask = torch.zeros([self.z_dim], dtype=torch.bool, device=device)
        if self.has_importance:
            mask[:self.i_dim] = self.importance.detach()[0] > self.mask_threshold
        return mask

    def masked_importance(self):
        """m * r with m = 1[r > threshold] held constant: pruned dims get no gradient."""
        r = self.importance
        return (r > self.mask_threshold).detach().to(r.dtype) * r

    # Forward -------------------------------------------------------------

    def domain_params(self, c):
        """Hypernetwork theta(u): [B, i_dim, P] flow parameters of each style dim. Computed once per
        distinct label row (a batch holds at most K domains), then gathered."""
        c = c.to(torch.float32)
        uniq, inverse = torch.unique(c, dim=0, return_inverse=True)
        if len(uniq) < len(c):
            return self.domain_params(uniq)[inverse]
        y = normalize_2nd_moment(self.embed(c))
        for idx in range(self.num_layers + 1):
            y = getattr(self, f'flow_fc{idx}')(y)
        return y.reshape(y.shape[0], self.i_dim, -1)

    def latent(self, z, c):
        """eps, u -> x, the normalised post-flow latent that enters the z -> w MLP ([B, z_dim];
        in 'concat' mode [B, z_dim + embed_features], the label embedding appended)."""
        z = z.to(torch.float32)
        if self.c_dim == 0:
            return normalize_2nd_moment(z)
        if c is None or c.ndim != 2 or c.shape[1] != self.c_dim:
            raise ValueError(f'expected one-hot domain labels c of shape [B, {self.c_dim}], got {None if c is None else list(c.shape)}')
        if self.cond_mode == 'concat':
            y = normalize_2nd_moment(self.embed(c.to(torch.float32)))
            return torch.cat([normalize_2nd_moment(z), y], dim=1)
        eps_s, eps_c = z[:, :self.i_dim], z[:, self.i_dim:]
        if self.cond_mode == 'flow':
            f = self.flow(eps_s, self.domain_params(c))                                # f(eps_s; theta(u))
        else:
            f = self._domain_mlp(eps_s, c)
        z_s = eps_s + self.masked_importance() * f                                     # z_s = eps_s + (m*r) * f
        x = torch.cat([z_s, eps_c], dim=1)
        if self.flow_norm:
            x = _normalize_groups(x, self.style_mask(device=x.device))
        return x

    def _domain_mlp(self, eps_s, c):
        outs = []
        for k in range(self.c_dim):
            h = eps_s
            for idx in range(self.num_layers + 1):
                h = getattr(self, f'{k}mlp_fc{idx}')(h)
            outs.append(h)
        return torch.einsum('bk,bkd->bd', c.to(eps_s.dtype), torch.stack(outs, dim=1)) # pick the MLP of the domain

    def mlp(self, x):
        """The z -> w MLP: x [B, in] -> w [B, w_dim]."""
        for idx in range(self.num_layers):
            x = getattr(self, f'fc{idx}')(x)
        return x

    def forward(self, z, c, truncation_psi=1, truncation_cutoff=None, skip_w_avg_update=False, update_emas=None):
        x = self.mlp(self.latent(z, c))
        # w_avg update, as training.networks.MappingNetwork: stylegan2-ada rule (while training unless
        # skip_w_avg_update) when update_emas is None, else exactly when update_emas is True (stylegan3).
        update = (self.training and not skip_w_avg_update) if update_emas is None else bool(update_emas)
        if update and self.w_avg_beta is not None and hasattr(self, 'w_avg'):
            self.w_avg.copy_(x.detach().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))
        return broadcast_and_truncate(x, self.num_ws, getattr(self, 'w_avg', None), truncation_psi, truncation_cutoff)

    def extra_repr(self):
        return f'cond_mode={self.cond_mode}, z_dim={self.z_dim}, c_dim={self.c_dim}, i_dim={self.i_dim}, w_dim={self.w_dim}, num_ws={self.num_ws}'

#----------------------------------------------------------------------------

def _normalize_groups(x, group, eps=1e-8):
    """normalize_2nd_moment separately over the dims where `group` is True and where it is False."""
    g = group.to(x.dtype)
    sq = x.square()
    n_in = g.sum().clamp(min=1)
    n_out = (1 - g).sum().clamp(min=1)
    ms_in = (sq * g).sum(dim=1, keepdim=True) / n_in
    ms_out = (sq * (1 - g)).sum(dim=1, keepdim=True) / n_out
    return x * torch.where(group, (ms_in + eps).rsqrt(), (ms_out + eps).rsqrt())

#----------------------------------------------------------------------------

# i-StyleGAN's MappingNetwork defaults (their constructor), used when a snapshot omits a kwarg.
_ISTYLEGAN_DEFAULTS = dict(num_layers=8, embed_features=None, layer_features=None, activation='lrelu', lr_multiplier=0.01,
    w_avg_beta=0.995, cond_mode='concat', i_dim=4, flow_blocks=2, flow_dim=10, flow_norm=1, use_label=0)

def convert_istylegan_mapping(init_kwargs, state_dict):
    """Translate an i-StyleGAN `training.networks.MappingNetwork` (its constructor kwargs and state
    dict, e.g. read from their dill snapshot as plain data) into a DomainFlowMapping spec.

    Returns (class_name, init_kwargs, state_dict); `construct_class_by_name(class_name=..., **init_kwargs)
    .load_state_dict(state_dict)` gives the same ws as their G_ema.mapping for the same eps and domain.
    Raises ValueError for what we do not support (use_label=1) or for kwargs that contradict the tensors.
    """
    kwargs = dict(_ISTYLEGAN_DEFAULTS)
    kwargs.update(dict(init_kwargs))
    for name in ('z_dim', 'c_dim', 'w_dim'):
        if name not in kwargs:
            raise ValueError(f'i-StyleGAN mapping kwargs lack "{name}"; pass the mapping\'s full init kwargs')
    kwargs.setdefault('num_ws', None)
    if kwargs.pop('use_label'):
        raise ValueError('this i-StyleGAN mapping was trained with use_label=1 (an extra class-label input), which DomainFlowMapping does not support')
    sd = {k: torch.as_tensor(v) for k, v in state_dict.items()}
    if sd and all(k.startswith('mapping.') for k in sd):
        sd = {k[len('mapping.'):]: v for k, v in sd.items()}
    if any(k.startswith('label_embed.') for k in sd):
        raise ValueError('this i-StyleGAN mapping has label_embed.* weights (use_label=1), which DomainFlowMapping does not support')

    # The tensors decide what the kwargs must say; a contradiction means a mixed-up file.
    cond_mode = kwargs['cond_mode']
    if cond_mode not in ('flow', 'mlp', 'concat'):
        raise ValueError(f'unknown i-StyleGAN cond_mode {cond_mode!r}; expected flow, mlp or concat')
    has_flow = any(k.startswith('flow.model.') for k in sd)
    has_mlp = any(k.startswith('0mlp_fc') for k in sd)
    inferred = 'flow' if has_flow else 'mlp' if has_mlp else 'concat'
    if int(kwargs['c_dim']) > 0 and inferred != cond_mode:
        raise ValueError(f'i-StyleGAN kwargs say cond_mode={cond_mode!r} but the weights are those of cond_mode={inferred!r}')
    if 'importance' in sd:
        kwargs['i_dim'] = int(sd['importance'].shape[-1])
    if has_flow:
        blocks = sorted({int(k.split('.')[2]) for k in sd if k.startswith('flow.model.')})
        kwargs['flow_blocks'] = len(blocks)
        kwargs['flow_dim'] = int(sd['flow.model.0.u_'].shape[0])
    kwargs['flow_norm'] = bool(kwargs['flow_norm'])
    kwargs['mask_threshold'] = 0.1 # hard-coded in i-StyleGAN
    if 'importance' in sd:
        sd['importance'] = sd['importance'].reshape(1, -1)
    return 'training.domain_flow.DomainFlowMapping', kwargs, sd

#----------------------------------------------------------------------------
