"""Images in operator messages: parsed from data URLs, checked (type by magic bytes, size),
kept under ``<data>/attachments/<run id>/`` (never in the worktree: they are not the repo's
files), and read back as base64 or data URLs when the turn that carries them starts.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from pathlib import Path

from codeyard.domain.errors import PayloadTooLarge, ValidationFailed
from codeyard.domain.ids import new_id

MAX_IMAGE_BYTES = 5 * 1024 * 1024
MAX_IMAGES = 5
_DATA_URL = re.compile(r"^data:(image/[a-z0-9.+-]+);base64,(.*)$", re.DOTALL)
#: Media types the agents' model APIs accept, with the bytes each file starts with.
MAGIC: dict[str, tuple[bytes, ...]] = {
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/gif": (b"GIF87a", b"GIF89a"),
    "image/webp": (b"RIFF",),
}
EXT = {"image/png": "png", "image/jpeg": "jpg", "image/gif": "gif", "image/webp": "webp"}


@dataclass(frozen=True, slots=True)
class Image:
    media_type: str
    data: bytes

    @property
    def base64(self) -> str:
        return base64.b64encode(self.data).decode()

    @property
    def data_url(self) -> str:
        return f"data:{self.media_type};base64,{self.base64}"


def _bad(index: int, why: str) -> ValidationFailed:
    return ValidationFailed(
        f"Image {index + 1}: {why}",
        errors=[{"loc": ["body", "images", index], "msg": why}],
    )


def check_count(count: int) -> None:
    if count > MAX_IMAGES:
        raise ValidationFailed(
            f"At most {MAX_IMAGES} images per message; this one has {count}.",
            errors=[{"loc": ["body", "images"], "msg": f"at most {MAX_IMAGES}"}],
        )


def parse(urls: list[str]) -> list[Image]:
    """Every image valid, or a 422/413 naming the first bad one (nothing is stored)."""
    check_count(len(urls))
    out = []
    for i, url in enumerate(urls):
        match = _DATA_URL.match(url)
        if match is None:
            raise _bad(i, "send a data URL: data:image/png;base64,…")
        media_type = match.group(1)
        if media_type not in MAGIC:
            raise _bad(i, f"{media_type} is not accepted; use PNG, JPEG, GIF or WebP")
        if len(match.group(2)) > MAX_IMAGE_BYTES * 4 // 3 + 8:
            raise PayloadTooLarge(f"Image {i + 1} is larger than {MAX_IMAGE_BYTES} bytes.")
        try:
            data = base64.b64decode(match.group(2), validate=True)
        except (binascii.Error, ValueError):
            raise _bad(i, "the base64 data is not valid") from None
        if not data.startswith(MAGIC[media_type]):
            raise _bad(i, f"the data is not a {media_type} file")
        if media_type == "image/webp" and data[8:12] != b"WEBP":
            raise _bad(i, "the data is not a image/webp file")
        out.append(Image(media_type, data))
    return out


def sniff(data: bytes) -> str | None:
    """The media type the bytes are (by their first bytes), if one the agents take."""
    for media_type, starts in MAGIC.items():
        if data.startswith(starts) and (media_type != "image/webp" or data[8:12] == b"WEBP"):
            return media_type
    return None


def from_upload(index: int, data: bytes) -> str:
    """An uploaded file (multipart) as the data URL :func:`parse` checks, typed by its bytes:
    browsers label pasted or dropped files inconsistently, the bytes do not lie."""
    if len(data) > MAX_IMAGE_BYTES:
        raise PayloadTooLarge(f"Image {index + 1} is larger than {MAX_IMAGE_BYTES} bytes.")
    media_type = sniff(data)
    if media_type is None:
        raise _bad(index, "the file is not a PNG, JPEG, GIF or WebP image")
    return f"data:{media_type};base64,{base64.b64encode(data).decode()}"


def store(root: Path, run_id: str, images: list[Image]) -> list[str]:
    """Write the images; their paths go into the queued message."""
    folder = root / run_id
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    names = []
    for image in images:
        name = f"{new_id('att')}.{EXT[image.media_type]}"
        (folder / name).write_bytes(image.data)
        names.append(str(folder / name))
    return names


def load_paths(paths: list[Path]) -> list[Image]:
    """Images from stored files (by extension; a missing file is skipped)."""
    by_ext = {v: k for k, v in EXT.items()}
    out = []
    for path in paths:
        media_type = by_ext.get(path.suffix.lstrip("."))
        if media_type is not None and path.is_file():
            out.append(Image(media_type, path.read_bytes()))
    return out
