"""PNG metadata: write ours (A1111 text + exact JSON, atomically), read anyone's.

    from steady.images import write_png, read_png_info, a1111_parameters
"""

from __future__ import annotations

from steady.images.pngmeta import PngInfo, a1111_parameters, read_png_info, write_png

__all__ = ["PngInfo", "a1111_parameters", "read_png_info", "write_png"]
