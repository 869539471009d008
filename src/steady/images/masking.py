"""A1111's img2img and inpainting image work, in PIL and numpy (torch-free): what happens to the
init image and the mask before the model sees them, and to the result after.

    prepared = prepare(init, mask, source, width, height)   # resized, masked, cropped, filled
    ...the worker paints prepared.image where prepared.mask is white...
    final = finish(painted, prepared)                        # pasted back, the original laid over

As A1111 defines them (its processing.StableDiffusionProcessingImg2Img.init, images.resize_image,
masking.get_crop_region_v2 / expand_crop_region / fill, and apply_overlay):

- resize modes: just resize (stretch), crop and resize (fill the size, crop the excess), resize
  and fill (fit inside, stretch the edges into the gap), latent upscale (the image at its own size;
  its latents are resized, in the worker).
- the mask: white = repaint; alpha is the mask when it has any; thresholded at 128 ("mask round"),
  inverted on request, then blurred by a Gaussian of sigma ``mask_blur`` (cv2's kernel size
  2*int(2.5*blur+0.5)+1, border reflected).
- outside the mask, the result IS the original: the blurred mask, doubled and clipped, is the
  alpha with which the original is laid over the painted image. Only the blur band mixes the two.
- only masked: the mask's bounding box plus padding, widened to the size's aspect ratio, is cut
  from the full-size image, painted at the full size, and pasted back; the result has the init
  image's size.
- masked content: fill (the masked area first filled from its surroundings by repeated blurs),
  original, latent noise and latent nothing (in the worker, on the latents).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageFilter, ImageOps

RESIZE_INDEX = {"just resize": 0, "crop and resize": 1, "resize and fill": 2, "latent upscale": 3}


@dataclass
class Prepared:
    """What the worker paints on (PIL images), and how its result goes back."""

    image: Any  # RGB, at the processing size (at the init image's size for latent upscale)
    mask: Any = None  # L, at the processing size: where the model repaints (None: plain img2img)
    overlay: Any = None  # RGBA: the original, transparent where it is repainted (None: no overlay)
    paste_to: tuple[int, int, int, int] | None = None  # only masked: (x, y, w, h) in the full image


def resize_image(mode: int, image: Any, width: int, height: int) -> Any:
    """A1111's images.resize_image (Lanczos): 0 just resize, 1 crop and resize, 2 (and 3) resize and fill."""
    if mode == 0:
        return image.resize((width, height), resample=Image.LANCZOS)
    ratio, src_ratio = width / height, image.width / image.height
    if mode == 1:
        src_w = width if ratio > src_ratio else image.width * height // image.height
        src_h = height if ratio <= src_ratio else image.height * width // image.width
    else:
        src_w = width if ratio < src_ratio else image.width * height // image.height
        src_h = height if ratio >= src_ratio else image.height * width // image.width
    resized = image.resize((src_w, src_h), resample=Image.LANCZOS)
    out = Image.new(image.mode, (width, height))
    out.paste(resized, box=(width // 2 - src_w // 2, height // 2 - src_h // 2))
    if mode == 1:
        return out
    if ratio < src_ratio:
        fill = height // 2 - src_h // 2
        if fill > 0:
            out.paste(resized.resize((width, fill), box=(0, 0, width, 0)), box=(0, 0))
            out.paste(resized.resize((width, fill), box=(0, resized.height, width, resized.height)), box=(0, fill + src_h))
    elif ratio > src_ratio:
        fill = width // 2 - src_w // 2
        if fill > 0:
            out.paste(resized.resize((fill, height), box=(0, 0, 0, height)), box=(0, 0))
            out.paste(resized.resize((fill, height), box=(resized.width, 0, resized.width, height)), box=(fill + src_w, 0))
    return out


def binary_mask(mask: Any) -> Any:
    """A1111's create_binary_mask: the alpha channel when the mask has a transparent pixel, else
    its grey levels; thresholded at 128."""
    if mask.mode == "RGBA" and mask.getextrema()[-1] != (255, 255):
        mask = mask.split()[-1].convert("L")
    else:
        mask = mask.convert("L")
    return mask.point(lambda x: 255 if x > 128 else 0)


def gaussian_blur(mask: Any, sigma: int) -> Any:
    """cv2.GaussianBlur(mask, (k, 1), sigma) then (1, k), as A1111 blurs its mask: k = 2*int(2.5*sigma+0.5)+1,
    borders reflected (cv2's BORDER_REFLECT_101), rounded to 8 bits."""
    if sigma <= 0:
        return mask
    k = 2 * int(2.5 * sigma + 0.5) + 1
    x = np.arange(k, dtype=np.float64) - (k - 1) / 2
    kernel = np.exp(-(x**2) / (2.0 * sigma * sigma))
    kernel /= kernel.sum()
    a = np.asarray(mask, dtype=np.float64)
    r = k // 2
    for axis in (1, 0):
        width = [(0, 0), (0, 0)]
        width[axis] = (r, r)
        if a.shape[axis] <= r:  # numpy's reflect needs the pad smaller than the side: repeat the edge instead
            padded = np.pad(a, width, mode="edge")
        else:
            padded = np.pad(a, width, mode="reflect")
        a = sum(kernel[i] * np.take(padded, range(i, i + a.shape[axis]), axis=axis) for i in range(k))
    return Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8), "L")


def crop_region(mask: Any, pad: int) -> tuple[int, int, int, int] | None:
    """A1111's get_crop_region_v2: the mask's bounding box plus ``pad``, within the image (None: a blank mask)."""
    box = mask.getbbox()
    if not box:
        return None
    x1, y1, x2, y2 = box
    return (max(x1 - pad, 0), max(y1 - pad, 0), min(x2 + pad, mask.width), min(y2 + pad, mask.height)) if pad else box


def expand_crop_region(region: tuple[int, int, int, int], width: int, height: int, image_width: int,
                       image_height: int) -> tuple[int, int, int, int]:  # fmt: skip
    """A1111's expand_crop_region: ``region`` widened to the aspect ratio of width x height."""
    x1, y1, x2, y2 = region
    if (x2 - x1) / (y2 - y1) > width / height:
        diff = int((x2 - x1) / (width / height) - (y2 - y1))
        y1, y2 = y1 - diff // 2, y2 + diff - diff // 2
        if y2 >= image_height:
            y1, y2 = y1 - (y2 - image_height), image_height
        if y1 < 0:
            y1, y2 = 0, y2 - y1
        y2 = min(y2, image_height)
    else:
        diff = int((y2 - y1) * (width / height) - (x2 - x1))
        x1, x2 = x1 - diff // 2, x2 + diff - diff // 2
        if x2 >= image_width:
            x1, x2 = x1 - (x2 - image_width), image_width
        if x1 < 0:
            x1, x2 = 0, x2 - x1
        x2 = min(x2, image_width)
    return x1, y1, x2, y2


def fill(image: Any, mask: Any) -> Any:
    """A1111's masking.fill ("Masked content: fill"): the masked area painted from the colours
    around it by ever finer blurs."""
    out = Image.new("RGBA", image.size)
    kept = Image.new("RGBa", image.size)
    kept.paste(image.convert("RGBA").convert("RGBa"), mask=ImageOps.invert(mask.convert("L")))
    for radius, repeats in ((256, 1), (64, 1), (16, 2), (4, 4), (2, 2), (0, 1)):
        blurred = kept.filter(ImageFilter.GaussianBlur(radius)).convert("RGBA")
        for _ in range(repeats):
            out.alpha_composite(blurred)
    return out.convert("RGB")


def prepare(init: Any, mask: Any, source: Any, width: int, height: int) -> Prepared:
    """The init image (and mask) as the model is given them; ``source``: a steady.params.Source."""
    mode = RESIZE_INDEX[source.resize_mode]
    image = _flatten(init)
    if mask is None:
        return Prepared(image if mode == 3 else resize_image(mode, image, width, height))
    mask = binary_mask(mask)
    if source.invert_mask:
        mask = ImageOps.invert(mask)
    mask = gaussian_blur(mask, source.mask_blur)
    region = None
    if source.only_masked:
        if mask.size != image.size:  # the crop is cut in the init image's coordinates
            mask = mask.resize(image.size, resample=Image.LANCZOS)
        overlay_mask = mask
        region = crop_region(mask, source.only_masked_padding)
        if region is not None:
            region = expand_crop_region(region, width, height, mask.width, mask.height)
            model_mask = resize_image(2, mask.crop(region), width, height)
    if region is None:
        # The image and the mask both fitted to the size (latent upscale: the mask like resize and fill).
        image = resize_image(0 if mode == 3 else mode, image, width, height)
        model_mask = resize_image(mode, mask, width, height)
        overlay_mask = Image.fromarray(np.clip(np.asarray(model_mask, dtype=np.float32) * 2, 0, 255).astype(np.uint8))
    if overlay_mask.size != image.size:
        overlay_mask = resize_image(mode, overlay_mask, image.width, image.height)
    overlay = Image.new("RGBa", image.size)
    overlay.paste(image.convert("RGBA").convert("RGBa"), mask=ImageOps.invert(overlay_mask.convert("L")))
    paste_to = None
    if region is not None:
        x1, y1, x2, y2 = region
        paste_to = (x1, y1, x2 - x1, y2 - y1)
        image = resize_image(2, image.crop(region), width, height)
    if source.masked_content == "fill":
        image = fill(image, model_mask)
    return Prepared(image, model_mask, overlay.convert("RGBA"), paste_to)


def finish(painted: Any, prepared: Prepared) -> Any:
    """A1111's apply_overlay: the painted crop pasted back (only masked), then the original laid over."""
    if prepared.overlay is None:
        return painted
    if prepared.paste_to is not None:
        x, y, w, h = prepared.paste_to
        base = Image.new("RGBA", prepared.overlay.size)
        base.paste(resize_image(1, painted, w, h), (x, y))
        painted = base
    elif painted.size != prepared.overlay.size:
        painted = painted.resize(prepared.overlay.size, resample=Image.LANCZOS)
    out = painted.convert("RGBA")
    out.alpha_composite(prepared.overlay)
    return out.convert("RGB")


def _flatten(image: Any) -> Any:
    """A1111's images.flatten: a transparent image laid over its img2img background (white)."""
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        background.alpha_composite(rgba)
        return background.convert("RGB")
    return image.convert("RGB")
