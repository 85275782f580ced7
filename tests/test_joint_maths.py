"""The joint baseline's diffusion maths against independent re-statements: DDPM ancestral sampling (FIXED_LARGE
reverse variance, clipped x0), the joint training loss (uniform timesteps, independent noise per modality, q_sample),
and the super-resolution model's hybrid loss (guided-diffusion's learned-range variance, KL in bits, the discretised
decoder likelihood at t=0, the mean's gradient stopped in the VB term).
Each re-statement below is written from the formulas of DDPM (Ho et al. 2020) and improved DDPM / guided-diffusion
(`gaussian_diffusion.py`, `losses.py`) in float64 numpy; it calls nothing in `savgbench` but the function under test.
"""
import math
import numpy as np
import pytest
import torch
from savgbench.baselines.diffusion import GaussianDiffusion, ddpm_sample, joint_training_losses
from savgbench.baselines.superres import sr_training_losses, discretized_gaussian_log_likelihood

torch.set_num_threads(1)


def _schedule(betas):
    "alphas_cumprod and its shifted copy, from the betas."
    b = np.asarray(betas, np.float64)
    ac = np.cumprod(1 - b)
    return b, ac, np.append(1.0, ac[:-1])


# --- DDPM ancestral sampling ----------------------------------------------------------------------------------------

def test_ddpm_reverse_variance_is_fixed_large():
    """Two steps, a denoiser that predicts zero noise, no clipping: the sample is linear in x_T and the one noise draw
    of step 1, so its mean and variance follow from the posterior mean coefficients and the reverse variance beta_1
    (FIXED_LARGE; the posterior variance would give about a fifth of it here). Modalities get independent noise."""
    betas = [0.1, 0.5]
    b, ac, acp = _schedule(betas)
    coef1 = b * np.sqrt(acp) / (1 - ac)                         # DDPM eq. 7
    coef2 = np.sqrt(1 - b) * (1 - acp) / (1 - ac)
    c, N = 0.7, 40_000
    x_T = {'video': torch.full((N, 3), c, dtype=torch.float64), 'audio': torch.full((N, 2), c, dtype=torch.float64)}
    zero = lambda x, t: {k: torch.zeros_like(v) for k, v in x.items()}
    out = ddpm_sample(GaussianDiffusion(betas=betas), zero, None, generator=torch.Generator().manual_seed(0),
                      clip_denoised=False, x_T=x_T)
    # step 1: x0 = x_T / sqrt(ac1); mean1 = coef1[1] x0 + coef2[1] x_T; x_1 = mean1 + sqrt(beta_1) z
    # step 0: x0 = x_1 / sqrt(ac0); coef1[0] = 1 and coef2[0] = 0, so the output is x_1 / sqrt(ac0) (no noise at t=0)
    mean1 = coef1[1] * c / math.sqrt(ac[1]) + coef2[1] * c
    want_mean, want_var = mean1 / math.sqrt(ac[0]), b[1] / ac[0]
    for k, v in out.items():
        v = v.numpy().ravel()
        assert abs(v.mean() - want_mean) < 4 * math.sqrt(want_var / v.size), k
        assert abs(v.var() / want_var - 1) < 0.03, (k, v.var(), want_var)
    corr = np.corrcoef(out['video'][:, 0].numpy(), out['audio'][:, 0].numpy())[0, 1]
    assert abs(corr) < 0.03, corr                                # one noise draw per modality


def test_ddpm_clips_x0_by_default():
    """An oracle denoiser for a clean sample outside [-1, 1]: with clipping (the default, the reference's
    `clip_denoised=True`) the last step returns the clipped x0, i.e. exactly +-1; without it, the sample itself."""
    d = GaussianDiffusion(100)
    target = {'video': torch.full((2, 3), 2.0, dtype=torch.float64), 'audio': torch.full((2, 4), -3.0, dtype=torch.float64)}
    ac = np.cumprod(1 - np.linspace(1e-4 * 10, 0.02 * 10, 100))
    def oracle(x, t):
        a = torch.from_numpy(ac)[t].reshape(-1, 1)
        return {k: (x[k] - a.sqrt() * target[k]) / (1 - a).sqrt() for k in x}
    g = lambda: torch.Generator().manual_seed(3)
    x_T = lambda: {k: torch.randn(v.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
                   for k, v in target.items()}
    clipped = ddpm_sample(d, oracle, None, generator=g(), x_T=x_T())
    torch.testing.assert_close(clipped['video'], torch.ones(2, 3, dtype=torch.float64))
    torch.testing.assert_close(clipped['audio'], -torch.ones(2, 4, dtype=torch.float64))
    free = ddpm_sample(d, oracle, None, generator=g(), x_T=x_T(), clip_denoised=False)
    for k in target: torch.testing.assert_close(free[k], target[k])


# --- the joint training loss ----------------------------------------------------------------------------------------

def test_joint_loss_with_given_steps_and_noise_is_the_formula():
    "q_sample per modality with the shared step, then each modality's mean squared error, summed 1:1 (spec §1.4)."
    d = GaussianDiffusion(1000)
    _, ac, _ = _schedule(np.linspace(1e-4, 0.02, 1000))
    g = torch.Generator().manual_seed(0)
    x0 = {'video': torch.randn(3, 2, 3, 4, 4, generator=g, dtype=torch.float64),
          'audio': torch.randn(3, 2, 40, generator=g, dtype=torch.float64)}
    noise = {k: torch.randn(v.shape, generator=g, dtype=torch.float64) for k, v in x0.items()}
    t = torch.tensor([0, 417, 999])
    seen = {}
    def eps_fn(x, tt):
        seen.update(x=x, t=tt)
        return {k: 0.3 * v + 0.1 for k, v in x.items()}          # depends on x_t, so a wrong x_t changes the loss
    out = joint_training_losses(d, eps_fn, x0, t=t, noise=noise)
    assert torch.equal(seen['t'], t)
    total = np.zeros(3)
    for k in x0:
        a = ac[t.numpy()].reshape(-1, *[1] * (x0[k].dim() - 1))
        xt = np.sqrt(a) * x0[k].numpy() + np.sqrt(1 - a) * noise[k].numpy()
        np.testing.assert_allclose(seen['x'][k].numpy(), xt, rtol=1e-12, atol=1e-12)
        per = ((noise[k].numpy() - (0.3 * xt + 0.1)) ** 2).reshape(3, -1).mean(1)
        np.testing.assert_allclose(out[k].numpy(), per, rtol=1e-6)
        total += per
    np.testing.assert_allclose(out['loss'].numpy(), total, rtol=1e-6)


def test_joint_loss_draws_uniform_steps_and_independent_unit_noise():
    """Without t and noise: the steps are uniform over 0..T-1 (all of them reached), the noise recovered from x_t is
    standard normal, and the two modalities' noises are independent (spec §1.4)."""
    betas, N = [0.05, 0.1, 0.2, 0.3, 0.4], 20_000
    T, d = len(betas), GaussianDiffusion(betas=betas)
    _, ac, _ = _schedule(betas)
    x0 = {'video': torch.full((N, 2), 0.5, dtype=torch.float64), 'audio': torch.full((N, 2), -0.5, dtype=torch.float64)}
    seen = {}
    def eps_fn(x, t):
        seen.update(x=x, t=t)
        return {k: torch.zeros_like(v) for k, v in x.items()}
    out = joint_training_losses(d, eps_fn, x0, generator=torch.Generator().manual_seed(0))
    t = seen['t'].numpy()
    counts = np.bincount(t, minlength=T)
    assert len(counts) == T and (np.abs(counts / N - 1 / T) < 0.02).all(), counts
    a = ac[t][:, None]
    n = {k: (seen['x'][k].numpy() - np.sqrt(a) * x0[k].numpy()) / np.sqrt(1 - a) for k in x0}
    for k, v in n.items():
        assert abs(v.mean()) < 0.03 and abs(v.var() - 1) < 0.03, (k, v.mean(), v.var())
        np.testing.assert_allclose(out[k].numpy(), (v ** 2).mean(1), rtol=1e-6, atol=1e-9)
    assert abs(np.corrcoef(n['video'][:, 0], n['audio'][:, 0])[0, 1]) < 0.03


# --- the super-resolution model's hybrid loss -----------------------------------------------------------------------

def _np_approx_cdf(x): return 0.5 * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x ** 3)))

def _np_disc_loglik(x, means, log_scales):
    "guided-diffusion `discretized_gaussian_log_likelihood` for 8-bit images scaled to [-1, 1]."
    c = x - means; inv = np.exp(-log_scales)
    cdf_plus, cdf_min = _np_approx_cdf(inv * (c + 1 / 255)), _np_approx_cdf(inv * (c - 1 / 255))
    log_cdf_plus = np.log(np.maximum(cdf_plus, 1e-12))
    log_one_minus_cdf_min = np.log(np.maximum(1 - cdf_min, 1e-12))
    log_delta = np.log(np.maximum(cdf_plus - cdf_min, 1e-12))
    return np.where(x < -0.999, log_cdf_plus, np.where(x > 0.999, log_one_minus_cdf_min, log_delta))

def _np_hybrid(betas, hr, noise, eps, v, t):
    "guided-diffusion `training_losses` for LEARNED_RANGE variance and MSE loss: mse + vb (vb in bits per dim)."
    b, ac, acp = _schedule(betas)
    post_var = b * (1 - acp) / (1 - ac)
    post_logvar_clipped = np.log(np.append(post_var[1], post_var[1:]))
    coef1, coef2 = b * np.sqrt(acp) / (1 - ac), np.sqrt(1 - b) * (1 - acp) / (1 - ac)
    sh = lambda a: a[t].reshape(-1, 1, 1, 1)
    xt = np.sqrt(sh(ac)) * hr + np.sqrt(1 - sh(ac)) * noise
    min_log, max_log = sh(post_logvar_clipped), np.log(sh(b))
    frac = (v + 1) / 2
    model_logvar = frac * max_log + (1 - frac) * min_log
    x0 = np.sqrt(1 / sh(ac)) * xt - np.sqrt(1 / sh(ac) - 1) * eps          # no clipping in training
    model_mean = sh(coef1) * x0 + sh(coef2) * xt
    true_mean, true_logvar = sh(coef1) * hr + sh(coef2) * xt, min_log
    kl = 0.5 * (-1.0 + model_logvar - true_logvar + np.exp(true_logvar - model_logvar)
                + (true_mean - model_mean) ** 2 * np.exp(-model_logvar))
    kl = kl.reshape(len(t), -1).mean(1) / np.log(2.0)
    nll = -_np_disc_loglik(hr, model_mean, 0.5 * model_logvar).reshape(len(t), -1).mean(1) / np.log(2.0)
    vb = np.where(t == 0, nll, kl)
    mse = ((noise - eps) ** 2).reshape(len(t), -1).mean(1)
    return mse, vb

@pytest.mark.parametrize('T', [1000, 1100])
def test_sr_hybrid_loss_is_guided_diffusions(T):
    """A stand-in model with a fixed output (eps, v); the HR images sit on the 8-bit grid, with some pixels at -1 and
    +1 so that both edge cases of the decoder likelihood (t=0) are used; t includes 0, 1 and the last step."""
    g = torch.Generator().manual_seed(0)
    B, S = 4, 8
    hr = (torch.randint(0, 256, (B, 3, S, S), generator=g).double() / 127.5 - 1)
    hr[:, :, 0, 0], hr[:, :, 0, 1] = -1.0, 1.0
    noise = torch.randn(hr.shape, generator=g, dtype=torch.float64)
    out6 = torch.cat([0.8 * noise + 0.2 * torch.randn(hr.shape, generator=g, dtype=torch.float64),
                      torch.rand(hr.shape, generator=g, dtype=torch.float64) * 2 - 1], 1)
    model = lambda x, t, low: out6
    t = torch.tensor([0, 1, 500, T - 1])
    d = GaussianDiffusion(T)
    L = sr_training_losses(d, model, hr, torch.zeros(B, 3, 2, 2), t=t, noise=noise)
    betas = np.linspace(1e-4 * 1000 / T, 0.02 * 1000 / T, T)
    mse, vb = _np_hybrid(betas, hr.numpy(), noise.numpy(), out6[:, :3].numpy(), out6[:, 3:].numpy(), t.numpy())
    np.testing.assert_allclose(L['mse'].numpy(), mse, rtol=1e-5)
    np.testing.assert_allclose(L['vb'].numpy(), vb, rtol=1e-4, atol=1e-6)
    # unscaled at any T: MM-Diffusion's script_util leaves rescale_learned_sigmas False (LossType.MSE), so vb is not
    # multiplied by T/1000 as guided-diffusion's RESCALED_MSE would
    np.testing.assert_allclose(L['loss'].numpy(), mse + vb, rtol=1e-4, atol=1e-6)


def test_sr_vb_term_trains_the_variance_only():
    "As in guided-diffusion, the VB term sees the predicted mean with its gradient stopped: it trains only v."
    g = torch.Generator().manual_seed(1)
    hr = torch.rand(2, 3, 8, 8, generator=g) * 2 - 1
    out6 = torch.randn(2, 6, 8, 8, generator=g).requires_grad_()
    L = sr_training_losses(GaussianDiffusion(1000), lambda x, t, low: out6, hr, torch.zeros(2, 3, 2, 2),
                           t=torch.tensor([0, 300]), noise=torch.randn(hr.shape, generator=g))
    L['vb'].sum().backward()
    assert out6.grad[:, :3].abs().max() == 0 and out6.grad[:, 3:].abs().max() > 0


def test_discretized_likelihood_of_grid_images_sums_to_one():
    """The decoder likelihood is a distribution over the 256 levels: the probabilities of every level under one
    Gaussian sum to 1 (the edge bins take the tails), for several means and scales."""
    levels = torch.arange(256, dtype=torch.float64) / 127.5 - 1
    for mean, log_scale in [(0.0, -3.0), (0.9, -2.0), (-0.95, -4.0), (0.3, 0.0)]:
        lp = discretized_gaussian_log_likelihood(levels, torch.full_like(levels, mean), torch.full_like(levels, log_scale))
        np.testing.assert_allclose(float(lp.exp().sum()), 1.0, atol=2e-3)


# --- the fixed-step DPM-Solver++ and the time grid ------------------------------------------------------------------

from savgbench.baselines.diffusion import (DiscreteVPSchedule, JointDPMSolver, dpm_solver_multistep, ddim_timesteps,
                                           ddim_sample)

class _NpVP:
    "DPM-Solver's discrete VP schedule in numpy: log alpha piecewise linear through (t_n = (n+1)/N, log sqrt(abar_n))."
    def __init__(self, ac):
        self.N = len(ac)
        self.t = np.arange(1, self.N + 1) / self.N
        self.la = 0.5 * np.log(ac)
    def log_alpha(self, t): return np.interp(t, self.t, self.la)
    def lam(self, t):
        la = self.log_alpha(t)
        return la - 0.5 * np.log(1 - np.exp(2 * la))
    def sigma(self, t): return np.sqrt(1 - np.exp(2 * self.log_alpha(t)))
    def inv_lam(self, lam):
        la = -0.5 * np.logaddexp(0.0, -2 * lam)
        return np.interp(la, self.la[::-1], self.t[::-1])

def _np_multistep(ns, eps_np, x, steps, order, lower_order_final=True):
    """DPM-Solver++ multistep (data prediction, no thresholding) from t=1 to t=1/N on the logSNR grid (Lu et al. 2022,
    alg. 2): order 1 first, then 2M; a first-order last step when steps < 15 (lower_order_final)."""
    ts = ns.inv_lam(np.linspace(ns.lam(1.0), ns.lam(1 / ns.N), steps + 1))
    def data(x, t):
        n = int(np.floor((t - 1 / ns.N) * ns.N + 1e-4))
        a, s = np.exp(ns.log_alpha(t)), ns.sigma(t)
        e = eps_np(x, n)
        return {k: (x[k] - s * e[k]) / a for k in x}
    preds = [data(x, ts[0])]
    for i in range(1, steps + 1):
        s, t = ts[i - 1], ts[i]
        h = ns.lam(t) - ns.lam(s)
        o = min(order, i)
        if lower_order_final and steps < 15 and i == steps: o = 1
        if o == 1: D = preds[-1]
        else:
            r = (ns.lam(s) - ns.lam(ts[i - 2])) / h
            D = {k: (1 + 0.5 / r) * preds[-1][k] - (0.5 / r) * preds[-2][k] for k in x}
        x = {k: ns.sigma(t) / ns.sigma(s) * x[k] - np.exp(ns.log_alpha(t)) * np.expm1(-h) * D[k] for k in x}
        if i < steps: preds.append(data(x, t))
    return x

@pytest.mark.parametrize('steps,order', [(1, 2), (2, 2), (6, 2), (10, 2), (14, 2), (15, 2), (8, 1), (5, 1)])
def test_multistep_dpm_solver_pp_is_the_algorithm(steps, order):
    """Against a numpy re-statement of DPM-Solver++(1)/(2M), including the first-order last step below 15 steps, on a
    non-linear denoiser that couples the modalities and depends on the integer step."""
    T = 1000
    ac = np.cumprod(1 - np.linspace(1e-4, 0.02, T))
    def eps_np(x, n):
        c = 0.5 + 0.4 * np.sin(0.01 * n)
        return {'video': c * np.tanh(x['video']) + 0.1 * x['audio'].mean(),
                'audio': c * np.tanh(1.5 * x['audio']) - 0.2 * x['video'].mean()}
    def eps_fn(x, t):
        assert (t == t[0]).all()
        e = eps_np({k: v[0].numpy() for k, v in x.items()}, int(t[0]))
        return {k: torch.from_numpy(v)[None] for k, v in e.items()}
    g = torch.Generator().manual_seed(2)
    x_T = {'video': torch.randn(1, 2, 3, 4, 4, generator=g, dtype=torch.float64),
           'audio': torch.randn(1, 2, 32, generator=g, dtype=torch.float64)}
    solver = JointDPMSolver(eps_fn, DiscreteVPSchedule(GaussianDiffusion(T)), thresholding=False)
    got, nfe = dpm_solver_multistep(solver, dict(x_T), steps=steps, order=order)
    assert nfe == steps
    want = _np_multistep(_NpVP(ac), eps_np, {k: v[0].numpy() for k, v in x_T.items()}, steps, order)
    for k in x_T: np.testing.assert_allclose(got[k][0].numpy(), want[k], rtol=1e-9, atol=1e-9, err_msg=k)


@pytest.mark.parametrize('T', [1000, 50])
def test_model_time_of_each_grid_time_is_its_step(T):
    """The solver's continuous time t_n = (n+1)/N is the discrete step n (spec §2.1), exactly at every grid time,
    and truncated in between."""
    ns = DiscreteVPSchedule(GaussianDiffusion(T))
    n = torch.arange(T)
    assert torch.equal(ns.model_time((n + 1).double() / T), n)
    assert torch.equal(ns.model_time((n + 1.5).double() / T).clamp(max=T - 1), n)
    assert torch.equal(ns.model_time((n + 0.999).double() / T), (n - 1).clamp(min=0))


def test_ddim_respacing_is_guided_diffusions():
    "`ddimN`: the first integer stride whose range(0, T, stride) has N items, stride 1 included (all steps)."
    for T, n in [(1100, 25), (1000, 50), (10, 10), (10, 5), (10, 4), (7, 7), (1000, 1000)]:
        stride = next(s for s in range(1, T) if len(range(0, T, s)) == n)
        assert ddim_timesteps(T, n) == list(range(0, T, stride)), (T, n)
    assert ddim_timesteps(10, 10) == list(range(10))


def test_ddim_sample_defaults_to_the_reference_sr_schedule():
    "Without T and steps: 25 steps of stride 44 on the T=1100 schedule (run_baseline.sh `ddim25`, spec §3)."
    seen = []
    def eps_fn(x, t): seen.append(int(t[0])); return torch.zeros_like(x)
    ddim_sample(eps_fn, torch.zeros(1, 3, 2, 2))
    assert seen == list(range(1056, -1, -44))


def test_fixed_step_time_grids_are_dpm_solvers():
    "DPM-Solver's `get_time_steps`: uniform in t, uniform in sqrt(t) then squared, or uniform in half-logSNR lambda."
    from savgbench.baselines.diffusion import time_steps
    T = 1000
    ns, nps = DiscreteVPSchedule(GaussianDiffusion(T)), _NpVP(np.cumprod(1 - np.linspace(1e-4, 0.02, T)))
    np.testing.assert_allclose(time_steps(ns, 5, 'time_uniform').numpy(), np.linspace(1, 1 / T, 6), rtol=1e-12)
    np.testing.assert_allclose(time_steps(ns, 5, 'time_quadratic').numpy(), np.linspace(1, (1 / T) ** 0.5, 6) ** 2,
                               rtol=1e-12)
    ts = time_steps(ns, 7, 'logSNR').numpy()
    np.testing.assert_allclose(ts[[0, -1]], [1, 1 / T], rtol=1e-9)
    np.testing.assert_allclose(np.diff(nps.lam(ts)), (nps.lam(1 / T) - nps.lam(1.0)) / 7, rtol=1e-9)


def test_default_schedule_is_ddpm_linear_1000():
    "Spec §1.4: T=1000, betas linspace(1e-4, 0.02) in float64, by default."
    from savgbench.baselines.diffusion import linear_betas
    want = np.linspace(1e-4, 0.02, 1000)
    np.testing.assert_allclose(linear_betas(), want, rtol=1e-12)
    d = GaussianDiffusion()
    assert d.T == 1000
    np.testing.assert_allclose(d.alphas_cumprod.numpy(), np.cumprod(1 - want), rtol=1e-12)


def test_adaptive_max_nfe_counts_this_call_only_and_warns_only_when_unfinished():
    """A run that needs exactly `max_nfe` evaluations finishes without a warning, also on a solver that has already
    sampled once (its NFE counter does not start at 0)."""
    import warnings
    from savgbench.baselines.diffusion import dpm_solver_adaptive
    ns = DiscreteVPSchedule(GaussianDiffusion(50))
    eps_fn = lambda x, t: {k: 0.8 * torch.tanh(v) for k, v in x.items()}
    g = torch.Generator().manual_seed(0)
    x_T = {'video': torch.randn(2, 2, 3, 4, 4, generator=g, dtype=torch.float64),
           'audio': torch.randn(2, 2, 16, generator=g, dtype=torch.float64)}
    solver = JointDPMSolver(eps_fn, ns)
    x1, nfe = dpm_solver_adaptive(solver, dict(x_T))
    assert solver.nfe == nfe > 2
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        x2, nfe2 = dpm_solver_adaptive(solver, dict(x_T), max_nfe=nfe)        # the same solver, used again
        x3, nfe3 = dpm_solver_adaptive(JointDPMSolver(eps_fn, ns), dict(x_T), max_nfe=nfe)
    assert nfe2 == nfe3 == nfe
    for k in x_T: torch.testing.assert_close(x2[k], x1[k]); torch.testing.assert_close(x3[k], x1[k])


# --- the coupled U-Net ----------------------------------------------------------------------------------------------

def test_without_window_shift_every_cross_attention_takes_the_unshifted_window():
    """`cross_attention_shift=False`: video frame i attends to the audio of frames i..i+w-1 (shift 0), every call, so
    the network is deterministic and equals the same weights with each block's shift forced to 0."""
    from savgbench.baselines.mmdiffusion import MMDiffusionConfig, CoupledUNet, CrossAttentionBlock
    torch.manual_seed(0)
    net = CoupledUNet(MMDiffusionConfig.tiny(cross_attention_shift=False))
    for p in net.parameters(): p.data.add_(0.05 * torch.randn_like(p))      # no zero-initialised outputs
    g = torch.Generator().manual_seed(1)
    v, a, t = torch.randn(1, 4, 3, 16, 16, generator=g), torch.randn(1, 2, 1024, generator=g), torch.tensor([5])
    blocks = [m for m in net.modules() if isinstance(m, CrossAttentionBlock)]
    assert len(blocks) >= 2 and all(b.shift is None for b in blocks)
    with torch.no_grad():
        outs = [net(v, a, t) for seed in range(3) if torch.manual_seed(seed) is not None]
        for b in blocks: b.shift = 0
        fixed = net(v, a, t)
    for o in outs:
        for x, y in zip(o, fixed): torch.testing.assert_close(x, y, rtol=0, atol=0)


@pytest.mark.parametrize('dilation', [1, 4, 32])
def test_audio_convolution_layouts_keep_the_dilation(dilation):
    """The channels-last and 2-D forms of the dilated audio convolution (`use_channels_last(audio=True / '2d')`)
    compute what `Conv1d(k=3, dilation, padding='same')` does."""
    from savgbench.baselines.mmdiffusion import AudioConv
    torch.manual_seed(0)
    conv = AudioConv(8, 6, 3, dilation=dilation)
    x = torch.randn(2, 8, 100)
    want = torch.nn.functional.conv1d(x, conv.audio_conv.weight, conv.audio_conv.bias, padding=dilation,
                                      dilation=dilation)
    for cl, as2d in [(False, False), (True, False), (False, True)]:
        conv.channels_last, conv.as_2d = cl, as2d
        torch.testing.assert_close(conv(x), want, rtol=1e-5, atol=1e-5, msg=f"channels_last={cl}, as_2d={as2d}")


def test_paper_training_dropout_is_0_1():
    "Spec §1.2: dropout 0.1 in training (the ResBlocks' out layers), none in eval."
    from savgbench.baselines.mmdiffusion import MMDiffusionConfig, CoupledUNet
    assert MMDiffusionConfig.paper().dropout == 0.1 == MMDiffusionConfig().dropout
    with torch.device('meta'): net = CoupledUNet(MMDiffusionConfig.paper())
    ps = {m.p for m in net.modules() if isinstance(m, torch.nn.Dropout)}
    assert ps == {0.1}


def test_a_savgbench_checkpoint_loads_its_ema_weights_unless_asked_for_the_raw_ones():
    """A training checkpoint {'model', 'ema', ...}: the EMA weights by default (what the reference samples with), the
    raw ones with prefer_ema=False or when it has no EMA yet; keys that the network lacks are refused when strict."""
    from savgbench.core import WeightsError
    from savgbench.baselines.mmdiffusion import MMDiffusionConfig, CoupledUNet, load_joint_weights
    from savgbench.baselines.superres import SRConfig, SuperResUNet, load_sr_weights
    net = CoupledUNet(MMDiffusionConfig.tiny())
    raw = {k: torch.full_like(v, 1.0) for k, v in net.state_dict().items()}
    ema = {k: torch.full_like(v, 2.0) for k, v in net.state_dict().items()}
    w = lambda m: float(m.time_embed[0].weight.detach().flatten()[0])
    assert w(load_joint_weights(CoupledUNet(MMDiffusionConfig.tiny()), {'model': raw, 'ema': ema, 'step': 3})) == 2.0
    assert w(load_joint_weights(CoupledUNet(MMDiffusionConfig.tiny()), {'ema': ema, 'model': raw, 'step': 3})) == 2.0
    assert w(load_joint_weights(CoupledUNet(MMDiffusionConfig.tiny()), {'model': raw, 'ema': ema},
                                prefer_ema=False)) == 1.0
    assert w(load_joint_weights(CoupledUNet(MMDiffusionConfig.tiny()), {'model': raw, 'ema': None})) == 1.0
    with pytest.raises(WeightsError, match='unexpected'):
        load_joint_weights(CoupledUNet(MMDiffusionConfig.tiny()), {**raw, 'label_emb.weight': torch.zeros(3, 128)})
    sr = SuperResUNet(SRConfig.tiny()).state_dict()
    with pytest.raises(WeightsError, match='unexpected'):
        load_sr_weights(SuperResUNet(SRConfig.tiny()), {**sr, 'extra.weight': torch.zeros(2)})
    load_sr_weights(SuperResUNet(SRConfig.tiny()), {**sr, 'label_emb.weight': torch.zeros(3, 128)})   # ImageNet's


def test_tiny_preset_is_the_spec_table():
    "Spec §5's tiny configuration (CPU tests): sizes, widths, attention placement, heads."
    from savgbench.baselines.mmdiffusion import MMDiffusionConfig
    c = MMDiffusionConfig.tiny()
    assert (tuple(c.video_size), tuple(c.audio_size)) == ((4, 3, 16, 16), (2, 1024))
    assert (c.model_channels, tuple(c.channel_mult), c.num_res_blocks) == (32, (1, 2), 1)
    assert (tuple(c.video_attention_resolutions), tuple(c.cross_attention_resolutions),
            tuple(c.cross_attention_windows), c.middle_cross_attention) == ((2,), (2,), (1,), True)
    assert (c.num_heads, c.num_head_channels) == (4, 32)


def test_paper_preset_is_the_reference_configuration():
    "Spec §1.1-1.2: the sizes and flags run_baseline.sh gives the reference MultimodalUNet."
    from savgbench.baselines.mmdiffusion import MMDiffusionConfig
    c = MMDiffusionConfig.paper()
    assert (tuple(c.video_size), tuple(c.audio_size)) == ((20, 3, 64, 64), (2, 80000))
    assert (c.model_channels, tuple(c.channel_mult), c.num_res_blocks) == (128, (1, 2, 3, 4), 2)
    assert (tuple(c.video_attention_resolutions), tuple(c.audio_attention_resolutions)) == ((2, 4, 8), ())
    assert (tuple(c.cross_attention_resolutions), tuple(c.cross_attention_windows)) == ((2, 4, 8), (1, 4, 8))
    assert c.cross_attention_shift and c.middle_cross_attention and c.use_scale_shift_norm
    assert (c.num_heads, c.num_head_channels, c.norm_groups, c.max_dilation, c.audio_down) == (4, 64, 32, 10, 4)


def test_super_resolve_defaults_to_ddim25_on_the_models_schedule():
    "run_baseline.sh: `--sr_timestep_respacing ddim25` on `--sr_diffusion_steps 1100` (spec §3): steps 1056, ..., 44, 0."
    from savgbench.baselines.superres import SRConfig, SuperResUNet, super_resolve
    model = SuperResUNet(SRConfig.tiny(large_size=16, small_size=4))
    seen = []
    model.register_forward_pre_hook(lambda m, args: seen.append(args[1].tolist()))
    super_resolve(model, torch.zeros(1, 2, 3, 4, 4), generator=torch.Generator().manual_seed(0))
    assert seen == [[t, t] for t in range(1056, -1, -44)]


def test_sr_loss_draws_uniform_steps_and_unit_noise_per_pixel_and_channel():
    "Without t and noise: uniform steps over 0..T-1 and i.i.d. standard normal noise (recovered from x_t)."
    betas = [0.05, 0.1, 0.2, 0.3, 0.4]
    d, T, N = GaussianDiffusion(betas=betas), len(betas), 8000
    _, ac, _ = _schedule(betas)
    hr = torch.full((N, 3, 2, 2), 0.25)
    seen = {}
    def model(x, t, low):
        seen.update(x=x, t=t)
        return torch.zeros(x.shape[0], 6, *x.shape[2:])
    sr_training_losses(d, model, hr, torch.zeros(N, 3, 1, 1), generator=torch.Generator().manual_seed(0))
    t = seen['t'].numpy()
    counts = np.bincount(t, minlength=T)
    assert len(counts) == T and (np.abs(counts / N - 1 / T) < 0.02).all(), counts
    a = ac[t].reshape(-1, 1, 1, 1)
    n = ((seen['x'].double().numpy() - np.sqrt(a) * 0.25) / np.sqrt(1 - a)).reshape(N, -1)
    assert abs(n.mean()) < 0.02 and abs(n.var() - 1) < 0.02, (n.mean(), n.var())
    c = np.corrcoef(n.T)
    assert np.abs(c - np.eye(12)).max() < 0.05                   # channels and pixels drawn independently


def test_sr_presets_carry_their_schedules():
    "The SAVGBench SR model samples on T=1100 (run_baseline.sh); the ImageNet upsampler was trained on T=1000, with 1000 classes."
    from savgbench.baselines.superres import SRConfig
    p, i = SRConfig.paper(), SRConfig.imagenet()
    assert (p.diffusion_steps, p.num_classes, p.learn_sigma) == (1100, None, True)
    assert (i.diffusion_steps, i.num_classes, i.learn_sigma) == (1000, 1000, True)
    assert (p.model_channels, tuple(p.channel_mult), p.num_res_blocks, tuple(p.attention_ds), p.num_heads) == \
        (192, (1, 1, 2, 2, 4, 4), 2, (8, 16, 32), 4) == \
        (i.model_channels, tuple(i.channel_mult), i.num_res_blocks, tuple(i.attention_ds), i.num_heads)
    assert (p.large_size, p.small_size) == (256, 64)
    assert SRConfig.paper(dropout=0.1).dropout == 0.1 and SRConfig.imagenet(dropout=0.1).dropout == 0.1
    assert SRConfig.tiny(dropout=0.1).dropout == 0.1
