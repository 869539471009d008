"""A request's init image and mask, resolved: found, checked, stored by hash (torch-free).

    found = resolve_source(request, cfg, model_info)
    found.source        # steady.params.Source for every image of the run (None: txt2img)
    found.size          # the init image's size rounded to multiples of 8: the run's default size
    found.warnings      # e.g. a mask of another size, resized as A1111 does

``init_image`` and ``mask`` may each be a file (the CLI), 'sha256:<hex>' (an input stored before:
an upload to POST /api/inputs, an A1111 request's base64) or 'image:<id>' (a catalog image:
"send to img2img"). Whatever it is, the file is checked and kept in STEADY_HOME/inputs under its
sha256 (steady.images.inputs) before anything else is written, so a run can be resumed after the
original is gone, and the catalog can tell which image an image grew from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from steady.config import Settings
from steady.errors import BadInput
from steady.images.inputs import StoredImage, checked_file, find_stored
from steady.params import MAX_SIDE, MIN_SIDE, GenerationRequest, Source


@dataclass(frozen=True)
class FoundSource:
    source: Source | None = None
    size: tuple[int, int] | None = None  # (width, height): the init image's, rounded to multiples of 8
    warnings: list[str] = field(default_factory=list)
    pending: tuple[StoredImage, ...] = ()  # checked inputs to write once the whole request is checked

    def keep(self) -> None:
        """Write the checked inputs (the last step of steady.request.check: a refusal writes nothing)."""
        for stored in self.pending:
            stored.keep()


def resolve_source(request: GenerationRequest, cfg: Settings, info: Any) -> FoundSource:
    """The run's Source, or BadInput naming ``init_image``/``mask`` and the value."""
    inpainting_model = getattr(info, "inpainting", False)
    if not request.init_image:
        if inpainting_model:
            raise BadInput("init_image", "", f"{info.name} is an inpainting checkpoint: it paints on an image; give "
                                             "--init-image (and --mask)")  # fmt: skip
        return FoundSource()
    image, image_id = _stored(request.init_image, cfg, "init_image")
    warnings: list[str] = []
    mask = None
    if request.mask:
        mask, _ = _stored(request.mask, cfg, "mask")
        if (mask.width, mask.height) != (image.width, image.height):
            warnings.append(f"the mask is {mask.width}x{mask.height} and the init image {image.width}x{image.height}: "
                            f"the mask is resized to fit ({request.resize_mode}), as A1111 does")  # fmt: skip
    size = (_side(image.width), _side(image.height))
    if max(size) > MAX_SIDE and not (request.width and request.height):
        raise BadInput("init_image", request.init_image, f"is {image.width}x{image.height}: a side past {MAX_SIDE}; "
                                                         "give --width and --height for the run")  # fmt: skip
    source = Source(
        image=image.path, image_hash=image.sha256, strength=request.strength, resize_mode=request.resize_mode,
        mask=mask.path if mask else "", mask_hash=mask.sha256 if mask else "", invert_mask=request.invert_mask,
        mask_blur=request.mask_blur, masked_content=request.masked_content, only_masked=request.only_masked,
        only_masked_padding=request.only_masked_padding, image_id=image_id,
    )  # fmt: skip
    return FoundSource(source, size, warnings, tuple(s for s in (image, mask) if s is not None))


def _side(pixels: int) -> int:
    return max(MIN_SIDE, int(round(pixels / 8)) * 8)


def _stored(value: str, cfg: Settings, argument: str) -> tuple[StoredImage, int | None]:
    """The stored input ``value`` names, and its catalog image id when it is 'image:<id>'."""
    if value.startswith("sha256:"):
        return find_stored(value, cfg.inputs_dir, argument), None
    if value.startswith("image:") and value[6:].isdigit():
        from steady.catalog.db import open_catalog

        image_id = int(value[6:])
        with open_catalog(cfg.db_path) as catalog:
            record = catalog.get_image(image_id) if image_id < 2**63 else None
        if record is None:
            raise BadInput(argument, value, "no such image in the catalog")
        return checked_file(record.trash_path or record.path, cfg.inputs_dir, argument), image_id
    return checked_file(value, cfg.inputs_dir, argument), None
