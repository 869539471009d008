"""One walk over a folder tree for reconcile and import: regular files, as a stream.

    for entry in walk_files(root, on_error=lambda folder, exc: print(folder, exc)):
        ...                                  # os.DirEntry of a regular file

Symlinks are not followed (to folders or files): they could loop, or lead outside the tree, and
what they point at has a path of its own. A folder that cannot be listed is reported through
`on_error` and skipped; the walk goes on.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator


def walk_files(root: str | os.PathLike[str], on_error: Callable[[str, OSError], None]) -> Iterator[os.DirEntry[str]]:
    stack = [os.fspath(root)]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
                    elif entry.is_file(follow_symlinks=False):
                        yield entry
        except OSError as exc:
            on_error(folder, exc)
