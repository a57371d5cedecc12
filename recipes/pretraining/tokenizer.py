"""Stage 1 of MuQ pretraining: the Mel-RVQ tokenizer.

A residual *linear* vector quantiser (MuQ paper, section 3.1): each level projects the current residual
``[B, T, D_in]`` linearly to a small code space, picks the nearest of ``codebook_size`` codes, projects
the code back and subtracts it from the residual. The targets of stage 2 are the code indices
``[B, T, N]`` (N levels). Trained with a codebook loss, a commitment loss and a reconstruction loss
(straight-through estimator); codes unused for a while are replaced by recent projected inputs.

Inputs are the backbone's own normalised log-mel frames stacked to the token rate (4 mel frames of
128 bands → ``D_in = 512`` at 25 Hz, :func:`stack_frames`), or, for iteration, hidden states of a
previous model. Saved as its own small file pair (``tokenizer.safetensors`` + ``tokenizer.json``).

Shapes: B batch, T frames (token rate), D_in input dim, N levels, K codebook size, E code dim.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import CheckpointError
from ...fsutil import atomic_path, write_text

FORMAT_VERSION = 1


@dataclass
class TokenizerConfig:
    input_dim: int = 512        # D_in: 4 stacked mel frames x 128 bands, or a hidden size (iteration)
    num_levels: int = 8         # N: residual levels (paper: 8)
    codebook_size: int = 1024   # K
    code_dim: int = 16          # E: the linear projection's code space
    commitment: float = 0.25    # beta of the commitment loss
    dead_after: int = 50        # steps without use before a code is replaced
    source: str = "mel"         # "mel" or "layer:<i>" of the teacher named in ``teacher``
    teacher: str | None = None  # checkpoint whose hidden states feed an iteration tokenizer


def stack_frames(mel: torch.Tensor, n_fold: int) -> torch.Tensor:
    """``mel`` ``[B, F, T_mel]`` → ``[B, T, F * n_fold]``, ``T = T_mel // n_fold`` (token rate)."""
    b, f, t = mel.shape
    t = t // n_fold
    x = mel[..., :t * n_fold].reshape(b, f, t, n_fold)
    return x.permute(0, 2, 3, 1).reshape(b, t, n_fold * f)


class MelRVQ(nn.Module):
    """Residual linear VQ. ``forward(x [B, T, D_in])`` → dict with ``codes`` [B, T, N] (long),
    ``recon`` [B, T, D_in], ``loss`` and its parts; :meth:`tokenize` returns only the codes."""

    def __init__(self, config: TokenizerConfig | None = None, **kwargs):
        super().__init__()
        self.config = config or TokenizerConfig(**kwargs)
        c = self.config
        self.register_buffer("mean", torch.zeros(c.input_dim))
        self.register_buffer("std", torch.ones(c.input_dim))
        self.proj_in = nn.ModuleList(nn.Linear(c.input_dim, c.code_dim) for _ in range(c.num_levels))
        self.proj_out = nn.ModuleList(nn.Linear(c.code_dim, c.input_dim) for _ in range(c.num_levels))
        self.codebooks = nn.Parameter(torch.randn(c.num_levels, c.codebook_size, c.code_dim))
        # Steps since each code was last chosen (dead-code replacement); usage counts for metrics.
        self.register_buffer("idle", torch.zeros(c.num_levels, c.codebook_size))
        self.register_buffer("usage", torch.zeros(c.num_levels, c.codebook_size))

    @torch.no_grad()
    def set_statistics(self, x: torch.Tensor) -> None:
        """Per-dimension standardisation from a sample ``x`` [..., D_in] of the training inputs."""
        x = x.reshape(-1, x.shape[-1]).float()
        self.mean.copy_(x.mean(0))
        std = x.std(0)
        # constant dimensions (silent bands) must not blow up: floor at a tenth of the typical spread
        # (the floor computed on the device, in float64 as a Python float would be: no host sync)
        self.std.copy_(std.clamp_min((std.mean().double() * 0.1 + 1e-6).float()))

    def _nearest(self, z: torch.Tensor, level: int) -> torch.Tensor:
        """``z`` [M, E] → code indices [M] (squared Euclidean distance)."""
        cb = self.codebooks[level]
        d = z.pow(2).sum(-1, keepdim=True) - 2 * z @ cb.t() + cb.pow(2).sum(-1)[None]
        return d.argmin(-1)

    def forward(self, x: torch.Tensor, valid: torch.Tensor | None = None) -> dict:
        """``x`` [B, T, D_in]; ``valid`` optional [B, T] bool (frames that count in losses and usage)."""
        assert x.dim() == 3 and x.shape[-1] == self.config.input_dim, f"expected [B, T, D_in], got {x.shape}"
        c = self.config
        x = (x.float() - self.mean) / self.std
        residual, recon = x, torch.zeros_like(x)
        codes, cb_loss, commit = [], x.new_zeros(()), x.new_zeros(())
        flat_valid = None if valid is None else valid.reshape(-1)
        for level in range(c.num_levels):
            z = self.proj_in[level](residual).reshape(-1, c.code_dim)        # [M, E]
            idx = self._nearest(z.detach(), level)                            # [M]
            q = self.codebooks[level][idx]                                    # [M, E]
            zv, qv = (z, q) if flat_valid is None else (z[flat_valid], q[flat_valid])
            cb_loss = cb_loss + F.mse_loss(qv, zv.detach())
            commit = commit + F.mse_loss(zv, qv.detach())
            q_st = z + (q - z).detach()                                       # straight-through
            out = self.proj_out[level](q_st.reshape(*x.shape[:2], c.code_dim))
            recon = recon + out
            residual = residual - out
            codes.append(idx.reshape(x.shape[:2]))
            if self.training:
                self._track(level, idx if flat_valid is None else idx[flat_valid], zv.detach())
        err = (recon - x).pow(2).mean(-1)                                     # [B, T]
        recon_loss = err.mean() if valid is None else err[valid].mean()
        loss = recon_loss + cb_loss + c.commitment * commit
        return {"codes": torch.stack(codes, -1), "recon": recon * self.std + self.mean, "loss": loss,
                "recon_loss": recon_loss.detach(), "codebook_loss": cb_loss.detach(),
                "commitment_loss": commit.detach(),
                "relative_error": (recon_loss / x.pow(2).mean().clamp_min(1e-8)).detach()}

    @torch.no_grad()
    def tokenize(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` [B, T, D_in] → codes [B, T, N] (long); no statistics are updated."""
        c = self.config
        residual = (x.float() - self.mean) / self.std
        codes = []
        for level in range(c.num_levels):
            z = self.proj_in[level](residual).reshape(-1, c.code_dim)
            idx = self._nearest(z, level)
            residual = residual - self.proj_out[level](self.codebooks[level][idx].reshape(*x.shape[:2], -1))
            codes.append(idx.reshape(x.shape[:2]))
        return torch.stack(codes, -1)

    @torch.no_grad()
    def _track(self, level: int, idx: torch.Tensor, z: torch.Tensor) -> None:
        hits = torch.bincount(idx, minlength=self.config.codebook_size).to(self.usage.dtype)
        self.usage[level] += hits
        self.idle[level] += 1
        self.idle[level][hits > 0] = 0
        dead = (self.idle[level] >= self.config.dead_after).nonzero().flatten()
        if len(dead) and len(z):
            pick = torch.randint(0, len(z), (len(dead),), device=z.device)
            self.codebooks.data[level, dead] = z[pick].to(self.codebooks.dtype)
            self.idle[level, dead] = 0

    @torch.no_grad()
    def init_codebooks(self, x: torch.Tensor) -> None:
        """Initialise each level's codes from projected residuals of a sample ``x`` [B, T, D_in]."""
        c = self.config
        residual = ((x.float() - self.mean) / self.std).reshape(-1, c.input_dim)
        for level in range(c.num_levels):
            # decoder = least-squares inverse of the encoder: reconstruction starts as a projection
            # onto the code space (relative error < 1), not as added noise
            w_in, b_in = self.proj_in[level].weight, self.proj_in[level].bias   # [E, D_in], [E]
            self.proj_out[level].weight.copy_(torch.linalg.pinv(w_in))         # [D_in, E]
            self.proj_out[level].bias.copy_(-(self.proj_out[level].weight @ b_in))
            z = self.proj_in[level](residual)
            pick = torch.randint(0, len(z), (c.codebook_size,), device=z.device)
            self.codebooks.data[level] = z[pick]
            idx = self._nearest(z, level)
            residual = residual - self.proj_out[level](self.codebooks[level][idx])

    def usage_fraction(self) -> torch.Tensor:
        """[N]: fraction of each level's codes chosen at least once since the last reset."""
        return (self.usage > 0).float().mean(-1)

    def perplexity(self) -> torch.Tensor:
        """[N]: exp(entropy) of each level's code distribution since the last reset (max K)."""
        p = self.usage / self.usage.sum(-1, keepdim=True).clamp_min(1)
        return torch.exp(-(p * p.clamp_min(1e-12).log()).sum(-1))

    def reset_usage(self) -> None:
        self.usage.zero_()

    def fit_step(self, x: torch.Tensor, first: bool = False) -> dict:
        """One training forward on frames ``x`` [B, T, D_in] (both stage-1 drivers use it); ``first``: the
        first batch of a fit, which sets the input statistics and seeds the codebooks."""
        if first:
            self.set_statistics(x)
            self.init_codebooks(x)
        return self(x)

    # ---- file I/O ------------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write ``<path>.safetensors`` + ``<path>.json``; returns the safetensors path."""
        from safetensors.torch import save_file
        path = Path(path).with_suffix("")
        sd = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        meta = {"format_version": FORMAT_VERSION, "class": "MelRVQ", "config": asdict(self.config)}
        write_text(str(path) + ".json", json.dumps(meta, indent=2))  # description first: a weights file
        with atomic_path(str(path) + ".safetensors") as tmp:           # is never there without it
            save_file(sd, str(tmp))
        return Path(str(path) + ".safetensors")

    @classmethod
    def load(cls, path: str | Path) -> "MelRVQ":
        from safetensors.torch import load_file
        base = Path(path).with_suffix("")
        meta_path = Path(str(base) + ".json")
        if not meta_path.is_file():
            raise CheckpointError(f"tokenizer description {str(meta_path)!r} not found (a tokenizer is saved "
                                  "as NAME.safetensors + NAME.json)")
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if meta.get("format_version") != FORMAT_VERSION or meta.get("class") != "MelRVQ":
            raise CheckpointError(f"{str(meta_path)!r}: unknown tokenizer format "
                                  f"{meta.get('class')!r} v{meta.get('format_version')} (expected MelRVQ "
                                  f"v{FORMAT_VERSION})")
        model = cls(TokenizerConfig(**meta["config"]))
        model.load_state_dict(load_file(str(base) + ".safetensors"))
        return model.eval()
