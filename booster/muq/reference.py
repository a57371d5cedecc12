"""A reference MuQ assembled from the components the official ``muq`` package uses.

transformers' ``Wav2Vec2ConformerEncoder`` (``pip install "transformers<5"``, part of the ``test`` extra),
torchaudio's ``MelSpectrogram`` + ``AmplitudeToDB`` front end, and the official Res2d subsampling computed
without BatchNorm folding. It loads the same official state dict as :class:`booster.MuQ` and returns the
same 13 hidden states; tests and ``benchmarks/extract.py`` compare against it. Not used at run time.
"""
from __future__ import annotations

import torch
import torchaudio
from torch import nn

from .config import N_FFT, SAMPLE_RATE, MuQConfig
from .conv import Conv2dSubsampling

# Keys of the official state dict that the reference does not hold (training-only heads).
_DROP = ("linear.", "cls_token", "quantizer_", "rvq.", "recon_proj.")


def _encoder_cls():
    try:
        from transformers.models.wav2vec2_conformer.modeling_wav2vec2_conformer import (
            Wav2Vec2ConformerConfig, Wav2Vec2ConformerEncoder)
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError('the reference MuQ needs transformers<5: pip install "transformers<5"') from e
    return Wav2Vec2ConformerConfig, Wav2Vec2ConformerEncoder


class ReferenceMuQ(nn.Module):
    def __init__(self, config: MuQConfig):
        super().__init__()
        cfg_cls, enc_cls = _encoder_cls()
        self.config = config
        self.mel = torchaudio.transforms.MelSpectrogram(sample_rate=SAMPLE_RATE, n_fft=N_FFT,
                                                        hop_length=config.hop_length, n_mels=config.n_mels)
        self.to_db = torchaudio.transforms.AmplitudeToDB()
        self.conv = Conv2dSubsampling(1, config.conv_dim, config.encoder_dim, strides=config.time_strides,
                                      n_bands=config.n_mels)
        self.conv.optimize = False  # the plain official computation: no frozen graph, no tiling, no folding
        self.conv.tile = 0
        for block in self.conv.conv:
            block.fold = False
        known = set(cfg_cls().to_dict())
        w2v2 = {k: v for k, v in config.w2v2_config.items() if k in known}
        w2v2.update(hidden_size=config.encoder_dim, num_hidden_layers=config.encoder_depth,
                    num_attention_heads=config.num_heads, intermediate_size=config.ffn_dim,
                    conv_depthwise_kernel_size=config.kernel_size, hidden_act=config.activation,
                    position_embeddings_type="rotary", rotary_embedding_base=config.rotary_base,
                    layer_norm_eps=config.layer_norm_eps)
        self.conformer = enc_cls(cfg_cls(**w2v2))
        self.eval()

    def load_official(self, sd: dict[str, torch.Tensor]) -> None:
        sd = {k[len("model."):] if k.startswith("model.") else k: v for k, v in sd.items()}
        sd = {k: v for k, v in sd.items() if not k.startswith(_DROP)}
        own = self.state_dict()
        renamed = {}
        for k, v in sd.items():  # accept either weight-norm naming for pos_conv_embed
            if k not in own:
                k = (k.replace("weight_g", "parametrizations.weight.original0")
                      .replace("weight_v", "parametrizations.weight.original1"))
                if k not in own:
                    k = (k.replace("parametrizations.weight.original0", "weight_g")
                          .replace("parametrizations.weight.original1", "weight_v"))
            renamed[k] = v
        unused = ("mel.", "to_db.", "conformer.pos_conv_embed.", "conformer.embed_positions.")
        renamed.update({k: v for k, v in own.items() if k.startswith(unused) and k not in renamed})
        self.load_state_dict(renamed, strict=True)

    @torch.no_grad()
    def forward(self, wav: torch.Tensor, attention_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        """``wav`` ``[B, S]`` 24 kHz → tuple of depth+1 hidden states ``[B, T, D]``."""
        mel = self.to_db(self.mel(wav.float()))[..., :-1]
        mel = (mel - self.config.mel_mean) / self.config.mel_std
        x = self.conv(mel)
        if attention_mask is not None:
            attention_mask = attention_mask.bool()
            skip = int(attention_mask.size(-1) / x.size(1))
            attention_mask = attention_mask[:, ::skip][:, :x.size(1)]
        return self.conformer(x, attention_mask=attention_mask, output_hidden_states=True).hidden_states
