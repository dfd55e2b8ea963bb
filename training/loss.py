"""StyleGAN2 loss as phases (Gmain, Greg, Gboth, Dmain, Dreg, Dboth), with the CG-GAN terms in Gmain.

Karras et al. 2020 (StyleGAN2, "Analyzing and improving the image quality of StyleGAN"):
non-saturating logistic loss, lazy R1 on reals, lazy path-length regularisation, style mixing.
CG-GAN (ICLR 2025) adds to the generator loss lambda_sparse * mean|r| (mask loss L_m) and
lambda_imgsparse * L_s (sparse-mixing Jacobian penalty), see docs/method.md.

Differences from NVIDIA, on purpose: the per-round gain is divided by the number of accumulation rounds
(so `--batch-gpu` changes memory, not the gradient), and the path-length mean is updated once per step
from the mean over all rounds and ranks (`finish_phase`), so 1 rank x 2 rounds == 2 ranks x 1 round.
"""
import contextlib
import inspect

import numpy as np
import torch
import torch.nn.functional as F

from torch_utils import distributed, training_stats

#----------------------------------------------------------------------------

def _no_weight_gradients():
    """NVIDIA's conv2d_gradfix.no_weight_gradients() when our ops provide it; otherwise a no-op
    (autograd.grad with inputs=[ws] or [img] already skips weight gradients of standard convolutions)."""
    try:
        from torch_utils.ops import conv2d_gradfix
        return conv2d_gradfix.no_weight_gradients()
    except (ImportError, AttributeError):
        return contextlib.nullcontext()


def _no_ema_update_kwargs(mapping):
    """Keywords that stop / force the mapping's w_avg update (NVIDIA spelled it two ways over time)."""
    params = inspect.signature(mapping.forward).parameters
    no_update, update = dict(), dict()
    if 'update_emas' in params:
        no_update['update_emas'], update['update_emas'] = False, True
    if 'skip_w_avg_update' in params:
        no_update['skip_w_avg_update'], update['skip_w_avg_update'] = True, False
    return no_update, update

#----------------------------------------------------------------------------

class StyleGAN2Loss:
    PHASES = ('Gmain', 'Greg', 'Gboth', 'Dmain', 'Dreg', 'Dboth')

    def __init__(self, device, G, D, augment_pipe=None, r1_gamma=10, style_mixing_prob=0.9, pl_weight=2,
                 pl_batch_shrink=2, pl_decay=0.01, lambda_sparse=0, lambda_imgsparse=0, imgsparse_kwargs={},
                 sparse_interval=1):
        self.device = torch.device(device)
        self.G = G
        self.D = D
        self.augment_pipe = augment_pipe
        self.r1_gamma = r1_gamma
        self.style_mixing_prob = style_mixing_prob
        self.pl_weight = pl_weight
        self.pl_batch_shrink = pl_batch_shrink
        self.pl_decay = pl_decay
        self.lambda_sparse = lambda_sparse
        self.lambda_imgsparse = lambda_imgsparse
        self.imgsparse_kwargs = dict(imgsparse_kwargs)
        self.sparse_interval = max(int(sparse_interval), 1)
        self.pl_mean = torch.zeros([], device=self.device)                 # running mean of path lengths (state)
        self._pl_sum = torch.zeros([2], dtype=torch.float64, device=self.device)  # [sum, count] within a step
        self._map_kwargs_no_update, self._map_kwargs_update = _no_ema_update_kwargs(G.mapping)
        self.nonfinite = dict()         # phase -> bool tensor: some loss of that phase was NaN/Inf
        self.real_sign_hook = None      # callable(sign tensor) fed with sign(D(real)) for ADA
        self.fast = None                # compiled mapping / synthesis / D for single-backward passes (training.fast_path.apply_to_loss)

    #------------------------------------------------------------------------

    def state_dict(self):
        return dict(pl_mean=self.pl_mean.detach().cpu().clone())

    def load_state_dict(self, state):
        self.pl_mean.copy_(torch.as_tensor(state['pl_mean']).to(self.device))

    #------------------------------------------------------------------------

    def run_G(self, z, c, update_emas=False, fast=False):
        """fast: may use the compiled forwards (never for passes that need double backward)."""
        mapping, synthesis = (self.fast.mapping, self.fast.synthesis) if fast and self.fast else (self.G.mapping, self.G.synthesis)
        map_kwargs = self._map_kwargs_update if update_emas else self._map_kwargs_no_update
        ws = mapping(z, c, **map_kwargs)
        if self.style_mixing_prob > 0:  # StyleGAN2 style mixing: a second latent (same domain label) from a random layer on
            with torch.autograd.profiler.record_function('style_mixing'):
                cutoff = torch.empty([], dtype=torch.int64, device=ws.device).random_(1, ws.shape[1])
                cutoff = torch.where(torch.rand([], device=ws.device) < self.style_mixing_prob, cutoff, torch.full_like(cutoff, ws.shape[1]))
                ws2 = mapping(torch.randn_like(z), c, **self._map_kwargs_no_update)
                layer = torch.arange(ws.shape[1], device=ws.device)[None, :, None]
                ws = torch.where(layer < cutoff, ws, ws2)
        img = synthesis(ws)
        return img, ws

    def run_D(self, img, c, fast=False):
        if self.augment_pipe is not None:
            img = self.augment_pipe(img)
        return (self.fast.D if fast and self.fast else self.D)(img, c)

    def _check(self, phase, loss):
        bad = ~torch.isfinite(loss.detach()).all()
        self.nonfinite[phase] = bad if phase not in self.nonfinite else (self.nonfinite[phase] | bad)

    #------------------------------------------------------------------------

    def accumulate_gradients(self, phase, real_img, real_c, gen_z, gen_c, gain, cur_step=0):
        """Backpropagate one accumulation round of `phase`; gradients land in .grad of G or D."""
        assert phase in self.PHASES
        do_Gmain = phase in ('Gmain', 'Gboth')
        do_Dmain = phase in ('Dmain', 'Dboth')
        do_Gpl = phase in ('Greg', 'Gboth') and self.pl_weight != 0
        do_Dr1 = phase in ('Dreg', 'Dboth') and self.r1_gamma != 0

        # Gmain: maximise D(G(z)), non-saturating logistic loss softplus(-D(G(z))).
        if do_Gmain:
            with torch.autograd.profiler.record_function('Gmain_forward'):
                gen_img, _gen_ws = self.run_G(gen_z, gen_c, fast=True)
                gen_logits = self.run_D(gen_img, gen_c, fast=True)
                training_stats.report('Loss/scores/fake', gen_logits)
                training_stats.report('Loss/signs/fake', gen_logits.sign())
                loss_Gmain = F.softplus(-gen_logits).mean()
                training_stats.report('Loss/G/loss', loss_Gmain)
                loss_G = loss_Gmain
                if self.lambda_sparse != 0:  # CG-GAN mask loss L_m = lambda_sparse * mean_i |r_i|
                    from training.cg_regularizers import importance_l1
                    loss_sparse = importance_l1(self.G.mapping)
                    training_stats.report('Loss/G/sparse', loss_sparse)
                    loss_G = loss_G + self.lambda_sparse * loss_sparse
                if self.lambda_imgsparse != 0 and cur_step % self.sparse_interval == 0:  # CG-GAN L_s (Eq. 9), lazy: weight x interval
                    from training.cg_regularizers import jacobian_sparsity_penalty
                    loss_imgsparse = jacobian_sparsity_penalty(self.G, gen_z, gen_c, **self.imgsparse_kwargs)
                    training_stats.report('Loss/G/imgsparse', loss_imgsparse)
                    loss_G = loss_G + self.lambda_imgsparse * self.sparse_interval * loss_imgsparse
                self._check('Gmain', loss_G)
            with torch.autograd.profiler.record_function('Gmain_backward'):
                loss_G.mul(gain).backward()

        # Gpl: path-length regularisation, E[(|J_w^T y| - a)^2] with y ~ N(0, I)/sqrt(HW) (StyleGAN2 Eq. 4).
        if do_Gpl:
            with torch.autograd.profiler.record_function('Gpl_forward'):
                batch_size = max(gen_z.shape[0] // self.pl_batch_shrink, 1)
                gen_img, gen_ws = self.run_G(gen_z[:batch_size], gen_c[:batch_size])
                pl_noise = torch.randn_like(gen_img) / np.sqrt(gen_img.shape[2] * gen_img.shape[3])
                with _no_weight_gradients():
                    pl_grads = torch.autograd.grad(outputs=[(gen_img * pl_noise).sum()], inputs=[gen_ws], create_graph=True, only_inputs=True)[0]
                pl_lengths = pl_grads.square().sum(2).mean(1).sqrt()
                self._pl_sum += torch.stack([pl_lengths.detach().sum().double(), torch.tensor(float(batch_size), dtype=torch.float64, device=pl_lengths.device)])
                pl_penalty = (pl_lengths - self.pl_mean).square()
                training_stats.report('Loss/pl_penalty', pl_penalty)
                loss_Gpl = (pl_penalty * self.pl_weight).mean()
                training_stats.report('Loss/G/reg', loss_Gpl)
                self._check('Greg', loss_Gpl)
            with torch.autograd.profiler.record_function('Gpl_backward'):
                (gen_img[:, 0, 0, 0] * 0).sum().add(loss_Gpl).mul(gain).backward()

        # Dmain: minimise D(G(z)), softplus(D(G(z))).
        if do_Dmain:
            with torch.autograd.profiler.record_function('Dgen_forward'):
                gen_img, _gen_ws = self.run_G(gen_z, gen_c, update_emas=True, fast=True)
                gen_logits = self.run_D(gen_img, gen_c, fast=True)
                training_stats.report('Loss/scores/fake', gen_logits)
                training_stats.report('Loss/signs/fake', gen_logits.sign())
                loss_Dgen = F.softplus(gen_logits).mean()
                self._check('Dmain', loss_Dgen)
            with torch.autograd.profiler.record_function('Dgen_backward'):
                loss_Dgen.mul(gain).backward()

        # Dmain: maximise D(x) with softplus(-D(x)); Dr1: R1 = gamma/2 * |grad_x D(x)|^2 (Mescheder et al. 2018, Eq. 9).
        if do_Dmain or do_Dr1:
            name = 'Dreal_Dr1' if do_Dmain and do_Dr1 else 'Dreal' if do_Dmain else 'Dr1'
            with torch.autograd.profiler.record_function(name + '_forward'):
                real_img_tmp = real_img.detach().requires_grad_(do_Dr1)
                real_logits = self.run_D(real_img_tmp, real_c, fast=not do_Dr1)  # R1 needs double backward: eager
                training_stats.report('Loss/scores/real', real_logits)
                training_stats.report('Loss/signs/real', real_logits.sign())
                if self.real_sign_hook is not None:
                    self.real_sign_hook(real_logits.detach().sign())
                loss_D = (real_logits * 0).mean()
                if do_Dmain:
                    loss_Dreal = F.softplus(-real_logits).mean()
                    training_stats.report('Loss/D/loss', loss_Dgen + loss_Dreal)
                    self._check('Dmain', loss_Dreal)
                    loss_D = loss_D + loss_Dreal
                if do_Dr1:
                    with _no_weight_gradients():
                        r1_grads = torch.autograd.grad(outputs=[real_logits.sum()], inputs=[real_img_tmp], create_graph=True, only_inputs=True)[0]
                    r1_penalty = r1_grads.square().sum([1, 2, 3])
                    training_stats.report('Loss/r1_penalty', r1_penalty)
                    loss_Dr1 = (r1_penalty * (self.r1_gamma / 2)).mean()
                    training_stats.report('Loss/D/reg', loss_Dr1)
                    self._check('Dreg', loss_Dr1)
                    loss_D = loss_D + loss_Dr1
            with torch.autograd.profiler.record_function(name + '_backward'):
                loss_D.mul(gain).backward()

    #------------------------------------------------------------------------

    def finish_phase(self, phase):
        """End of a step's phase (all rounds done, on every rank): update the path-length mean
        a <- lerp(a, mean |J_w^T y|, pl_decay) with the mean over all rounds and ranks. Collective."""
        if phase in ('Greg', 'Gboth') and self.pl_weight != 0:
            total = self._pl_sum.clone()
            if distributed.get_world_size() > 1:
                torch.distributed.all_reduce(total)
            mean = (total[0] / total[1].clamp(min=1)).to(self.pl_mean.dtype)
            self.pl_mean.copy_(self.pl_mean.lerp(mean, self.pl_decay))
            self._pl_sum.zero_()

    def pop_nonfinite(self):
        """Names of the phases with a NaN/Inf loss since the last call (one host sync)."""
        bad = [phase for phase, flag in self.nonfinite.items() if bool(flag)]
        self.nonfinite = dict()
        return bad

#----------------------------------------------------------------------------
