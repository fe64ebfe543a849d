"""Tests of gsbnp.data.prepare: download/verify/extract guards and the three dataset converters.

Every fixture is made here in the official format - a tar.gz of Python-2-style protocol-2 pickles
for CIFAR-100, JPEGs in a .tgz plus scipy .mat files for Oxford-Flowers102, JPEGs plus JSON for
Chaoyang - and goes through the real code path, downloads included: a tiny HTTP server on 127.0.0.1
(port 0, with Range support and a switch to drop a connection half-way) serves the files.
"""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import re
import struct
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gsbnp.data import load_dataset
from gsbnp.data.prepare import main as prepare_main
from gsbnp.data.prepare import fetch as fetch_mod
from gsbnp.data.prepare.fetch import (
    ChecksumError,
    PrepareError,
    UnsafeArchiveError,
    UnsafePickleError,
    fetch,
    restricted_pickle_load,
    safe_extract_tar,
)
from gsbnp.data.prepare.flowers102 import read_split


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


# ------------------------------------------------------------------------------------------ server
class Server:
    """Serves ``files`` over HTTP/1.0 with ``Range: bytes=N-`` support; records every request."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.drop_once: dict[str, int] = {}  # name -> bytes sent before the connection is cut once
        self.honour_range = True
        self.status = None  # force this HTTP status on every request
        self.requests: list[tuple[str, str | None]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                name = self.path.lstrip("/")
                server.requests.append((name, self.headers.get("Range")))
                if server.status is not None:
                    self.send_error(server.status)
                    return
                data = server.files.get(name)
                if data is None:
                    self.send_error(404)
                    return
                start, ask = 0, self.headers.get("Range")
                if ask and server.honour_range:
                    start = int(re.fullmatch(r"bytes=(\d+)-", ask).group(1))
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                cut = server.drop_once.pop(name, None)
                self.wfile.write(body if cut is None else body[:cut])
                self.wfile.flush()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,),
                                       daemon=True)
        self.thread.start()

    def url(self, name: str = "") -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{name}"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(monkeypatch):
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(fetch_mod, "BACKOFF_S", 0.0)  # retries without sleeping
    s = Server()
    yield s
    s.close()


def run_cli(argv, capsys):
    rc = prepare_main(argv)
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def assert_one_line_error(rc, err, fragment):
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gsbnp: error: "), err
    assert "Traceback" not in err
    assert re.search(fragment, lines[0]), lines[0]


# ------------------------------------------------------------------------------------------ py2 pickles
def py2_pickle(obj) -> bytes:
    """Protocol-2 pickle as Python 2 + NumPy 1.x wrote it (cPickle): ``bytes`` are py2 ``str``.

    Python 3's own protocol-2 pickler cannot produce these (it writes bytes through
    ``_codecs.encode``), so the opcodes are emitted directly: dict/list/tuple/int/None/bool,
    SHORT_BINSTRING/BINSTRING for str, BINUNICODE for unicode, and NumPy arrays as
    ``numpy.core.multiarray._reconstruct`` + BUILD with ``numpy.dtype``.
    """
    out = bytearray(b"\x80\x02")

    def put(o):
        if o is None:
            out.extend(b"N")
        elif o is True or o is False:
            out.extend(b"\x88" if o else b"\x89")
        elif isinstance(o, int):
            if 0 <= o < 256:
                out.extend(b"K" + bytes([o]))
            elif 0 <= o < 65536:
                out.extend(b"M" + struct.pack("<H", o))
            else:
                out.extend(b"J" + struct.pack("<i", o))
        elif isinstance(o, bytes):
            out.extend((b"U" + bytes([len(o)]) if len(o) < 256 else b"T" + struct.pack("<I", len(o)))
                       + o)
        elif isinstance(o, str):
            raw = o.encode("utf-8")
            out.extend(b"X" + struct.pack("<I", len(raw)) + raw)
        elif isinstance(o, tuple):
            if len(o) <= 3:
                for item in o:
                    put(item)
                out.extend([b")", b"\x85", b"\x86", b"\x87"][len(o)])
            else:
                out.extend(b"(")
                for item in o:
                    put(item)
                out.extend(b"t")
        elif isinstance(o, list):
            out.extend(b"]")
            if o:
                out.extend(b"(")
                for item in o:
                    put(item)
                out.extend(b"e")
        elif isinstance(o, dict):
            out.extend(b"}")
            if o:
                out.extend(b"(")
                for k, v in o.items():
                    put(k)
                    put(v)
                out.extend(b"u")
        elif isinstance(o, np.ndarray):
            assert o.dtype == np.uint8
            out.extend(b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n")
            put((0,))
            put(b"b")
            out.extend(b"\x87R")  # _reconstruct(ndarray, (0,), 'b')
            out.extend(b"(")
            put(1)
            put(tuple(o.shape))
            out.extend(b"cnumpy\ndtype\n")
            put((b"u1", 0, 1))
            out.extend(b"R")
            put((3, b"|", None, None, None, -1, -1, 0))
            out.extend(b"b")  # dtype.__setstate__
            put(False)
            put(np.ascontiguousarray(o).tobytes())
            out.extend(b"tb")  # ndarray.__setstate__((1, shape, dtype, False, data))
        else:
            raise TypeError(type(o))

    put(obj)
    out.extend(b".")
    return bytes(out)


def test_py2_fixture_pickles_are_what_pickle_reads():
    data = np.arange(24, dtype=np.uint8).reshape(2, 12)
    obj = {b"data": data, b"labels": [0, 300, 70000], b"name": b"x", b"none": None}
    raw = py2_pickle(obj)
    assert b"_codecs" not in raw and raw[:2] == b"\x80\x02"
    reference = pickle.loads(raw, encoding="latin1")  # the unrestricted stdlib reading
    loaded = restricted_pickle_load(raw, source="fixture")
    for result in (reference, loaded):
        assert set(result) == {"data", "labels", "name", "none"}
        np.testing.assert_array_equal(result["data"], data)
        assert result["data"].dtype == np.uint8
        assert result["labels"] == [0, 300, 70000] and result["name"] == "x"


@pytest.mark.parametrize("module,name", [("os", "system"), ("posix", "system"),
                                         ("builtins", "eval"), ("subprocess", "Popen"),
                                         ("numpy", "load")])
def test_restricted_unpickler_refuses_other_globals(tmp_path, module, name):
    marker = tmp_path / "pwned"
    raw = (b"\x80\x02c" + f"{module}\n{name}\n".encode() + b"X"
           + struct.pack("<I", len(f"touch {marker}")) + f"touch {marker}".encode() + b"\x85R.")
    with pytest.raises(UnsafePickleError, match=rf"evil\.pkl: refusing to unpickle: global "
                                                rf"{module}\.{name} is not allowed"):
        restricted_pickle_load(raw, source="evil.pkl")
    assert not marker.exists()


def test_restricted_unpickler_reports_garbage():
    with pytest.raises(PrepareError, match="junk: not a valid pickle"):
        restricted_pickle_load(b"\x80\x02}q(", source="junk")


# ------------------------------------------------------------------------------------------ tar files
def make_tar(members, mode="w:gz") -> bytes:
    """``members``: (name, bytes) for files, (name, None) for dirs, or ready TarInfo objects."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tar:
        for member in members:
            if isinstance(member, tarfile.TarInfo):
                tar.addfile(member)
                continue
            name, data = member
            info = tarfile.TarInfo(name)
            if data is None:
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _special(name, kind, target="/etc/passwd"):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info


UNSAFE = {
    "parent": ("../evil.txt", None),
    "nested parent": ("ok/../../evil.txt", None),
    "absolute": ("/tmp/gsbnp-evil.txt", None),
    "symlink": (None, _special("link", tarfile.SYMTYPE)),
    "relative symlink": (None, _special("inner", tarfile.SYMTYPE, "sub/file")),
    "hardlink": (None, _special("hard", tarfile.LNKTYPE, "good.txt")),
    "char device": (None, _special("dev", tarfile.CHRTYPE)),
    "fifo": (None, _special("pipe", tarfile.FIFOTYPE)),
}


@pytest.mark.parametrize("case", list(UNSAFE))
def test_unsafe_tar_member_is_refused_before_writing(tmp_path, case):
    name, info = UNSAFE[case]
    bad = info if info is not None else (name, b"x")
    archive = tmp_path / "a.tar.gz"
    archive.write_bytes(make_tar([("good.txt", b"fine"), bad]))
    dest = tmp_path / "work" / "out"
    shown = info.name if info is not None else name
    with pytest.raises(UnsafeArchiveError, match=re.escape(f"refusing tar member {shown!r}")):
        safe_extract_tar(archive, dest)
    assert not (tmp_path / "work").exists()  # nothing written, not even the good member
    assert not (tmp_path / "evil.txt").exists() and not Path("/tmp/gsbnp-evil.txt").exists()


def test_safe_extract_tar_extracts_and_reuses(tmp_path):
    archive = tmp_path / "a.tar"
    archive.write_bytes(make_tar([("d", None), ("d/f.bin", b"\x01\x02"), ("top.txt", b"t")],
                                 mode="w"))
    dest = safe_extract_tar(archive, tmp_path / "x", marker="m1")
    assert (dest / "d" / "f.bin").read_bytes() == b"\x01\x02" and (dest / "top.txt").exists()
    (dest / "top.txt").write_text("changed")
    safe_extract_tar(archive, dest, marker="m1")  # same marker: kept as is
    assert (dest / "top.txt").read_text() == "changed"
    safe_extract_tar(archive, dest, marker="m2")  # another archive: extracted afresh
    assert (dest / "top.txt").read_text() == "t"
    assert not (tmp_path / "x.partial").exists()
    (tmp_path / "junk.tar").write_bytes(b"not a tar at all" * 40)
    with pytest.raises(PrepareError, match="not a readable tar archive"):
        safe_extract_tar(tmp_path / "junk.tar", tmp_path / "y")


# ------------------------------------------------------------------------------------------ fetch
PAYLOAD = bytes(np.random.default_rng(0).integers(0, 256, 300_000, dtype=np.uint8))


def test_fetch_downloads_and_verifies(server, tmp_path):
    server.files["f.bin"] = PAYLOAD
    path = fetch(server.url("f.bin"), tmp_path, "f.bin", md5=md5(PAYLOAD), progress=False)
    assert path.read_bytes() == PAYLOAD and path == tmp_path / "f.bin"
    assert server.requests == [("f.bin", None)]
    fetch(server.url("f.bin"), tmp_path, "f.bin", md5=md5(PAYLOAD), progress=False)
    assert len(server.requests) == 1  # a verified cached file is reused


def test_fetch_resumes_after_a_dropped_connection(server, tmp_path):
    server.files["f.bin"] = PAYLOAD
    server.drop_once["f.bin"] = 123_456
    path = fetch(server.url("f.bin"), tmp_path, "f.bin", md5=md5(PAYLOAD), progress=False)
    assert path.read_bytes() == PAYLOAD
    assert server.requests == [("f.bin", None), ("f.bin", "bytes=123456-")]


def test_fetch_resumes_an_existing_part_file(server, tmp_path):
    server.files["f.bin"] = PAYLOAD
    (tmp_path / "f.bin.part").write_bytes(PAYLOAD[:100_000])
    path = fetch(server.url("f.bin"), tmp_path, "f.bin", md5=md5(PAYLOAD), progress=False)
    assert path.read_bytes() == PAYLOAD
    assert server.requests == [("f.bin", "bytes=100000-")]
    assert not (tmp_path / "f.bin.part").exists()


def test_fetch_complete_part_file_gets_416_and_passes(server, tmp_path):
    server.files["f.bin"] = PAYLOAD
    (tmp_path / "f.bin.part").write_bytes(PAYLOAD)
    assert fetch(server.url("f.bin"), tmp_path, "f.bin", md5=md5(PAYLOAD),
                 progress=False).read_bytes() == PAYLOAD


def test_fetch_server_without_range_restarts_from_zero(server, tmp_path):
    server.files["f.bin"] = PAYLOAD
    server.honour_range = False
    (tmp_path / "f.bin.part").write_bytes(PAYLOAD[:5000])
    assert fetch(server.url("f.bin"), tmp_path, "f.bin", md5=md5(PAYLOAD),
                 progress=False).read_bytes() == PAYLOAD


def test_fetch_stale_part_is_redownloaded_once(server, tmp_path):
    server.files["f.bin"] = PAYLOAD
    (tmp_path / "f.bin.part").write_bytes(b"\xff" * 1000)  # left over from another file
    assert fetch(server.url("f.bin"), tmp_path, "f.bin", md5=md5(PAYLOAD),
                 progress=False).read_bytes() == PAYLOAD
    assert server.requests == [("f.bin", "bytes=1000-"), ("f.bin", None)]


def test_fetch_checksum_mismatch_deletes_the_download(server, tmp_path):
    corrupt = bytearray(PAYLOAD)
    corrupt[1000] ^= 1
    server.files["f.bin"] = bytes(corrupt)
    with pytest.raises(ChecksumError, match=rf"checksum mismatch for f\.bin .* expected MD5 "
                                            rf"{md5(PAYLOAD)}, got {md5(bytes(corrupt))}"):
        fetch(server.url("f.bin"), tmp_path, "f.bin", md5=md5(PAYLOAD), progress=False)
    assert list(tmp_path.iterdir()) == []


def test_fetch_retries_are_bounded(server, tmp_path):
    server.status = 503
    with pytest.raises(PrepareError, match="download failed after 3 attempts.*503"):
        fetch(server.url("f.bin"), tmp_path, "f.bin", md5="0" * 32, retries=2, progress=False)
    assert len(server.requests) == 3
    server.status, server.requests[:] = None, []
    with pytest.raises(PrepareError, match="download failed: .*HTTP 404"):
        fetch(server.url("missing"), tmp_path, "m", md5="0" * 32, retries=5, progress=False)
    assert len(server.requests) == 1  # a 404 is not retried


def test_fetch_local_path_and_file_url(tmp_path):
    src = tmp_path / "src" / "f.bin"
    src.parent.mkdir()
    src.write_bytes(PAYLOAD)
    a = fetch(str(src), tmp_path / "c1", "f.bin", md5=md5(PAYLOAD), progress=False)
    b = fetch(src.as_uri(), tmp_path / "c2", "f.bin", md5=md5(PAYLOAD), progress=False)
    assert a.read_bytes() == PAYLOAD == b.read_bytes()
    with pytest.raises(PrepareError, match="source file not found"):
        fetch(str(tmp_path / "nope"), tmp_path / "c3", "f.bin", md5=md5(PAYLOAD), progress=False)
    with pytest.raises(PrepareError, match="--md5 must be 32 hexadecimal digits"):
        fetch(str(src), tmp_path / "c4", "f.bin", md5="abc", progress=False)
    with pytest.raises(PrepareError, match="unsupported source"):
        fetch("ftp://example.invalid/f.bin", tmp_path / "c5", "f.bin", md5=md5(PAYLOAD))


# ------------------------------------------------------------------------------------------ CIFAR-100
FINE = [f"fine_{i:02d}" for i in range(100)]
COARSE = [f"coarse_{i:02d}" for i in range(20)]


def cifar_split(rng, n, fine, coarse):
    data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
    return {b"batch_label": b"training batch 1 of 1", b"filenames": [b"f%d.png" % i for i in range(n)],
            b"fine_labels": fine, b"coarse_labels": coarse, b"data": data}


def cifar_archive(train=None, extra=()):
    rng = np.random.default_rng(11)
    train = train or py2_pickle(cifar_split(rng, 6, [0, 99, 5, 5, 42, 7], [0, 19, 1, 1, 8, 3]))
    test_dict = cifar_split(rng, 4, [99, 3, 0, 64], [19, 2, 0, 12])
    meta = {b"fine_label_names": [n.encode() for n in FINE],
            b"coarse_label_names": [n.encode() for n in COARSE]}
    members = [("cifar-100-python", None), ("cifar-100-python/file.txt~", b""),
               ("cifar-100-python/train", train), ("cifar-100-python/test", py2_pickle(test_dict)),
               ("cifar-100-python/meta", py2_pickle(meta)), *extra]
    return make_tar(members), test_dict


def test_cifar100_over_http(server, tmp_path, capsys):
    archive, test_dict = cifar_archive()
    server.files["cifar-100-python.tar.gz"] = archive
    out = tmp_path / "out" / "c.npz"
    rc, stdout, err = run_cli(["cifar100", "--source", server.url("cifar-100-python.tar.gz"),
                               "--md5", md5(archive), "--cache", str(tmp_path / "cache"),
                               "--out", str(out)], capsys)
    assert rc == 0, err
    assert "6 train / 4 test images of 32x32x3, 100 classes" in stdout
    ds = load_dataset(out)
    assert ds.x_train.shape == (6, 32, 32, 3) and ds.x_test.shape == (4, 32, 32, 3)
    # planar rows: pixel (r, c) of channel ch sits at ch * 1024 + r * 32 + c
    data = test_dict[b"data"]
    for i, r, c, ch in [(0, 0, 0, 0), (1, 5, 17, 1), (3, 31, 30, 2), (2, 12, 0, 2)]:
        assert ds.x_test[i, r, c, ch] == data[i, ch * 1024 + r * 32 + c]
    assert ds.y_train.tolist() == [0, 99, 5, 5, 42, 7] and ds.y_test.tolist() == [99, 3, 0, 64]
    assert ds.extras["y_train_coarse"].tolist() == [0, 19, 1, 1, 8, 3]
    assert ds.extras["y_test_coarse"].tolist() == [19, 2, 0, 12]
    assert ds.class_names.tolist() == FINE and ds.extras["coarse_class_names"].tolist() == COARSE
    assert ds.meta["source"] == server.url("cifar-100-python.tar.gz")
    assert ds.meta["checksums"]["md5"] == {"cifar-100-python.tar.gz": md5(archive)}
    assert ds.meta["checksums"]["md5_is_official"] is False and ds.meta["resample"] == "none"


def test_cifar100_resize_from_local_file(tmp_path, capsys):
    archive, _ = cifar_archive()
    src = tmp_path / "cifar-100-python.tar.gz"
    src.write_bytes(archive)
    out = tmp_path / "c16.npz"
    rc, _, err = run_cli(["cifar100", "--source", str(src), "--md5", md5(archive), "--size", "16",
                          "--cache", str(tmp_path / "cache"), "--out", str(out)], capsys)
    assert rc == 0, err
    ds = load_dataset(out)
    assert ds.x_train.shape == (6, 16, 16, 3) and ds.meta["size"] == 16
    assert "BICUBIC" in ds.meta["resample"]


def test_cifar100_default_md5_is_the_official_one(server, tmp_path, capsys):
    archive, _ = cifar_archive()
    server.files["c.tgz"] = archive
    out = tmp_path / "c.npz"
    rc, _, err = run_cli(["cifar100", "--source", server.url("c.tgz"), "--cache",
                          str(tmp_path / "cache"), "--out", str(out)], capsys)
    assert_one_line_error(rc, err, "checksum mismatch .* expected MD5 "
                                   "eb9058c3a382ffc7106e4002c42a8d85")
    assert not out.exists()


def test_cifar100_corrupt_download_leaves_no_output(server, tmp_path, capsys):
    archive, _ = cifar_archive()
    corrupt = bytearray(archive)
    corrupt[len(corrupt) // 2] ^= 0xFF
    server.files["c.tgz"] = bytes(corrupt)
    out, cache = tmp_path / "c.npz", tmp_path / "cache"
    rc, _, err = run_cli(["cifar100", "--source", server.url("c.tgz"), "--md5", md5(archive),
                          "--cache", str(cache), "--out", str(out)], capsys)
    assert_one_line_error(rc, err, "checksum mismatch for cifar-100-python.tar.gz")
    assert list(tmp_path.iterdir()) == [cache] and list(cache.iterdir()) == []


def test_cifar100_refuses_a_malicious_pickle(tmp_path, capsys):
    marker = tmp_path / "pwned"
    cmd = f"touch {marker}".encode()
    evil = b"\x80\x02cos\nsystem\nU" + bytes([len(cmd)]) + cmd + b"\x85R."
    archive, _ = cifar_archive(train=evil)
    src = tmp_path / "c.tgz"
    src.write_bytes(archive)
    out = tmp_path / "c.npz"
    rc, _, err = run_cli(["cifar100", "--source", str(src), "--md5", md5(archive),
                          "--cache", str(tmp_path / "cache"), "--out", str(out)], capsys)
    assert_one_line_error(rc, err, r"train: refusing to unpickle: global os\.system")
    assert not marker.exists() and not out.exists()


def test_cifar100_refuses_an_escaping_member(tmp_path, capsys):
    archive, _ = cifar_archive(extra=[("../escaped.txt", b"x")])
    src = tmp_path / "c.tgz"
    src.write_bytes(archive)
    out = tmp_path / "c.npz"
    rc, _, err = run_cli(["cifar100", "--source", str(src), "--md5", md5(archive),
                          "--cache", str(tmp_path / "cache"), "--out", str(out)], capsys)
    assert_one_line_error(rc, err, r"refusing tar member '\.\./escaped\.txt'")
    assert not out.exists() and not (tmp_path / "escaped.txt").exists()


# ------------------------------------------------------------------------------------------ Flowers102
def jpeg_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def mat_bytes(variables: dict) -> bytes:
    from scipy.io import savemat

    buf = io.BytesIO()
    savemat(buf, variables)
    return buf.getvalue()


FLOWER_LABELS = [1, 102, 5, 5, 17, 1, 102, 50, 3, 9]  # official 1-based labels of images 1..10
TRNID, VALID, TSTID = [3, 1], [7, 2], [4, 5, 6, 8, 9, 10]


def flower_colour(image_id: int) -> np.ndarray:
    return np.array([(37 * image_id) % 200 + 30, (91 * image_id) % 200 + 30, 120], dtype=np.uint8)


def flower_files():
    members = [("jpg", None)]
    for image_id in range(1, 11):
        w, h = (48, 32) if image_id % 2 else (32, 48)  # landscape and portrait
        arr = np.empty((h, w, 3), dtype=np.uint8)
        arr[:] = 255 - flower_colour(image_id)  # outside the central square
        side = min(w, h)
        top, left = (h - side) // 2, (w - side) // 2
        arr[top:top + side, left:left + side] = flower_colour(image_id)
        members.append((f"jpg/image_{image_id:05d}.jpg", jpeg_bytes(arr)))
    return {
        "102flowers.tgz": make_tar(members),
        "imagelabels.mat": mat_bytes({"labels": np.array([FLOWER_LABELS], dtype=np.float64)}),
        "setid.mat": mat_bytes({k: np.array([v], dtype=np.float64)
                                for k, v in (("trnid", TRNID), ("valid", VALID), ("tstid", TSTID))}),
    }


def test_flowers102_over_http(server, tmp_path, capsys):
    files = flower_files()
    server.files.update({f"base/{k}": v for k, v in files.items()})
    out = tmp_path / "f.npz"
    argv = ["flowers102", "--source", server.url("base/"), "--cache", str(tmp_path / "cache"),
            "--out", str(out), "--size", "8"]
    for name, data in files.items():
        argv += ["--md5", f"{name}={md5(data)}"]
    rc, stdout, err = run_cli(argv, capsys)
    assert rc == 0, err
    assert "4 train / 6 test images of 8x8x3, 102 classes" in stdout
    ds = load_dataset(out)
    train_ids, test_ids = TRNID + VALID, TSTID
    assert ds.y_train.tolist() == [FLOWER_LABELS[i - 1] - 1 for i in train_ids]  # 1-based -> 0..101
    assert ds.y_test.tolist() == [FLOWER_LABELS[i - 1] - 1 for i in test_ids]
    assert ds.num_classes == 102 and ds.class_names[0] == "1" and ds.class_names[101] == "102"
    # only the central square survives the crop: every output pixel is near that image's colour
    for x, ids in ((ds.x_train, train_ids), (ds.x_test, test_ids)):
        for img, image_id in zip(x, ids):
            err_px = np.abs(img.astype(int) - flower_colour(image_id).astype(int)).max()
            assert err_px <= 40, (image_id, err_px)
            centre = img[2:6, 2:6].astype(int)
            assert np.abs(centre - flower_colour(image_id).astype(int)).max() <= 6
    assert ds.meta["checksums"]["md5"] == {k: md5(v) for k, v in files.items()}
    assert "BICUBIC" in ds.meta["resample"] and ds.meta["size"] == 8


def test_flowers102_checksum_of_each_file_is_checked(tmp_path, capsys):
    files = flower_files()
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    out = tmp_path / "f.npz"
    argv = ["flowers102", "--source", str(tmp_path), "--cache", str(tmp_path / "cache"),
            "--out", str(out), "--md5", f"102flowers.tgz={md5(files['102flowers.tgz'])}"]
    rc, _, err = run_cli(argv, capsys)  # the two .mat files keep their official MD5s
    assert_one_line_error(rc, err, "checksum mismatch for imagelabels.mat .* expected MD5 "
                                   "e0620be6f572b9609742df49c70aed4d")
    assert not out.exists()
    rc, _, err = run_cli(["flowers102", "--md5", "setid.mat"], capsys)
    assert_one_line_error(rc, err, "--md5 takes NAME=HEX")


def test_flowers_split_maps_labels_and_checks_ids(tmp_path):
    labels_mat, setid_mat = tmp_path / "imagelabels.mat", tmp_path / "setid.mat"

    def write(labels, trnid, valid, tstid):
        labels_mat.write_bytes(mat_bytes({"labels": np.array([labels], dtype=np.uint8)}))
        setid_mat.write_bytes(mat_bytes({"trnid": np.array([trnid], dtype=np.uint16),
                                         "valid": np.array([valid], dtype=np.uint16),
                                         "tstid": np.array([tstid], dtype=np.uint16)}))

    write([102, 1, 2, 3, 4], [5, 1], [3], [2, 4])
    train_ids, y_train, test_ids, y_test = read_split(labels_mat, setid_mat)
    assert train_ids.tolist() == [5, 1, 3] and test_ids.tolist() == [2, 4]
    assert y_train.tolist() == [3, 101, 1] and y_test.tolist() == [0, 2]
    write([0, 1, 2, 3, 4], [5, 1], [3], [2, 4])
    with pytest.raises(PrepareError, match=r"'labels' has values in \[0, 4\], outside \[1, 102\]"):
        read_split(labels_mat, setid_mat)
    write([1, 1, 2, 3, 4], [5, 1], [3], [2, 6])
    with pytest.raises(PrepareError, match=r"'tstid' has values .* outside \[1, 5\]"):
        read_split(labels_mat, setid_mat)
    write([1, 1, 2, 3, 4], [5, 1], [3], [1, 4])
    with pytest.raises(PrepareError, match="appears twice"):
        read_split(labels_mat, setid_mat)
    labels_mat.write_bytes(b"MATLAB junk")
    with pytest.raises(PrepareError, match=r"imagelabels\.mat: not a readable \.mat file"):
        read_split(labels_mat, setid_mat)


# ------------------------------------------------------------------------------------------ Chaoyang
def chaoyang_dir(root: Path) -> dict:
    """4 train / 3 test small JPEGs in the official layout; returns {name: colour}."""
    colours = {}
    for split, labels in (("train", [0, 3, 2, 1]), ("test", [3, 0, 2])):
        (root / split).mkdir(parents=True)
        entries = []
        for i, label in enumerate(labels):
            name = f"{split}/5377{i}-1-IMG00{i}x01{label}-{label}.JPG"
            colour = np.array([40 + 50 * label, 200 - 30 * i, 90], dtype=np.uint8)
            (root / name).write_bytes(jpeg_bytes(np.broadcast_to(colour, (40, 40, 3)).copy()))
            entries.append({"name": name, "label": label})
            colours[name] = colour
        (root / f"{split}.json").write_text(json.dumps(entries))
    return colours


def test_chaoyang_from_a_local_copy(tmp_path, capsys):
    colours = chaoyang_dir(tmp_path / "chaoyang")
    out = tmp_path / "cy.npz"
    rc, stdout, err = run_cli(["chaoyang", "--source", str(tmp_path / "chaoyang"), "--size", "10",
                               "--out", str(out)], capsys)
    assert rc == 0, err
    assert "4 train / 3 test images of 10x10x3, 4 classes" in stdout
    ds = load_dataset(out)
    assert ds.y_train.tolist() == [0, 3, 2, 1] and ds.y_test.tolist() == [3, 0, 2]
    assert ds.class_names.tolist() == ["normal", "serrated", "adenocarcinoma", "adenoma"]
    expected = np.stack([c for n, c in colours.items() if n.startswith("train/")]).astype(int)
    assert np.abs(ds.x_train.astype(int).mean(axis=(1, 2)) - expected).max() < 4
    assert set(ds.meta["checksums"]["sha256_index"]) == {"train.json", "test.json"}


def _break(root: Path, case: str) -> str:
    entries = json.loads((root / "train.json").read_text())
    if case == "malformed json":
        (root / "train.json").write_text('[{"name": "train/a.jpg", "label": 0')
        return r"train\.json: malformed JSON"
    if case == "not a list":
        (root / "test.json").write_text('{"name": "x"}')
        return r"test\.json: expected a non-empty JSON list"
    if case == "missing label":
        del entries[1]["label"]
        (root / "train.json").write_text(json.dumps(entries))
        return r"train\.json: entry 1 must be an object"
    if case == "label out of range":
        entries[2]["label"] = 4
        (root / "train.json").write_text(json.dumps(entries))
        return r"train\.json: entry 2 .* has label 4, outside \[0, 4\)"
    if case == "escaping name":
        entries[0]["name"] = "../outside.jpg"
        (root / "train.json").write_text(json.dumps(entries))
        return "entry 0 has a path outside the dataset"
    if case == "missing image":
        (root / entries[3]["name"]).unlink()
        return r"train\.json: entry 3: image not found: .*" + re.escape(Path(entries[3]["name"]).name)
    if case == "unreadable jpeg":
        (root / entries[1]["name"]).write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
        return re.escape(Path(entries[1]["name"]).name) + ": unreadable image"
    if case == "truncated jpeg":
        path = root / entries[2]["name"]
        path.write_bytes(path.read_bytes()[:300])
        return re.escape(path.name) + ": unreadable image"
    if case == "missing index":
        (root / "test.json").unlink()
        return r"index file not found: .*test\.json"
    raise AssertionError(case)


@pytest.mark.parametrize("case", ["malformed json", "not a list", "missing label",
                                  "label out of range", "escaping name", "missing image",
                                  "unreadable jpeg", "truncated jpeg", "missing index"])
def test_chaoyang_bad_input_names_the_file(tmp_path, capsys, case):
    root = tmp_path / "chaoyang"
    chaoyang_dir(root)
    fragment = _break(root, case)
    out = tmp_path / "cy.npz"
    rc, _, err = run_cli(["chaoyang", "--source", str(root), "--out", str(out)], capsys)
    assert_one_line_error(rc, err, fragment)
    assert not out.exists() and list(tmp_path.iterdir()) == [root]


# ------------------------------------------------------------------------------------------ CLI
def test_cli_dispatch_errors_and_help(capsys):
    rc, _, err = run_cli(["imagenet"], capsys)
    assert_one_line_error(rc, err, "unknown dataset 'imagenet'")
    rc, _, err = run_cli([], capsys)
    assert rc == 2 and "usage: gsbnp data prepare" in err
    rc, out, _ = run_cli(["--help"], capsys)
    assert rc == 0 and "cifar100" in out and "flowers102" in out and "chaoyang" in out
    rc, out, _ = run_cli(["cifar100", "--help"], capsys)
    assert rc == 0 and "--md5" in out and "--source" in out
    rc, _, err = run_cli(["cifar100", "--size", "0"], capsys)
    assert_one_line_error(rc, err, r"--size must be an integer in \[1, 4096\]")
    rc, _, err = run_cli(["cifar100", "--md5", "xyz"], capsys)
    assert_one_line_error(rc, err, "--md5 must be 32 hexadecimal digits")
    rc, _, err = run_cli(["chaoyang", "--source", ".", "--bogus"], capsys)
    assert_one_line_error(rc, err, "unrecognized arguments: --bogus")


def test_trainer_accepts_a_prepared_file(tmp_path, capsys):
    """The CIFAR-100 fixture goes through `gsbnp data prepare` and then `gsbnp train --preset tiny`."""
    from gsbnp.cli import main as gsbnp_main
    archive, _ = cifar_archive()
    src = tmp_path / "cifar-100-python.tar.gz"
    src.write_bytes(archive)
    out = tmp_path / "c.npz"
    assert gsbnp_main(["data", "prepare", "cifar100", "--source", str(src), "--md5", md5(archive),
                       "--cache", str(tmp_path / "cache"), "--out", str(out)]) == 0
    run = tmp_path / "run"
    rc = gsbnp_main(["train", "--data", str(out), "--preset", "tiny", "--out", str(run), "--no-progress",
                     "--set", "depth=1", "--set", "embed_dim=24", "--epochs-teacher", "1",
                     "--epochs-stage1", "1", "--epochs-stage2", "1", "--batch-size", "4"])
    assert rc == 0, capsys.readouterr().err
    import json
    res = json.loads((run / "results.json").read_text())
    assert res["data"]["classes"] == 100 and 0.0 <= res["stage2"]["test_acc"] <= 1.0
