"""One cell of the study: draw each member's data set, train the members as one ensemble, score each.

A results line holds every setting (settings.SETTING_KEYS) and, per member: validation and held-out nELBO,
held-out Pearson and Spearman MCC, the MCC of reading x (the best n of the m observed dims, matched to
the true latents: a generous reference), the Jacobian support F1, the scaled L1 of the fit, and the
premise audit of its data set (premise.py).
"""
import torch

from synthetic_study.data import make_synthetic_dataset, parse_support
from synthetic_study.fit import heldout_terms, posterior_means, spread, train_ensemble
from synthetic_study.mcc import mean_corr_coef
from synthetic_study.premise import audit_dataset
from synthetic_study.settings import STUDY_KEYS
from synthetic_study.support_recovery import support_f1, thresholded_support

TRAIN_KEYS = ('batch', 'l1_batch', 'lr', 'max_steps', 'eval_every', 'patience', 'min_delta', 'beta', 'tau', 'eta', 'alpha_max', 'hidden')

#----------------------------------------------------------------------------

def draw(benchmark_kwargs: dict, study: dict, K: int, seed: int):
    kwargs = dict(benchmark_kwargs)
    if kwargs.get('support') is not None:
        kwargs['support'] = parse_support(kwargs['support'])
    return make_synthetic_dataset(n=study['n'], num_domains=K, samples=study['samples'], mean_mode=study['mean_mode'],
                                  seed=seed, **kwargs)


def run_members(benchmark: str, arm: str, K: int, members: list, study: dict, data_kwargs: dict, alpha_rule: str,
                progress=None) -> list:
    """members: (seed, alpha) pairs, alpha None for rule (b). Returns one results line per member."""
    cache = {}  # one data set per seed, shared by the members (alphas) of that seed
    for seed, _ in members:
        if seed not in cache:
            cache[seed] = draw(data_kwargs, study, K, seed)
    data = [cache[s] for s, _ in members]
    seeds = [s for s, _ in members]
    net, stats = train_ensemble(data, seeds, arm, [a for _, a in members], K, {k: study[k] for k in TRAIN_KEYS}, progress)
    x_test = torch.stack([d.x_test for d in data])
    zhat = posterior_means(net, x_test)
    test = heldout_terms(net, x_test, torch.stack([d.u_test for d in data]), seeds, study['beta'])
    train = heldout_terms(net, torch.stack([d.x_train for d in data]), torch.stack([d.u_train for d in data]), seeds, study['beta'])
    sub = spread(zhat.shape[1])
    jac = net.decoder_jacobian(zhat[:, sub]).detach()
    audits = {s: audit_dataset(d, s) for s, d in zip(seeds, data)}
    rows = []
    for i, ((seed, alpha), d, st) in enumerate(zip(members, data, stats)):
        mcc, matching = mean_corr_coef(d.z_test, zhat[i], return_matching=True)
        est = thresholded_support(jac[i].numpy(), zhat[i, sub].std(0).numpy(), study['threshold'])
        mcc_x = mean_corr_coef(d.z_test, d.x_test)
        rows.append(dict(
            benchmark=benchmark, model=arm, K=K, seed=seed, **{k: study[k] for k in STUDY_KEYS}, **data_kwargs,
            alpha_rule=alpha_rule, alpha=alpha, **st, support_density=round(d.density, 4),
            heldout_nelbo=round(float(test.nelbo[i]), 4), l1_fit=round(float(train.l1[i]), 4), **audits[seed],
            mcc_heldout=round(mcc, 4), mcc_heldout_spearman=round(mean_corr_coef(d.z_test, zhat[i], method='spearman'), 4),
            mcc_observed=round(mcc_x, 4), mcc_observed_spearman=round(mean_corr_coef(d.z_test, d.x_test, method='spearman'), 4),
            gain_over_x=round(mcc - mcc_x, 4), support_f1=round(support_f1(est, d.support, matching), 4)))
    return rows

#----------------------------------------------------------------------------
