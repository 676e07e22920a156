"""Symmetry-constrained diffusion over free variables only (after DiffCSP / DiffCSP++).

* Lattice: DDPM (cosine schedule) on the standardised scale-free lattice variables the crystal
  family leaves free (:func:`featurize.lattice_vector`); tied or fixed parameters never move.
* Coordinates: score matching with a wrapped normal on the free Wyckoff coordinates (period 1),
  a geometric sigma schedule and DiffCSP's predictor-corrector sampler.
* Denoiser: periodic, E(3)-invariant message passing on the full cell (CSPNet style). Atom
  positions follow from the free coordinates through the exact affine orbit maps; edges read
  Fourier features of fractional differences (periodic, translation invariant) and the lattice
  parameters (lengths and angles are invariant under rotations and reflections). Per-atom
  fractional scores are pulled back onto the free coordinates with ``A_k^T`` and averaged over
  the orbit, so every sample is exactly in the requested group and Wyckoff sites.
* Conditioning: element, space group, Wyckoff position and (optionally) band gap / formation
  energy embedded with Gaussian radial basis functions as in CrystalGF; a learned "unknown"
  vector replaces a missing property (classifier-free-style dropout during training).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from xtalagent.structure_gen.featurize import PROPERTIES

#: Range and number of Gaussian RBF centres per property (eV for band gap, eV/atom for energy).
#: Clip of the predicted clean lattice variables (standardised units) during sampling.
LATTICE_CLIP: float = 5.0
PROPERTY_RBF: dict[str, tuple[float, float, int]] = {"band_gap": (0.0, 8.0, 32), "formation_energy": (-5.0, 2.0, 32)}


@dataclass
class ModelConfig:
    """Size and diffusion schedule; stored in every checkpoint."""

    hidden: int = 128
    layers: int = 4
    n_fourier: int = 16  # frequencies per fractional axis on edges
    timesteps: int = 1000
    sigma_min: float = 0.005
    sigma_max: float = 0.5
    step_lr: float = 1e-5  # Langevin corrector step (DiffCSP)
    n_elements: int = 104
    max_letters: int = 27
    lattice_mean: tuple[float, ...] = (0.0,) * 6
    lattice_std: tuple[float, ...] = (1.0,) * 6


def cosine_betas(timesteps: int, s: float = 0.008) -> torch.Tensor:
    steps = torch.arange(timesteps + 1, dtype=torch.float64) / timesteps
    alphas_bar = torch.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
    alphas_bar = alphas_bar / alphas_bar[0]
    betas = 1 - alphas_bar[1:] / alphas_bar[:-1]
    return betas.clamp(1e-4, 0.999).float()


def wrapped_normal_neg_score(x: torch.Tensor, sigma: torch.Tensor, images: int = 10) -> torch.Tensor:
    """-d/dx log of a wrapped normal (period 1) density at offset ``x``; what the model predicts."""
    k = torch.arange(-images, images + 1, dtype=x.dtype, device=x.device)
    d = x.unsqueeze(-1) + k
    s2 = (sigma**2).unsqueeze(-1)
    logw = -(d**2) / (2 * s2)
    w = torch.softmax(logw, dim=-1)
    return (w * d / s2).sum(-1)


def sigma_norms(sigmas: torch.Tensor, samples: int = 5000, seed: int = 0) -> torch.Tensor:
    """E[score^2] per sigma (Monte Carlo, as DiffCSP) to normalise the coordinate targets."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(samples, generator=g, dtype=torch.float64)
    out = []
    for s in sigmas.double():
        x = torch.remainder(s * z, 1.0)
        out.append((wrapped_normal_neg_score(x, s.expand_as(x)) ** 2).mean())
    return torch.stack(out).float()


class SinusoidalTime(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        half = self.dim // 2
        freqs = torch.exp(-math.log(10000) * torch.arange(half, device=t.device) / half)
        args = t.float().unsqueeze(-1) * freqs * 1000
        return torch.cat([args.sin(), args.cos()], dim=-1)


class GaussianRBF(nn.Module):
    """Gaussian radial basis expansion of a scalar property (CrystalGF's property embedding)."""

    centres: torch.Tensor  # buffers, declared so type checkers know them from sub-modules

    def __init__(self, low: float, high: float, n: int) -> None:
        super().__init__()
        self.register_buffer("centres", torch.linspace(low, high, n))
        self.gamma = 1.0 / (2 * ((high - low) / (n - 1)) ** 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.exp(-self.gamma * (x.unsqueeze(-1) - self.centres) ** 2)


def mlp(dims: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(len(dims) - 1):
        layers.append(nn.Linear(dims[i], dims[i + 1]))
        if i < len(dims) - 2:
            layers.append(nn.SiLU())
    return nn.Sequential(*layers)


def scatter_mean(src: torch.Tensor, index: torch.Tensor, size: int) -> torch.Tensor:
    out = torch.zeros(size, src.shape[-1], dtype=src.dtype, device=src.device)
    out.index_add_(0, index, src)
    count = torch.zeros(size, dtype=src.dtype, device=src.device).index_add_(
        0, index, torch.ones_like(index, dtype=src.dtype)
    )
    return out / count.clamp(min=1).unsqueeze(-1)


class MessageLayer(nn.Module):
    """One CSPNet layer: edges see both atoms, the lattice and Fourier-encoded fractional offsets."""

    def __init__(self, hidden: int, edge_in: int) -> None:
        super().__init__()
        self.edge = mlp([2 * hidden + edge_in, hidden, hidden])
        self.node = mlp([2 * hidden, hidden, hidden])
        self.norm = nn.LayerNorm(hidden)

    def forward(self, h: torch.Tensor, src: torch.Tensor, dst: torch.Tensor, edge_feat: torch.Tensor) -> torch.Tensor:
        hn = self.norm(h)
        m = self.edge(torch.cat([hn[src], hn[dst], edge_feat], dim=-1))
        agg = scatter_mean(m, src, h.shape[0])
        return h + self.node(torch.cat([hn, agg], dim=-1))


class Denoiser(nn.Module):
    """Predicts lattice noise and the normalised free-coordinate score of a noisy crystal."""

    freqs: torch.Tensor  # buffer

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        h = cfg.hidden
        self.element = nn.Embedding(cfg.n_elements, h)
        self.group = nn.Embedding(231, h)
        self.letter = nn.Embedding(cfg.max_letters, h)
        self.dof = nn.Embedding(4, h)
        self.time = nn.Sequential(SinusoidalTime(h), nn.Linear(h, h), nn.SiLU())
        self.rbf = nn.ModuleList([GaussianRBF(*PROPERTY_RBF[p]) for p in PROPERTIES])
        self.prop_proj = nn.ModuleList([nn.Linear(PROPERTY_RBF[p][2], h) for p in PROPERTIES])
        self.prop_null = nn.Parameter(torch.zeros(len(PROPERTIES), h))
        self.lat_in = nn.Linear(6 + 6 + 6, h)  # noisy lattice, mask, family one-hot
        self.node_in = mlp([h, h, h])
        edge_in = 3 * 2 * cfg.n_fourier + 6
        self.layers = nn.ModuleList([MessageLayer(h, edge_in) for _ in range(cfg.layers)])
        self.out_norm = nn.LayerNorm(h)
        self.coord_out = nn.Linear(h, 3, bias=False)
        self.lattice_out = mlp([h, h, 6])
        self.register_buffer("freqs", 2 * math.pi * torch.arange(1, cfg.n_fourier + 1).float())

    def crystal_context(self, batch: dict[str, torch.Tensor], lat_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        fam = nn.functional.one_hot(batch["family"], 6).float()
        ctx = self.time(t) + self.group(batch["spacegroup"])
        ctx = ctx + self.lat_in(torch.cat([lat_t * batch["lattice_mask"], batch["lattice_mask"].float(), fam], -1))
        props = batch["props"]
        for i in range(len(PROPERTIES)):
            known = ~torch.isnan(props[:, i])
            value = torch.nan_to_num(props[:, i])
            emb = self.prop_proj[i](self.rbf[i](value))
            ctx = ctx + torch.where(known.unsqueeze(-1), emb, self.prop_null[i].expand_as(emb))
        return ctx

    def forward(
        self, batch: dict[str, torch.Tensor], free_t: torch.Tensor, lat_t: torch.Tensor, t: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(lattice eps (B, 6), coordinate score (S, 3)) for noisy free coords and lattice at step t."""
        frac = torch.einsum("nij,nj->ni", batch["atom_A"], free_t[batch["atom_orbit"]]) + batch["atom_b"]
        ctx = self.crystal_context(batch, lat_t, t)
        orbit = batch["atom_orbit"]
        h = (
            self.element(batch["species"])
            + self.letter(batch["orbit_letter"][orbit])
            + self.dof(batch["orbit_dof"][orbit])
        )
        h = self.node_in(h + ctx[batch["atom_crystal"]])
        src, dst = batch["src"], batch["dst"]
        diff = (frac[dst] - frac[src]).unsqueeze(-1) * self.freqs  # (E, 3, F)
        fourier = torch.cat([diff.sin(), diff.cos()], dim=-1).flatten(1)
        lat_edge = (lat_t * batch["lattice_mask"])[batch["atom_crystal"][src]]
        edge_feat = torch.cat([fourier, lat_edge], dim=-1)
        for layer in self.layers:
            h = layer(h, src, dst, edge_feat)
        h = self.out_norm(h)
        atom_score = self.coord_out(h)  # fractional-space score per atom
        pulled = torch.einsum("nij,ni->nj", batch["atom_A"], atom_score)
        coord = scatter_mean(pulled, orbit, free_t.shape[0]) * batch["coord_mask"]
        pooled = scatter_mean(h, batch["atom_crystal"], lat_t.shape[0])
        lattice = self.lattice_out(pooled) * batch["lattice_mask"]
        return lattice, coord


class CrystalDiffusion(nn.Module):
    """Denoiser + schedules: the training loss and the predictor-corrector sampler."""

    # buffers (move with .to(), saved in the state dict), declared so type checkers know them
    betas: torch.Tensor
    alphas: torch.Tensor
    alphas_bar: torch.Tensor
    sigmas: torch.Tensor
    sigma_norms: torch.Tensor
    lat_mean: torch.Tensor
    lat_std: torch.Tensor

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.denoiser = Denoiser(cfg)
        betas = cosine_betas(cfg.timesteps)
        alphas = 1 - betas
        self.register_buffer("betas", betas)
        self.register_buffer("alphas", alphas)
        self.register_buffer("alphas_bar", torch.cumprod(alphas, 0))
        sig = torch.exp(torch.linspace(math.log(cfg.sigma_min), math.log(cfg.sigma_max), cfg.timesteps))
        self.register_buffer("sigmas", sig)
        self.register_buffer("sigma_norms", sigma_norms(sig))
        self.register_buffer("lat_mean", torch.tensor(cfg.lattice_mean).float())
        self.register_buffer("lat_std", torch.tensor(cfg.lattice_std).float())

    def normalise_lattice(self, lat: torch.Tensor) -> torch.Tensor:
        return (lat - self.lat_mean) / self.lat_std

    def denormalise_lattice(self, lat: torch.Tensor) -> torch.Tensor:
        return lat * self.lat_std + self.lat_mean

    def loss(self, batch: dict[str, torch.Tensor], prop_dropout: float = 0.5) -> tuple[torch.Tensor, dict[str, float]]:
        """Lattice eps-MSE + normalised wrapped-normal score MSE at a random step per crystal."""
        b = batch["spacegroup"].shape[0]
        t = torch.randint(0, self.cfg.timesteps, (b,))
        batch = dict(batch)
        if prop_dropout > 0:
            drop = torch.rand(batch["props"].shape) < prop_dropout
            batch["props"] = batch["props"].masked_fill(drop, float("nan"))
        lmask = batch["lattice_mask"].float()
        lat0 = self.normalise_lattice(batch["lattice"]) * lmask
        eps = torch.randn_like(lat0) * lmask
        ab = self.alphas_bar[t].unsqueeze(-1)
        lat_t = ab.sqrt() * lat0 + (1 - ab).sqrt() * eps
        sig = self.sigmas[t][batch["orbit_crystal"]].unsqueeze(-1)
        cmask = batch["coord_mask"].float()
        z = torch.randn_like(batch["free"]) * cmask
        free_t = torch.remainder(batch["free"] + sig * z, 1.0) * cmask
        target = wrapped_normal_neg_score(sig * z, sig.expand_as(z)) / self.sigma_norms[t][
            batch["orbit_crystal"]
        ].sqrt().unsqueeze(-1)
        pred_lat, pred_coord = self.denoiser(batch, free_t, lat_t, t)
        lat_loss = ((pred_lat - eps) ** 2 * lmask).sum() / lmask.sum().clamp(min=1)
        coord_loss = ((pred_coord - target * cmask) ** 2).sum() / cmask.sum().clamp(min=1)
        total = lat_loss + coord_loss
        return total, {"lattice": float(lat_loss.detach()), "coord": float(coord_loss.detach())}

    @torch.no_grad()
    def sample(
        self,
        batch: dict[str, torch.Tensor],
        generator: torch.Generator | None = None,
        steps: int | None = None,
        corrector: bool = True,
        temperature: float = 1.0,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Free lattice vectors (B, 6, de-normalised) and free coordinates (S, 3) for a batch.

        ``steps`` < ``timesteps`` respaces both schedules evenly (fewer denoiser calls: the
        predictor jumps between the chosen sigmas, the lattice uses the respaced DDPM posterior).
        ``temperature`` < 1 scales the noise injected after the prior draw, which sharpens the
        sampled distribution towards its modes (fewer, likelier structures; 1 is the exact
        reverse process).
        """
        b = batch["spacegroup"].shape[0]
        lmask = batch["lattice_mask"].float()
        cmask = batch["coord_mask"].float()
        n_steps = min(steps or self.cfg.timesteps, self.cfg.timesteps)
        chosen = torch.linspace(self.cfg.timesteps - 1, 0, n_steps).round().long().tolist()
        chosen = sorted(set(chosen), reverse=True)

        def randn(shape):
            return torch.randn(shape, generator=generator)

        def noise_like(x, last):
            return torch.zeros_like(x) if last else temperature * randn(x.shape)

        lat = randn((b, 6)) * lmask
        free = torch.rand(batch["free"].shape, generator=generator) * cmask
        for i, step in enumerate(chosen):
            prev_step = chosen[i + 1] if i + 1 < len(chosen) else None
            last = prev_step is None
            t = torch.full((b,), step, dtype=torch.long)
            sigma = self.sigmas[step]
            norm = self.sigma_norms[step].sqrt()
            if corrector:  # Langevin on coordinates (DiffCSP's corrector)
                size = self.cfg.step_lr * (sigma / self.sigmas[0]) ** 2
                _, score = self.denoiser(batch, free, lat, t)
                noise = noise_like(free, last)
                free = torch.remainder(free - size * score * norm + (2 * size).sqrt() * noise, 1.0) * cmask
            # predictor: reverse SDE for coordinates, DDPM posterior for the lattice
            pred_lat, score = self.denoiser(batch, free, lat, t)
            prev = torch.tensor(0.0) if last else self.sigmas[prev_step]
            size = sigma**2 - prev**2
            std = (prev**2 * (sigma**2 - prev**2) / sigma**2).sqrt()
            noise = noise_like(free, last)
            free = torch.remainder(free - size * score * norm + std * noise, 1.0) * cmask
            ab = self.alphas_bar[step]
            ab_prev = torch.tensor(1.0) if last else self.alphas_bar[prev_step]
            alpha = ab / ab_prev
            # x0-parametrised posterior with clipping: eps errors at the noisy end (alpha -> 0)
            # would otherwise be amplified by 1/sqrt(alpha) and blow the cell up
            x0 = ((lat - (1 - ab).sqrt() * pred_lat) / ab.sqrt()).clamp(-LATTICE_CLIP, LATTICE_CLIP)
            mean = (ab_prev.sqrt() * (1 - alpha) * x0 + alpha.sqrt() * (1 - ab_prev) * lat) / (1 - ab)
            if last:
                lat = x0 * lmask
            else:
                var = (1 - alpha) * (1 - ab_prev) / (1 - ab)
                lat = (mean + var.sqrt() * noise_like(lat, last)) * lmask
        return self.denormalise_lattice(lat), free

    def config_dict(self) -> dict:
        return asdict(self.cfg)


def lattice_stats(lattices: np.ndarray, masks: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-slot mean and std of the free lattice variables over a training set."""
    mean, std = [], []
    for i in range(6):
        vals = lattices[masks[:, i], i]
        mean.append(float(vals.mean()) if len(vals) else 0.0)
        std.append(float(vals.std()) if len(vals) > 1 and vals.std() > 1e-3 else 1.0)
    return tuple(mean), tuple(std)
