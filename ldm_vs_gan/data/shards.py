"""Webdataset shards on local disk: a deterministic writer and an indexed (random-access) reader.

A webdataset shard is a plain POSIX tar whose members are grouped into samples by *key*: the
member name up to the first dot of its basename (``000017.jpg`` + ``000017.txt`` -> key
``000017``, extensions ``jpg`` and ``txt``), the convention of webdataset and img2dataset.

The reader scans each tar once with :mod:`tarfile` for the byte offset and size of every member,
caches that index as JSON (beside the shard when the folder is writable, else in the cache), and
then reads any sample by ``seek`` + ``read``. That makes local shards a map-style dataset: the data
order becomes a pure function of a seed (``data/indexed.py``), which is what makes resumption exact
and 2 ranks x B/2 equal to 1 rank x B (docs/CONTRACTS.md, "Data"). Damage met while indexing (a
file that is not a tar, is empty or is cut short; a repeated key) is counted by reason on
``ShardIndex.damaged`` and cached with the index, never dropped silently.
"""

from __future__ import annotations

import glob
import io
import json
import os
import tarfile
from pathlib import Path

from ldm_vs_gan.errors import UserError
from ldm_vs_gan.paths import cache_dir, params_key

INDEX_VERSION = 2  # 2: damage counts are cached with the samples


def split_key(name: str) -> tuple[str, str]:
    """``"a/b/000017.seg.png"`` -> (``"a/b/000017"``, ``"seg.png"``) (webdataset's rule)."""
    head, _, base = name.rpartition("/")
    stem, dot, ext = base.partition(".")
    key = f"{head}/{stem}" if head else stem
    return key, ext if dot else ""


def _header(name: str, size: int) -> bytes:
    """A POSIX ustar header (mtime 0, mode 644, no owner): written by hand because
    ``tarfile.addfile`` costs 4x more than rendering a toy sample. Long names use tarfile."""
    raw = name.encode("utf-8")
    if len(raw) > 100:
        info = tarfile.TarInfo(name)
        info.size, info.mtime, info.mode = size, 0, 0o644
        return info.tobuf(tarfile.USTAR_FORMAT, "utf-8", "surrogateescape")
    h = bytearray(512)
    h[0 : len(raw)] = raw
    h[100:108] = b"0000644\0"  # mode
    h[108:116] = b"0000000\0"  # uid
    h[116:124] = b"0000000\0"  # gid
    h[124:136] = b"%011o\0" % size
    h[136:148] = b"00000000000\0"  # mtime
    h[148:156] = b" " * 8  # checksum placeholder
    h[156:157] = b"0"  # regular file
    h[257:265] = b"ustar\x0000"
    h[148:156] = b"%06o\0 " % sum(h)
    return bytes(h)


class ShardWriter:
    """Writes samples (``{"__key__": str, ext: bytes | str | dict}``) into ``pattern % shard_number``
    tars of at most ``maxcount`` samples, with each shard's index beside it (no re-scan).
    Deterministic bytes: fixed mtime/uid/mode, so the same samples give the same shards (and the
    same sha256) on every machine. Any tar reader (tarfile, webdataset, GNU tar) reads them."""

    def __init__(self, pattern: str, maxcount: int = 10000):
        self.pattern, self.maxcount = pattern, maxcount
        self.shard, self.count, self.f, self.paths = -1, 0, None, []
        self._index: list[dict] = []
        self._damaged: dict[str, int] = {}
        self._keys: set[str] = set()
        self._offset = 0

    def _next(self) -> None:
        self.close()
        self.shard += 1
        path = self.pattern % self.shard
        self.paths.append(path)
        self.f = open(path, "wb")  # noqa: SIM115 (closed in close())
        self.count, self._offset = 0, 0

    def write(self, sample: dict) -> None:
        if self.f is None or self.count >= self.maxcount:
            self._next()
        key = sample["__key__"]
        members = {}
        for ext in sorted(k for k in sample if not k.startswith("__")):
            data = sample[ext]
            if isinstance(data, str):
                data = data.encode("utf-8")
            elif isinstance(data, (dict, list)):
                data = json.dumps(data, sort_keys=True).encode("utf-8")
            header = _header(f"{key}.{ext}", len(data))
            pad = -len(data) % 512
            self.f.write(header + data + b"\0" * pad)
            members[ext] = [self._offset + len(header), len(data)]
            self._offset += len(header) + len(data) + pad
        if key in self._keys:  # the index a scan would build: the first occurrence wins
            _count(self._damaged, "duplicate_key")
        else:
            self._keys.add(key)
            self._index.append({"key": key, "members": members})
        self.count += 1

    def close(self) -> None:
        if self.f is not None:
            self.f.write(b"\0" * 1024)  # end-of-archive marker
            self.f.close()
            self.f = None
            save_index(self.paths[-1], self._index, self._damaged)
            self._index, self._damaged, self._keys = [], {}, set()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def expand_shards(spec) -> list[str]:
    """A list of shard paths from a path, a glob, a brace pattern (``data-{000..099}.tar``, as in
    webdataset/img2dataset), a folder (all ``*.tar`` in it) or a list of any of those. URLs
    (``http://``, ``s3://``, ``pipe:``) are returned brace-expanded but not checked."""
    import braceexpand  # a webdataset dependency

    specs = [spec] if isinstance(spec, (str, os.PathLike)) else list(spec)
    out: list[str] = []
    for s in specs:
        for item in braceexpand.braceexpand(str(s)):
            if is_remote(item):
                out.append(item)
                continue
            item = os.path.expanduser(item)
            if os.path.isdir(item):
                out.extend(sorted(glob.glob(os.path.join(item, "*.tar"))))
            elif any(c in item for c in "*?["):
                out.extend(sorted(glob.glob(item)))
            else:
                out.append(item)
    return out


def _some(paths: list[str], k: int = 3) -> str:
    """``a.tar, b.tar, c.tar and 7 more``: file lists in one-line messages."""
    more = f" and {len(paths) - k} more" if len(paths) > k else ""
    return ", ".join(paths[:k]) + more


def is_remote(url: str) -> bool:
    return "://" in url or url.startswith("pipe:")


def _count(counts: dict[str, int], reason: str, n: int = 1) -> None:
    counts[reason] = counts.get(reason, 0) + n


def _group(tar: tarfile.TarFile, samples: list[dict], damaged: dict[str, int]) -> None:
    """Members grouped into ``samples`` by key, appended as they are read (a damaged tail raises
    and keeps what came before). A key that comes back after another key (or repeats an
    extension) is a duplicate: counted, and only its first occurrence is kept."""
    seen: set[str] = set()
    cur, cur_key, cur_exts = None, None, set()
    for m in tar:
        if not m.isfile():
            continue
        key, ext = split_key(m.name)
        if key != cur_key or ext in cur_exts:  # a new sample starts
            cur_key, cur_exts = key, set()
            if key in seen:
                _count(damaged, "duplicate_key")
                cur = None
            else:
                seen.add(key)
                cur = {"key": key, "members": {}}
                samples.append(cur)
        cur_exts.add(ext)
        if cur is not None:
            cur["members"][ext] = [m.offset_data, m.size]


def _ends_cleanly(path: str, offset: int) -> bool:
    """tarfile stops silently at a cut or a garbage header; only zeros after the last member
    (the end-of-archive marker, possibly itself cut) mean nothing was lost."""
    with open(path, "rb") as f:
        f.seek(offset)
        block = f.read(512)
    return bool(block) and not block.strip(b"\0")


def scan_tar(path: str) -> tuple[list[dict], dict[str, int]]:
    """One pass over a tar: (``[{"key", "members": {ext: [offset, size]}}]`` in file order,
    damage counts by reason). A file that is not a readable tar, is empty or is cut short counts
    ``tar_error`` once; the complete samples before the damage are still indexed (none for a
    non-tar or empty file). Each repeated key counts ``duplicate_key``; its first occurrence wins."""
    damaged: dict[str, int] = {}
    samples: list[dict] = []
    try:
        with tarfile.open(path, "r:") as tar:
            _group(tar, samples, damaged)
            end = tar.offset
        if not _ends_cleanly(path, end):
            damaged["tar_error"] = 1
    except (tarfile.TarError, EOFError, OSError):
        damaged["tar_error"] = 1
    size = os.path.getsize(path) if samples else 0
    whole = [s for s in samples if all(o + n <= size for o, n in s["members"].values())]
    if len(whole) < len(samples):
        damaged["tar_error"] = 1
    return whole, damaged


def _index_file(path: str) -> Path:
    st = os.stat(path)
    beside = Path(path + ".idx.json")
    if os.access(os.path.dirname(os.path.abspath(path)), os.W_OK):
        return beside
    key = params_key({"path": os.path.abspath(path), "size": st.st_size, "mtime": st.st_mtime_ns})
    return cache_dir("shard_index") / f"{key}.idx.json"


def _stamp(path: str) -> dict:
    st = os.stat(path)
    return {"version": INDEX_VERSION, "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def load_index(path: str) -> tuple[list[dict], dict[str, int]]:
    """The cached (samples, damage counts) of one shard (rebuilt when its size or mtime changed)."""
    idx_path = _index_file(path)
    if idx_path.exists():
        try:
            cached = json.loads(idx_path.read_text())
            if cached.get("stamp") == _stamp(path):
                return cached["samples"], dict(cached["damaged"])
        except (ValueError, KeyError, TypeError):
            pass
    samples, damaged = scan_tar(path)
    save_index(path, samples, damaged)
    return samples, damaged


def save_index(path: str, samples: list[dict], damaged: dict[str, int] | None = None) -> None:
    stamp = _stamp(path)
    idx_path = _index_file(path)
    tmp = idx_path.with_name(f"{idx_path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps({"stamp": stamp, "samples": samples, "damaged": damaged or {}}))
        os.replace(tmp, idx_path)  # atomic: a concurrent reader sees the old or the new file
    except OSError:
        pass  # read-only: the index just is not cached


class ShardIndex:
    """Random access to the samples of a list of local shards.

    ``in_memory=True`` reads each shard's bytes once (per process) and serves samples from RAM:
    the same seek/read code path, without the file system (the toy world is small).

    ``damaged`` sums the damage found while indexing, by reason (:func:`scan_tar`: ``tar_error``
    per damaged file, ``duplicate_key`` per repeated key); ``damaged_files`` lists the files with
    a ``tar_error``. When damage leaves no sample at all, a :class:`UserError` names the files
    (some damage is counted and logged; nothing to read is an error)."""

    def __init__(self, paths: list[str], in_memory: bool = False):
        self.paths = list(paths)
        self.in_memory = in_memory
        self.entries: list[tuple[int, str, dict]] = []  # (shard number, key, {ext: [off, size]})
        self.damaged: dict[str, int] = {}
        self.damaged_files: list[str] = []
        for i, p in enumerate(self.paths):
            samples, damaged = load_index(p)
            for s in samples:
                self.entries.append((i, s["key"], s["members"]))
            for reason, n in damaged.items():
                _count(self.damaged, reason, n)
            if damaged.get("tar_error"):
                self.damaged_files.append(p)
        if not self.entries and self.damaged_files:
            raise UserError(
                f"no sample can be read: {len(self.damaged_files)} of {len(self.paths)} shard files are damaged "
                f"(not a readable tar, empty or cut short): {_some(self.damaged_files)}"
            )
        self._files: dict[int, object] = {}
        self._pid = None

    def __len__(self) -> int:
        return len(self.entries)

    def __getstate__(self):  # DataLoader workers reopen their own file handles
        state = self.__dict__.copy()
        state["_files"], state["_pid"] = {}, None
        return state

    def _file(self, shard: int):
        if self._pid != os.getpid():  # forked: handles are not shareable across processes
            self._files, self._pid = {}, os.getpid()
        f = self._files.get(shard)
        if f is None:
            if self.in_memory:
                with open(self.paths[shard], "rb") as fh:
                    f = io.BytesIO(fh.read())
            else:
                f = open(self.paths[shard], "rb")  # noqa: SIM115 (kept open for random access)
            self._files[shard] = f
        return f

    def read(self, i: int) -> dict:
        """``{"__key__": key, "__shard__": path, ext: bytes, ...}`` of sample ``i``."""
        shard, key, members = self.entries[i]
        f = self._file(shard)
        out = {"__key__": key, "__shard__": self.paths[shard]}
        for ext, (off, size) in members.items():
            f.seek(off)
            out[ext] = f.read(size)
        return out
