"""Write MuQ checkpoints in the official layout (config.json + model.safetensors / pytorch_model.bin).

The weights come from :class:`booster.muq.reference.ReferenceMuQ` (transformers' conformer), randomised
so that every tensor matters (BatchNorm statistics, LayerNorm scales), plus the training-only tensors the
official state dict carries (codebook head, cls token, random quantiser or Mel-RVQ with weight norm).
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from booster.muq.config import MuQConfig

# The w2v2_config of the released checkpoint (transformers' Wav2Vec2ConformerConfig fields).
W2V2_OFFICIAL = {
    "activation_dropout": 0.1, "adapter_kernel_size": 3, "adapter_stride": 2, "add_adapter": False,
    "apply_spec_augment": True, "architectures": ["Wav2Vec2ConformerForCTC"], "attention_dropout": 0.1,
    "bos_token_id": 1, "classifier_proj_size": 256, "codevector_dim": 768, "conformer_conv_dropout": 0.1,
    "contrastive_logits_temperature": 0.1, "conv_bias": True, "conv_depthwise_kernel_size": 31,
    "conv_dim": [512] * 7, "conv_kernel": [10, 3, 3, 3, 3, 2, 2], "conv_stride": [5, 2, 2, 2, 2, 2, 2],
    "ctc_loss_reduction": "sum", "ctc_zero_infinity": False, "diversity_loss_weight": 0.1,
    "do_stable_layer_norm": True, "eos_token_id": 2, "feat_extract_activation": "gelu",
    "feat_extract_dropout": 0.0, "feat_extract_norm": "layer", "feat_proj_dropout": 0.1,
    "feat_quantizer_dropout": 0.0, "final_dropout": 0.1, "gradient_checkpointing": False,
    "hidden_act": "swish", "hidden_dropout": 0.1, "hidden_dropout_prob": 0.1, "hidden_size": 1024,
    "initializer_range": 0.02, "intermediate_size": 4096, "layer_norm_eps": 1e-5, "layerdrop": 0.0,
    "mask_feature_length": 10, "mask_feature_min_masks": 0, "mask_feature_prob": 0.0,
    "mask_time_length": 10, "mask_time_min_masks": 2, "mask_time_prob": 0.05, "max_source_positions": 5000,
    "model_type": "wav2vec2-conformer", "num_adapter_layers": 3, "num_attention_heads": 16,
    "num_codevector_groups": 2, "num_codevectors_per_group": 320, "num_conv_pos_embedding_groups": 16,
    "num_conv_pos_embeddings": 128, "num_feat_extract_layers": 7, "num_hidden_layers": 24,
    "num_negatives": 100, "output_hidden_size": 1024, "pad_token_id": 0, "position_embeddings_type": "rotary",
    "proj_codevector_dim": 768, "rotary_embedding_base": 10000, "tdnn_dilation": [1, 2, 3, 1, 1],
    "tdnn_dim": [512, 512, 512, 512, 1500], "tdnn_kernel": [5, 3, 3, 1, 1], "torch_dtype": "float32",
    "transformers_version": "4.19.0.dev0", "use_weighted_layer_sum": False, "vocab_size": 32,
    "xvector_output_dim": 512,
}


def reduced_config(depth: int = 3, dim: int = 64, heads: int = 4, ffn: int = 128, conv_dim: int = 16,
                   kernel: int = 7) -> MuQConfig:
    """The official config with a reduced encoder (same front end and layer structure)."""
    w2v2 = dict(W2V2_OFFICIAL, conv_depthwise_kernel_size=kernel, num_attention_heads=heads,
                intermediate_size=ffn, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=heads,
                hidden_size=dim, num_hidden_layers=depth)
    return MuQConfig(conv_dim=conv_dim, encoder_dim=dim, encoder_depth=depth, w2v2_config=w2v2,
                     use_rvq_target=True).validate()


def randomise_(module: torch.nn.Module, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.dim() == 1 and "bias" not in name:
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=gen))
            elif p.dim() == 1:
                p.copy_(0.05 * torch.randn(p.shape, generator=gen))
            else:
                p.copy_(torch.randn(p.shape, generator=gen) / p[0].numel() ** 0.5)
        for name, b in module.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(0.1 * torch.randn(b.shape, generator=gen))
            elif name.endswith("running_var"):
                b.copy_(0.5 + torch.rand(b.shape, generator=gen))


def official_state_dict(config: MuQConfig, seed: int = 0, weight_norm: str = "parametrizations",
                        rvq: bool = True) -> dict[str, torch.Tensor]:
    """A full official-style state dict (``model.`` prefix, training-only tensors included)."""
    from booster.muq.reference import ReferenceMuQ

    ref = ReferenceMuQ(config)
    randomise_(ref, seed)
    sd = {}
    for k, v in ref.state_dict().items():
        if k.startswith("mel.") or k.startswith("to_db."):
            continue
        if weight_norm == "weight_g":
            k = (k.replace("parametrizations.weight.original0", "weight_g")
                  .replace("parametrizations.weight.original1", "weight_v"))
        sd[f"model.{k}"] = v.clone()
    gen = torch.Generator().manual_seed(seed + 1)
    d = config.encoder_dim
    sd["model.linear.weight"] = torch.randn(config.codebook_size, d, generator=gen)
    sd["model.linear.bias"] = torch.zeros(config.codebook_size)
    sd["model.cls_token"] = torch.randn(d, generator=gen)
    if rvq:  # Mel-RVQ tokeniser with weight-normed 1x1 convolutions
        g, v = (("weight_g", "weight_v") if weight_norm == "weight_g"
                else ("parametrizations.weight.original0", "parametrizations.weight.original1"))
        for i in range(2):
            base = f"model.rvq.quantizers.{i}"
            sd[f"{base}.in_proj.{g}"] = torch.rand(16, 1, 1)
            sd[f"{base}.in_proj.{v}"] = torch.randn(16, 512, 1, generator=gen)
            sd[f"{base}.in_proj.bias"] = torch.zeros(16)
            sd[f"{base}.codebook.weight"] = torch.randn(1024, 16, generator=gen)
    else:
        sd["model.quantizer_melspec_2048.random_projection"] = torch.randn(512, 16, generator=gen)
        sd["model.quantizer_melspec_2048.codebook"] = torch.randn(4096, 16, generator=gen)
    return sd


def write_checkpoint(directory: Path, config: MuQConfig, sd: dict[str, torch.Tensor],
                     fmt: str = "safetensors") -> Path:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    d = config.to_dict()
    with open(directory / "config.json", "w") as f:
        json.dump(d, f, indent=2)
    if fmt == "safetensors":
        from safetensors.torch import save_file
        save_file({k: v.contiguous() for k, v in sd.items()}, str(directory / "model.safetensors"))
    else:
        torch.save(sd, directory / "pytorch_model.bin")
    return directory
