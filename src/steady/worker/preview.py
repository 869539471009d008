"""A cheap preview of the current latent: a linear map from latent channels to RGB.

No extra weights and no VAE decode per preview: each latent pixel becomes one RGB pixel
through a 3×C matrix plus a bias (the "approx cheap" preview of A1111 and ComfyUI's latent
previews). SD 1.x/2.x and SDXL latents use the published factors; for any other VAE (the
embedded model's) the map is fitted once per loaded pipeline by least squares from one small
decode of random latents, which costs milliseconds.

    maker = PreviewMaker.for_pipeline(pipe, arch="sd1")
    png_bytes = maker.png(latents)          # latents: (1, C, h, w) tensor, as the sampler holds it
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import torch

# Latent -> RGB in [-1, 1], applied to the scaled latents the sampler works on
# (ComfyUI comfy/latent_formats.py, the same numbers A1111's "Approx cheap" uses).
SD1_FACTORS = (
    (0.3512, 0.2297, 0.3227),
    (0.3250, 0.4974, 0.2350),
    (-0.2829, 0.1762, 0.2721),
    (-0.2120, -0.2616, -0.7177),
)
SD1_BIAS = (0.0, 0.0, 0.0)
SDXL_FACTORS = (
    (0.3651, 0.4232, 0.4341),
    (-0.2533, -0.0042, 0.1068),
    (0.1076, 0.1111, -0.0362),
    (-0.3165, -0.2492, -0.2188),
)
SDXL_BIAS = (0.1084, -0.0175, -0.0011)
FIT_SIZE = 8  # latent pixels per side of the random latents the map is fitted on


@dataclass
class PreviewMaker:
    factors: torch.Tensor  # (C, 3)
    bias: torch.Tensor  # (3,)

    @classmethod
    def for_pipeline(cls, pipe: Any, arch: str) -> PreviewMaker:
        channels = int(pipe.unet.config.in_channels)
        if channels == 4 and arch in ("sd1", "sd2"):
            return cls(torch.tensor(SD1_FACTORS), torch.tensor(SD1_BIAS))
        if channels == 4 and arch == "sdxl":
            return cls(torch.tensor(SDXL_FACTORS), torch.tensor(SDXL_BIAS))
        return cls.fit(pipe.vae, channels)

    @classmethod
    def fit(cls, vae: Any, channels: int, seed: int = 0) -> PreviewMaker:
        """Least-squares latent -> RGB map from one decode of random latents."""
        generator = torch.Generator(device="cpu").manual_seed(seed)
        latents = torch.randn((4, channels, FIT_SIZE, FIT_SIZE), generator=generator)
        scaling = float(getattr(vae.config, "scaling_factor", 1.0) or 1.0)
        param = next(vae.parameters())
        with torch.inference_mode():
            image = vae.decode(latents.to(param.device, param.dtype) / scaling).sample.float().cpu()
        pooled = torch.nn.functional.adaptive_avg_pool2d(image, FIT_SIZE)  # (4, 3, 8, 8)
        x = latents.permute(0, 2, 3, 1).reshape(-1, channels)
        x = torch.cat([x, torch.ones(x.shape[0], 1)], dim=1)
        y = pooled.permute(0, 2, 3, 1).reshape(-1, 3)
        solution = torch.linalg.lstsq(x, y).solution  # (C + 1, 3)
        return cls(solution[:channels].contiguous(), solution[channels].contiguous())

    def rgb(self, latents: torch.Tensor) -> Any:
        """(1, C, h, w) latents -> (h, w, 3) uint8 numpy array."""
        lat = latents[0].detach().float().cpu()
        rgb = torch.einsum("chw,cr->hwr", lat, self.factors) + self.bias
        return ((rgb.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy()

    def png(self, latents: torch.Tensor) -> bytes:
        from PIL import Image

        buffer = io.BytesIO()
        Image.fromarray(self.rgb(latents)).save(buffer, format="PNG", compress_level=1)
        return buffer.getvalue()
