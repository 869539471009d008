"""Architecture of the embedded tiny model: a real Stable Diffusion 1.x layout at small size.

64x64 RGB <-> 16x16x4 latents (AutoencoderKL, three blocks), a CLIP text encoder with the
real CLIP BPE tokenizer (hidden 64, 2 layers), and a UNet2DConditionModel (48/96 channels,
cross-attention at 8x8 only). Sizes were chosen by a timing trial (docs/tiny-model.md, "Architecture").
Only the worker and training code import this module (it imports torch and diffusers).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

IMAGE_SIZE = 64
LATENT_SIZE = 16
# SD 1.x training noise schedule: the samplers and schedulers users pick expect these betas.
SCHEDULE = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
}


@dataclass(frozen=True)
class Architecture:
    vae_channels: tuple[int, ...] = (16, 32, 64)
    vae_groups: int = 8
    unet_channels: tuple[int, ...] = (48, 96)
    unet_groups: int = 8
    unet_head_dim: int = 4
    text_hidden: int = 64
    text_layers: int = 2
    text_heads: int = 4
    down_blocks: tuple[str, ...] = ("DownBlock2D", "CrossAttnDownBlock2D")
    up_blocks: tuple[str, ...] = ("CrossAttnUpBlock2D", "UpBlock2D")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def unet_levels(channels: tuple[int, ...]) -> dict[str, tuple[Any, ...]]:
    """UNet widths and blocks for len(channels) resolutions (16x16, 8x8, 4x4, ...): cross-attention at
    every level but the first, where it costs the most (docs/tiny-model.md, "Architecture")."""
    n = len(channels)
    return {
        "unet_channels": channels,
        "down_blocks": ("DownBlock2D",) + ("CrossAttnDownBlock2D",) * (n - 1),
        "up_blocks": ("CrossAttnUpBlock2D",) * (n - 1) + ("UpBlock2D",),
    }


def build_vae(a: Architecture) -> Any:
    from diffusers import AutoencoderKL

    n = len(a.vae_channels)
    return AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=a.vae_channels,
        down_block_types=("DownEncoderBlock2D",) * n, up_block_types=("UpDecoderBlock2D",) * n,
        layers_per_block=1, norm_num_groups=a.vae_groups, sample_size=IMAGE_SIZE,
        mid_block_add_attention=False,
    )  # fmt: skip


def build_unet(a: Architecture) -> Any:
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        sample_size=LATENT_SIZE, in_channels=4, out_channels=4, block_out_channels=a.unet_channels,
        down_block_types=a.down_blocks, up_block_types=a.up_blocks, layers_per_block=1,
        cross_attention_dim=a.text_hidden, attention_head_dim=a.unet_head_dim,
        norm_num_groups=a.unet_groups,
    )  # fmt: skip


def build_text(a: Architecture) -> Any:
    from transformers import CLIPTextConfig, CLIPTextModel

    return CLIPTextModel(CLIPTextConfig(
        vocab_size=49408, hidden_size=a.text_hidden, intermediate_size=4 * a.text_hidden,
        num_hidden_layers=a.text_layers, num_attention_heads=a.text_heads,
        max_position_embeddings=77, projection_dim=a.text_hidden, pad_token_id=49407,
        bos_token_id=49406, eos_token_id=49407,
    ))  # fmt: skip


def load_tokenizer() -> Any:
    from transformers import CLIPTokenizer

    from steady.models.shipped import tokenizer_dir

    return CLIPTokenizer.from_pretrained(tokenizer_dir())
