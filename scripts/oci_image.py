"""Writes an OCI image layout holding a static binary (used by scripts/build-image).

    python3 scripts/oci_image.py --binary FILE --name NAME --ca-bundle FILE --out DIR
        [--digest-file FILE] [--add SRC=/DEST]... [--tree SRC=/DEST]...

The first layer holds /<name> (the binary, mode 0555), /etc/ssl/certs/ca-certificates.crt,
/etc/passwd and /etc/group naming user and group 65534 (nobody), an empty /tmp (mode 1777, the
task's scratch mount point) and the --add files (mode 0444). With --tree, a second layer holds
each SRC (a file or a folder, symbolic links followed) at DEST: files executable by their owner
get mode 0555, others 0444, folders 0755. The binary's layer is then the same blob as in the image
without trees, so a registry that has one stores the other's first layer once. The second layer
is written through a temporary file, never held in memory (a provider mirror is hundreds of MB).

The config runs /<name> as 65534:65534 from /tmp; no shell is involved. Every byte depends only
on the inputs and SOURCE_DATE_EPOCH (default 0): entries sorted, owners 0:0, fixed modes, gzip
without name or time, JSON with sorted keys. Standard library only.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import shutil
import stat
import tarfile
import tempfile
from datetime import UTC, datetime
from pathlib import Path

USER = "65534:65534"
PASSWD = b"nobody:x:65534:65534:nobody:/nonexistent:/nonexistent\n"
GROUP = b"nobody:x:65534:\n"


def layer(binary: Path, name: str, ca_bundle: Path, mtime: int, extra: list[tuple[str, bytes]]) -> bytes:
    """The uncompressed layer tar; `extra` are (path in the image, content) files, mode 0444."""
    files: list[tuple[str, int, bytes | None]] = [  # (path, mode, content; None for a directory)
        ("etc", 0o755, None),
        ("etc/group", 0o444, GROUP),
        ("etc/passwd", 0o444, PASSWD),
        ("etc/ssl", 0o755, None),
        ("etc/ssl/certs", 0o755, None),
        ("etc/ssl/certs/ca-certificates.crt", 0o444, ca_bundle.read_bytes()),
        ("tmp", 0o1777, None),
        (name, 0o555, binary.read_bytes()),
    ]
    for path, content in extra:
        parts = path.strip("/").split("/")
        for depth in range(1, len(parts)):
            directory = "/".join(parts[:depth])
            if all(f[0] != directory for f in files):
                files.append((directory, 0o755, None))
        files.append(("/".join(parts), 0o444, content))
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path, mode, content in sorted(files):
            if content is None:
                add_entry(tar, path, mode, mtime, None, 0)
            else:
                add_entry(tar, path, mode, mtime, io.BytesIO(content), len(content))
    return buffer.getvalue()


def add_entry(tar: tarfile.TarFile, path: str, mode: int, mtime: int, content, size: int) -> None:
    """Adds `path` owned by 0:0 with `mode` and `mtime`: a folder when `content` is None, else a
    file of `size` bytes read from `content`."""
    info = tarfile.TarInfo(path)
    info.mode = mode
    info.mtime = mtime
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    if content is None:
        info.type = tarfile.DIRTYPE
        tar.addfile(info)
    else:
        info.size = size
        tar.addfile(info, content)


def tree_entries(trees: list[tuple[Path, str]]) -> list[tuple[str, int, Path | None]]:
    """(path in the image, mode, source file; None for a folder) of every --tree, parents included."""
    entries: dict[str, tuple[int, Path | None]] = {}

    def parents(path: str) -> None:
        parts = path.split("/")
        for depth in range(1, len(parts)):
            entries.setdefault("/".join(parts[:depth]), (0o755, None))

    def file(src: Path, dest: str) -> None:
        parents(dest)
        executable = src.stat().st_mode & stat.S_IXUSR
        entries[dest] = (0o555 if executable else 0o444, src)

    for src, dest in trees:
        dest = dest.strip("/")
        if src.is_file():
            file(src, dest)
            continue
        if not src.is_dir():
            raise SystemExit(f"--tree {src}: not a file or a folder")
        parents(dest)
        entries[dest] = (0o755, None)
        for folder, dirs, files in os.walk(src, followlinks=True):
            relative = Path(folder).relative_to(src)
            for d in dirs:
                entries[str(Path(dest) / relative / d)] = (0o755, None)
            for f in files:
                file(Path(folder) / f, str(Path(dest) / relative / f))
    return sorted((path, mode, source) for path, (mode, source) in entries.items())


def tree_layer(blobs: Path, trees: list[tuple[Path, str]], mtime: int) -> tuple[str, str, int]:
    """Writes the gzipped layer of `trees` as a blob: (diff id, digest, size)."""
    with tempfile.TemporaryFile(dir=blobs) as raw:
        with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for path, mode, source in tree_entries(trees):
                if source is None:
                    add_entry(tar, path, mode, mtime, None, 0)
                else:
                    with source.open("rb") as f:
                        add_entry(tar, path, mode, mtime, f, source.stat().st_size)
        raw.seek(0)
        diff_id = hashlib.sha256()
        with tempfile.NamedTemporaryFile(dir=blobs, delete=False) as out:
            with gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0, compresslevel=6) as gz:
                while chunk := raw.read(1 << 20):
                    diff_id.update(chunk)
                    gz.write(chunk)
        digest = hashlib.sha256()
        with open(out.name, "rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
        size = os.path.getsize(out.name)
        os.chmod(out.name, 0o644)
        os.replace(out.name, blobs / digest.hexdigest())
    return "sha256:" + diff_id.hexdigest(), "sha256:" + digest.hexdigest(), size


def blob(blobs: Path, data: bytes) -> tuple[str, int]:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    (blobs / digest.removeprefix("sha256:")).write_bytes(data)
    return digest, len(data)


def canonical(value: dict) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--binary", type=Path, required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--ca-bundle", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--digest-file", type=Path)
    parser.add_argument(
        "--add", action="append", default=[], metavar="SRC=DEST", help="a file to add (DEST: its path in the image)"
    )
    parser.add_argument(
        "--tree",
        action="append",
        default=[],
        metavar="SRC=DEST",
        help="a file or folder for the second layer (DEST: its path in the image)",
    )
    args = parser.parse_args()
    trees = []
    for spec in args.tree:
        src, sep, dest = spec.partition("=")
        if not sep or not dest.startswith("/"):
            parser.error(f"--tree {spec!r}: expected SRC=/absolute/path/in/the/image")
        trees.append((Path(src), dest))
    extra = []
    for spec in args.add:
        src, sep, dest = spec.partition("=")
        if not sep or not dest.startswith("/"):
            parser.error(f"--add {spec!r}: expected SRC=/absolute/path/in/the/image")
        extra.append((dest, Path(src).read_bytes()))

    mtime = int(os.environ.get("SOURCE_DATE_EPOCH", "0"))
    created = datetime.fromtimestamp(mtime, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if args.out.exists():
        shutil.rmtree(args.out)
    blobs = args.out / "blobs" / "sha256"
    blobs.mkdir(parents=True)

    tar = layer(args.binary, args.name, args.ca_bundle, mtime, extra)
    diff_id = "sha256:" + hashlib.sha256(tar).hexdigest()
    compressed = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=compressed, mtime=0, compresslevel=9) as gz:
        gz.write(tar)
    layer_digest, layer_size = blob(blobs, compressed.getvalue())
    diff_ids = [diff_id]
    layers = [(layer_digest, layer_size)]
    if trees:
        tree_diff_id, tree_digest, tree_size = tree_layer(blobs, trees, mtime)
        diff_ids.append(tree_diff_id)
        layers.append((tree_digest, tree_size))

    config = {
        "architecture": "amd64",
        "os": "linux",
        "created": created,
        "config": {
            "User": USER,
            "Entrypoint": [f"/{args.name}"],
            "WorkingDir": "/tmp",
            "Env": ["SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"],
            "Labels": {"org.opencontainers.image.title": args.name},
        },
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created": created, "created_by": "scripts/build-image"} for _ in diff_ids],
    }
    config_digest, config_size = blob(blobs, canonical(config))
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest,
            "size": config_size,
        },
        "layers": [
            {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": digest, "size": size}
            for digest, size in layers
        ],
    }
    manifest_digest, manifest_size = blob(blobs, canonical(manifest))
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": manifest_digest,
                "size": manifest_size,
                "annotations": {"org.opencontainers.image.ref.name": args.name},
            }
        ],
    }
    (args.out / "index.json").write_bytes(canonical(index))
    (args.out / "oci-layout").write_bytes(canonical({"imageLayoutVersion": "1.0.0"}))
    if args.digest_file:
        args.digest_file.write_text(manifest_digest + "\n")
    print(manifest_digest)


if __name__ == "__main__":
    main()
