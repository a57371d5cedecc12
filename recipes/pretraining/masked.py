"""Stage 2 of MuQ pretraining: masked token prediction with the MuQ encoder.

The waveform is cut into blocks of ``mask_hop`` seconds (0.4 s = 10 frames at 25 Hz); each block is
masked with probability ``mask_prob`` (paper: 0.6) and its samples are replaced by Gaussian noise. The
encoder sees the masked audio; per-level linear heads on its last hidden state predict the tokenizer's
codes of the *unmasked* audio; cross-entropy is taken on masked frames only. Optional: a CQT
reconstruction head (nnAudio, MERT-style musical target) with a configurable weight (default 0).

Training-only parts (heads, tokenizer, CQT) live in :class:`MaskedPredictor`, apart from the encoder
(``predictor.encoder`` is a plain :class:`booster.MuQ`). Shapes: B batch, S samples, T frames (25 Hz),
D hidden size, N levels, K codebook size, F CQT bins.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...muq import MuQ
from .tokenizer import MelRVQ, stack_frames


def block_mask(batch: int, num_frames: int, frames_per_block: int, prob: float, device=None,
               generator: torch.Generator | None = None) -> torch.Tensor:
    """→ ``[B, T]`` bool: whole blocks of ``frames_per_block`` frames masked with probability ``prob``.
    Every row masks at least one block (a row without masked frames has no loss)."""
    blocks = -(-num_frames // frames_per_block)
    pick = torch.rand(batch, blocks, generator=generator, device="cpu" if generator else device) < prob
    empty = ~pick.any(1)
    if empty.any():
        pick[empty, torch.randint(0, blocks, (int(empty.sum()),), generator=generator,
                                  device=pick.device)] = True
    return pick.to(device).repeat_interleave(frames_per_block, 1)[:, :num_frames]


def apply_mask(wav: torch.Tensor, frame_mask: torch.Tensor, samples_per_frame: int,
               noise_std: float = 0.1) -> torch.Tensor:
    """Replace the samples of masked frames in ``wav`` [B, S] by N(0, noise_std²) noise."""
    b, s = wav.shape
    sample_mask = frame_mask.repeat_interleave(samples_per_frame, 1)[:, :s]
    if sample_mask.shape[1] < s:
        sample_mask = F.pad(sample_mask, (0, s - sample_mask.shape[1]))
    noise = torch.randn_like(wav) * noise_std
    return torch.where(sample_mask, noise, wav)


class MaskedPredictor(nn.Module):
    """MuQ encoder + per-level heads (+ optional CQT head). ``forward(wav [B, S])`` → loss dict."""

    def __init__(self, encoder: MuQ, tokenizer: MelRVQ, *, mask_prob: float | None = None,
                 mask_hop: float | None = None, noise_std: float = 0.1, cqt_weight: float = 0.0,
                 cqt_bins: int = 84, teacher: MuQ | None = None, teacher_layer: int | None = None):
        super().__init__()
        self.encoder = encoder
        cfg = encoder.config
        self.mask_prob = cfg.mask_prob if mask_prob is None else mask_prob
        self.mask_hop = cfg.mask_hop if mask_hop is None else mask_hop
        self.noise_std = noise_std
        n, k = tokenizer.config.num_levels, tokenizer.config.codebook_size
        self.heads = nn.ModuleList(nn.Linear(cfg.encoder_dim, k) for _ in range(n))
        # The tokenizer (and an iteration teacher) are fixed target makers: not trained, not in the
        # encoder file; kept out of this module's parameters.
        object.__setattr__(self, "tokenizer", tokenizer.eval().requires_grad_(False))
        object.__setattr__(self, "teacher", None if teacher is None else teacher.eval().requires_grad_(False))
        self.teacher_layer = teacher_layer
        self.cqt_weight = float(cqt_weight)
        self.cqt = None
        if self.cqt_weight > 0:
            from nnAudio.features import CQT1992v2
            hop = encoder.samples_per_frame
            self.cqt = CQT1992v2(sr=encoder.sample_rate, hop_length=hop, n_bins=cqt_bins, bins_per_octave=12,
                                 fmin=32.7, output_format="Magnitude", verbose=False)
            self.cqt_head = nn.Linear(cfg.encoder_dim, cqt_bins)

    def _apply(self, fn, *args, **kwargs):
        super()._apply(fn, *args, **kwargs)
        self.tokenizer._apply(fn)
        if self.teacher is not None:
            self.teacher._apply(fn)
        return self

    @torch.no_grad()
    def targets(self, wav: torch.Tensor) -> torch.Tensor:
        """Codes ``[B, T_tok, N]`` of the clean audio ``wav`` [B, S]."""
        if self.teacher is not None:
            hidden = self.teacher.encode(wav, upto=self.teacher_layer, keep=[self.teacher_layer])
            x = hidden[self.teacher_layer]
        else:
            mel = self.encoder.frontend(wav)
            x = stack_frames(mel, self.encoder.config.n_fold)
        with torch.autocast(wav.device.type, enabled=False):
            return self.tokenizer.tokenize(x.float())

    def forward(self, wav: torch.Tensor, generator: torch.Generator | None = None) -> dict:
        """``wav`` [B, S] 24 kHz → {"loss", "ce", "acc" [N], "masked_fraction", optional "cqt_loss"}."""
        assert wav.dim() == 2, f"expected [B, S], got {tuple(wav.shape)}"
        enc = self.encoder
        codes = self.targets(wav)                                            # [B, T_tok, N]
        t = enc.num_frames(wav.shape[-1])
        frames_per_block = max(1, round(self.mask_hop * enc.frame_rate))
        mask = block_mask(wav.shape[0], t, frames_per_block, self.mask_prob, wav.device, generator)
        masked_wav = apply_mask(wav, mask, enc.samples_per_frame, self.noise_std)
        hidden = enc.encode(masked_wav, keep=[enc.num_layers])[enc.num_layers]  # [B, T, D]
        n = min(hidden.shape[1], codes.shape[1])
        hidden, codes, mask = hidden[:, :n], codes[:, :n], mask[:, :n]
        h = hidden[mask]                                                     # [M, D]
        target = codes[mask]                                                 # [M, N]
        ce, acc = [], []
        for level, head in enumerate(self.heads):
            logits = head(h).float()                                         # [M, K]
            ce.append(F.cross_entropy(logits, target[:, level]))
            acc.append((logits.argmax(-1) == target[:, level]).float().mean().detach())
        loss = torch.stack(ce).mean()
        out = {"ce": loss.detach(), "acc": torch.stack(acc), "masked_fraction": mask.float().mean()}
        if self.cqt is not None:
            with torch.autocast(wav.device.type, enabled=False):
                spec = torch.log1p(self.cqt(wav.float())).transpose(1, 2)[:, :n]  # [B, T, F]
            pred = self.cqt_head(hidden[:, :spec.shape[1]]).float()
            m = mask[:, :spec.shape[1]]
            cqt_loss = F.mse_loss(pred[m], spec[m])
            out["cqt_loss"] = cqt_loss.detach()
            loss = loss + self.cqt_weight * cqt_loss
        out["loss"] = loss
        return out

    def training_parts(self) -> dict[str, torch.Tensor]:
        """State of the training-only parts (heads, CQT head), saved apart from the encoder."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith("encoder.")}
