"""A cheap preview of the current latent: a linear map from latent channels to RGB.

No extra weights and no VAE decode per preview: each latent pixel becomes one RGB pixel
through a 3×C matrix plus a bias (the "approx cheap" preview of A1111 and ComfyUI's latent
previews). SD 1.x/2.x and SDXL latents use the published factors. Any other VAE (the embedded
model's) has no published map: small latents (up to DECODE_MAX_PIXELS) are simply decoded, which
for the embedded model's 16x16 latents costs milliseconds and is exact (a linear map fitted to
its VAE tracked the decoded image only for some images: correlation 0.92 on one, 0.06 on another,
because a one-group GroupNorm decoder is far from linear); larger ones use a map fitted once per
pipeline by least squares from one small decode of random latents.

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
DECODE_MAX_PIXELS = 32 * 32  # latents up to this size are decoded for the preview (no published map)


@dataclass
class PreviewMaker:
    factors: torch.Tensor  # (C, 3)
    bias: torch.Tensor  # (3,)
    vae: Any = None  # set where there is no published map: small latents are decoded instead

    @classmethod
    def for_pipeline(cls, pipe: Any, arch: str) -> PreviewMaker:
        channels = int(pipe.unet.config.in_channels)
        if channels == 4 and arch in ("sd1", "sd2"):
            return cls(torch.tensor(SD1_FACTORS), torch.tensor(SD1_BIAS))
        if channels == 4 and arch == "sdxl":
            return cls(torch.tensor(SDXL_FACTORS), torch.tensor(SDXL_BIAS))
        fitted = cls.fit(pipe.vae, channels)
        return cls(fitted.factors, fitted.bias, vae=pipe.vae)

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
        """(1, C, h, w) latents -> (h, w, 3) uint8 numpy array, or the decoded image (H, W, 3)
        where the VAE is decoded (no published map, small latents)."""
        if self.vae is not None and latents.shape[-1] * latents.shape[-2] <= DECODE_MAX_PIXELS:
            param = next(self.vae.parameters())
            scaling = float(getattr(self.vae.config, "scaling_factor", 1.0) or 1.0)
            with torch.inference_mode():
                image = self.vae.decode(latents[:1].to(param.device, param.dtype) / scaling).sample[0]
            return ((image.float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).numpy()
        lat = latents[0].detach().float().cpu()
        rgb = torch.einsum("chw,cr->hwr", lat, self.factors) + self.bias
        return ((rgb.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy()

    def png(self, latents: torch.Tensor) -> bytes:
        from PIL import Image

        buffer = io.BytesIO()
        Image.fromarray(self.rgb(latents)).save(buffer, format="PNG", compress_level=1)
        return buffer.getvalue()
