"""Cache files as ``.npz`` with JSON metadata and a content hash: one format for every array cache.

The embedding cache (:mod:`cobra.text`, chapter 02) and semantic-ID files (:mod:`cobra.sid`, chapter
03) are written by :func:`write_hashed_npz`: the arrays, plus a ``meta`` member holding JSON metadata
whose ``sha256`` is :func:`content_hash` of the arrays and the rest of the metadata. :func:`read_hashed_npz`
reads every member whole (:func:`read_npz`: CRC-32 and sizes checked, no pickles) and recomputes the
hash, so a damaged file is refused instead of loading as different data.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from cobra.config import atomic_write


class HashMismatch(ValueError):
    """A file whose content differs from the hash recorded when it was written."""


def content_hash(arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any] | None = None) -> str:
    """sha256 of ``meta`` (canonical JSON) and of every array's name, dtype, shape and bytes.

    Recorded in a file's metadata by :func:`write_hashed_npz` and recomputed by :func:`read_hashed_npz`;
    independent of the file format, so it checks what the reader gets.
    """
    h = hashlib.sha256(json.dumps(dict(meta or {}), sort_keys=True).encode())
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        if a.dtype.hasobject:
            raise TypeError(f"array {name!r} holds Python objects; only plain arrays can be hashed")
        h.update(f"\x1f{name}\x1f{a.dtype.str}\x1f{a.shape}\x1f".encode())
        h.update(a.reshape(-1).view(np.uint8).data)
    return h.hexdigest()


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """Every array of the ``.npz`` file ``path``, each member read whole so its CRC-32 is checked.

    Stricter than ``np.load``, which stops reading a member where its header says the array ends (a
    damaged header then gives a silently different array): here a member must hold exactly its
    header's array, no more and no less, and no pickled objects.

    Raises:
        ValueError: the file is missing, not a zip, or a member is damaged; the message says how.
    """
    out: dict[str, np.ndarray] = {}
    try:
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                if not info.filename.endswith(".npy"):
                    raise ValueError(f"unexpected member {info.filename!r}")
                data = zf.read(info)  # the whole member: zipfile compares its CRC-32 at the end
                fh = io.BytesIO(data)
                version = np.lib.format.read_magic(fh)
                if version == (1, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
                elif version == (2, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
                else:
                    raise ValueError(f"{info.filename}: npy format version {version} is not supported")
                if dtype.hasobject:
                    raise ValueError(f"{info.filename} holds pickled objects")
                count = math.prod(shape)
                if count * dtype.itemsize != len(data) - fh.tell():
                    raise ValueError(f"{info.filename} holds {len(data) - fh.tell():,} data bytes, its header "
                                     f"announces {count * dtype.itemsize:,}")
                arr = np.frombuffer(bytearray(data), dtype=dtype, count=count, offset=fh.tell())
                out[info.filename[:-4]] = arr.reshape(shape, order="F" if fortran else "C")
    except ValueError:
        raise
    except Exception as err:  # BadZipFile (CRC), EOFError, KeyError, OSError ...: all mean "damaged"
        raise ValueError(f"{type(err).__name__}: {err}") from None
    return out


def write_hashed_npz(path: str | Path, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> Path:
    """Write ``arrays`` and JSON ``meta`` to ``path`` atomically; ``meta`` gets ``sha256``, the content hash of both."""
    meta = json.loads(json.dumps({k: v for k, v in meta.items() if k != "sha256"}))  # as a reader parses it
    meta["sha256"] = content_hash(arrays, meta)

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:  # a file object: np.savez would append ".npz" to a path
            np.savez(f, meta=np.array(json.dumps(meta, sort_keys=True)), **arrays)

    return atomic_write(path, write)


def read_hashed_npz(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, Any], bool]:
    """Arrays and metadata (without ``sha256``) of a file written by :func:`write_hashed_npz`, and whether
    it carried a content hash (a file from before content hashes passes on its CRC-32 checks alone).

    Raises:
        HashMismatch: the content differs from what was written.
        ValueError: the file is missing, unreadable, damaged, or has no JSON-object ``meta``.
    """
    arrays = read_npz(Path(path))
    if "meta" not in arrays:
        raise ValueError("it has no metadata")
    meta = json.loads(str(arrays.pop("meta")))
    if not isinstance(meta, dict):
        raise ValueError("its metadata is not a JSON object")
    digest = meta.pop("sha256", None)
    if digest is not None and digest != content_hash(arrays, meta):
        raise HashMismatch("hash mismatch: its content differs from what was written")
    return arrays, meta, digest is not None
