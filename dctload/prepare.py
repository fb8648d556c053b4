"""``dctload prepare SRC DST``: a JPEG folder made smaller for fast loading, on coefficients.

Entropy decoding, the reader's floor, costs time in proportion to the coefficients a file
stores, so a dataset stored at the size it is trained at loads faster (FFCV keeps
ImageNet at 512 px and quality 90). This prepares it without leaving the DCT domain:
each file's coefficients are resized with the transforms' exact filter
(:func:`dctload.coefficients.scale_components`), quantized to new tables and written as a
standard JPEG (:func:`dctload.write_coefficients`). The pixel-domain route (decode,
resize, encode) rounds to pixels in between and costs an inverse and a forward DCT more.

The output keeps SRC's folder layout. ``DST/prepare-manifest.jsonl`` records each
finished file with its checksum, so an interrupted run resumes where it stopped;
``DST/prepare-report.json`` lists the files left out or decoded through pixels, and the
summary (bytes, read time, PSNR against the pixel-domain reference).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import io
import json
import multiprocessing
import os
import pathlib
import sys
import time
from typing import Sequence

import numpy as np

from . import coefficients
from .errors import JPEGError, UnsupportedJPEGError
from .reader import DCTImage, read_coefficients
from .writer import load_tables, write_coefficients

MANIFEST = "prepare-manifest.jsonl"
REPORT = "prepare-report.json"
SAMPLINGS = {"420": ((2, 2), (1, 1), (1, 1)), "444": ((1, 1), (1, 1), (1, 1))}
#: Which files the summary measures (read time, PSNR): an even spread of at most this many.
MEASURED = 200


@dataclasses.dataclass(frozen=True)
class Options:
    """What ``prepare`` makes of each file.

    ``short_side``/``max_side``: the size to shrink to (torchvision's ``Resize(n)`` for the
    short side; the long side's counterpart), never enlarging; ``subsampling``: "420",
    "444" or "keep"; ``quality`` (IJG's standard tables) or ``tables`` ((luma, chroma)
    steps, 64 each, natural order); ``progressive``: libjpeg's simple progression;
    (quality 90 when neither is given); ``small``: what becomes of a file already small enough: "keep" it (rewritten losslessly
    when that is smaller) or "requantize" it to the tables and subsampling like the others
    (FFCV's recipe re-encodes every file). Huffman tables are always optimized.
    """

    short_side: int | None = None
    max_side: int | None = None
    subsampling: str = "420"
    quality: int | None = None
    tables: tuple[tuple[int, ...], tuple[int, ...]] | None = None
    progressive: bool = False
    small: str = "keep"

    def __post_init__(self):
        if (self.short_side is None) == (self.max_side is None):
            raise ValueError("give one of short_side and max_side")
        if (self.short_side or self.max_side) < 8:
            raise ValueError("the side must be at least 8 pixels")
        if self.subsampling not in (*SAMPLINGS, "keep"):
            raise ValueError(f'subsampling must be "420", "444" or "keep", not {self.subsampling!r}')
        if self.small not in ("keep", "requantize"):
            raise ValueError(f'small must be "keep" or "requantize", not {self.small!r}')
        if self.quality is not None and self.tables is not None:
            raise ValueError("give quality or tables, not both")
        if self.quality is None and self.tables is None:
            object.__setattr__(self, "quality", 90)
        if self.quality is not None:
            coefficients.standard_tables(self.quality)  # checks the range
        if self.tables is not None and (len(self.tables) != 2 or any(
                len(t) != 64 or min(t) < 1 or max(t) > 32767 for t in self.tables)):
            raise ValueError("tables: (luma, chroma), 64 steps of 1..32767 each")

    def quantization(self) -> tuple[np.ndarray, np.ndarray]:
        """(luma, chroma) steps, uint16."""
        if self.tables is not None:
            return tuple(np.asarray(t, np.uint16) for t in self.tables)
        return tuple(t.astype(np.uint16) for t in coefficients.standard_tables(self.quality))

    def target_size(self, height: int, width: int) -> tuple[int, int] | None:
        """(height, width) to shrink to, or None when the image is small enough."""
        if self.short_side is not None:
            side, n = min(height, width), self.short_side
        else:
            side, n = max(height, width), self.max_side
        if side <= n:
            return None
        if side == height:
            return n, max(1, int(n * width / height))
        return max(1, int(n * height / width)), n


@dataclasses.dataclass
class Result:
    """One file's outcome: ``action`` is "scaled", "requantized" (small enough, ``small=
    "requantize"``), "reoptimized" (small enough: rewritten losslessly, smaller), "copied"
    (small enough, left as it was), "pixels" (no YCbCr
    coefficients, or unreadable and ``on_error="fallback"``: Pillow decoded, resized and
    encoded it) or "skipped" (``error`` says why; nothing written)."""

    path: str
    action: str
    source_bytes: int
    source_mtime_ns: int = 0
    bytes: int = 0
    size: tuple[int, int] = (0, 0)
    new_size: tuple[int, int] = (0, 0)
    sha256: str = ""
    error: str = ""
    warnings: tuple[str, ...] = ()


def icc_profile(data: bytes, components: int) -> bytes | None:
    """The ICC profile of a JPEG's APP2 markers when it describes ``components`` (3: RGB,
    1: gray) colours, else None (a CMYK profile does not describe the YCbCr output; a
    damaged one is dropped). Pillow reads only the headers here."""
    from PIL import Image

    if data.find(b"ICC_PROFILE\0", 0, 1 << 20) < 0:  # most files: no need to parse
        return None
    try:
        with Image.open(io.BytesIO(data)) as im:
            profile = im.info.get("icc_profile")
    except Exception:  # noqa: BLE001 - Pillow's errors are many; the profile is dropped, the image is not
        return None
    return profile if _profile_matches(profile, components) else None


def _profile_matches(profile: bytes | None, components: int) -> bool:
    """Whether an ICC profile's data colour space (header bytes 16-19) is RGB or gray as given."""
    return bool(profile) and len(profile) >= 20 and profile[16:20] == (b"RGB " if components == 3 else b"GRAY")


def prepare_image(data: bytes, options: Options, name: str | None = None) -> tuple[bytes, str, DCTImage]:
    """(the prepared JPEG, its action, the source's coefficients) for one JPEG's bytes.

    Raises the reader's errors: an UnsupportedJPEGError with code ``colorspace`` for files
    without YCbCr coefficients (RGB, CMYK, YCCK), which :func:`prepare_file` routes through pixels.
    """
    image = read_coefficients(data, name=name)
    metadata = dict(exif=image.exif, icc_profile=icc_profile(data, len(image.components)))
    size = options.target_size(image.height, image.width)
    action = "scaled"
    if size is None and options.small == "requantize":
        size, action = (image.height, image.width), "requantized"  # the identity resize: exact
    if size is None:
        rewritten = write_coefficients(image, progressive=options.progressive, **metadata)
        return (rewritten, "reoptimized", image) if len(rewritten) < len(data) else (bytes(data), "copied", image)
    gray = len(image.components) == 1
    sampling = image.sampling if gray or options.subsampling == "keep" else SAMPLINGS[options.subsampling]
    luma, chroma = options.quantization()
    tables = [luma, chroma, chroma][: len(image.components)]
    quantized = coefficients.scale_components(image.components, image.qt, image.sampling,
                                              (image.height, image.width), size, sampling, tables)
    out = DCTImage(*quantized, *([None, None] if gray else []), qt=np.stack(tables), width=size[1],
                   height=size[0], sampling=tuple(sampling), colorspace=image.colorspace,
                   progressive=options.progressive, source=name)
    return write_coefficients(out, progressive=options.progressive, **metadata), action, image


def prepare_with_pillow(data: bytes, options: Options, name: str | None = None) -> tuple[bytes, tuple, tuple]:
    """The pixel-domain route (Pillow: decode, antialiased bilinear resize, encode at the
    same tables and subsampling): (JPEG, size, new size). What ``prepare`` does with files
    that have no YCbCr coefficients, and the baseline the benchmarks compare with."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        icc, exif = im.info.get("icc_profile"), im.info.get("exif")
        rgb = im.convert("L" if im.mode in ("L", "1", "I;16") else "RGB")
    size = (rgb.height, rgb.width)
    new = options.target_size(*size) or size
    if new != size:
        rgb = rgb.resize((new[1], new[0]), Image.Resampling.BILINEAR)
    luma, chroma = options.quantization()
    subsampling = {"420": 2, "444": 0, "keep": 2}[options.subsampling]
    out = io.BytesIO()
    icc = icc if _profile_matches(icc, 1 if rgb.mode == "L" else 3) else None
    extra = {k: v for k, v in (("icc_profile", icc), ("exif", exif)) if v}
    rgb.save(out, "JPEG", qtables=[luma.tolist(), chroma.tolist()], subsampling=subsampling, optimize=True,
             progressive=options.progressive, **extra)
    return out.getvalue(), size, new


def _through_pixels(data: bytes, options: Options, source: pathlib.Path, cause: BaseException):
    """:func:`prepare_with_pillow`, its failures (Pillow raises many kinds) as a JPEGError
    naming both decoders."""
    try:
        return prepare_with_pillow(data, options, str(source))
    except Exception as exc:  # noqa: BLE001
        raise JPEGError(f"libjpeg: {cause}; Pillow: {exc}", str(source)) from None


def prepare_file(source: pathlib.Path, target: pathlib.Path, relative: str, options: Options,
                 on_error: str) -> Result:
    """Prepares one file into ``target`` (written whole, then renamed into place)."""
    try:
        data = source.read_bytes()
        mtime = source.stat().st_mtime_ns
    except OSError as exc:  # unreadable: the reader's policy holds, Pillow cannot help
        if on_error == "raise":
            raise JPEGError(f"cannot read it: {exc}", str(source)) from exc
        return Result(relative, "skipped", 0, error=f"cannot read it: {exc}")
    result = Result(relative, "", len(data), mtime)
    tried_pixels = False
    try:
        try:
            out, result.action, image = prepare_image(data, options, str(source))
            result.size = image.height, image.width
            result.new_size = options.target_size(*result.size) or result.size
            result.warnings = image.warnings
        except UnsupportedJPEGError as exc:
            if exc.code != "colorspace":
                raise
            tried_pixels = True  # no YCbCr coefficients: Pillow's pixels are the route
            out, result.size, result.new_size = _through_pixels(data, options, source, exc)
            result.action = "pixels"
    except (JPEGError, ValueError) as exc:
        if on_error == "raise":
            if isinstance(exc, JPEGError):
                raise
            raise JPEGError(f"cannot prepare it: {exc}", str(source)) from exc
        result.error = str(exc)
        if on_error == "skip" or tried_pixels:
            result.action = "skipped"
            return result
        try:
            out, result.size, result.new_size = _through_pixels(data, options, source, exc)
            result.action = "pixels"
        except JPEGError as pillow_exc:
            result.action, result.error = "skipped", pillow_exc.reason
            return result
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    partial.write_bytes(out)
    os.replace(partial, target)
    result.bytes, result.sha256 = len(out), hashlib.sha256(out).hexdigest()
    return result


# ---- The folder: manifest, resumption, workers ----------------------------------------

def options_record(options: Options) -> dict:
    record = dataclasses.asdict(options)
    if options.tables is not None:
        record["tables"] = [list(map(int, t)) for t in options.tables]
    return record


def read_manifest(dst: pathlib.Path, options: Options, sources: dict[str, pathlib.Path]) -> dict[str, dict]:
    """The finished files of an earlier run into ``dst`` whose sources (``relative path:
    path``) are unchanged (size and modification time) and whose outputs are intact (size
    and checksum); a run with other options is an error, not a silent mix."""
    path = dst / MANIFEST
    if not path.exists():
        return {}
    done = {}
    with open(path) as f:
        lines = f.read().splitlines()
    if not lines:  # killed before the first line reached the disk
        return {}
    try:
        header = json.loads(lines[0])
    except json.JSONDecodeError:
        header = {}
    if header.get("options") != options_record(options):
        raise ValueError(f"{dst} was prepared with other options ({path}); prepare into a new folder")
    for line in lines[1:]:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:  # the line an interruption cut
            continue
        done[record["path"]] = record
    intact = {}
    for relative, record in done.items():
        if record["action"] == "skipped" or relative not in sources:
            continue  # tried again; or gone from the source
        try:
            stat = sources[relative].stat()
        except OSError:
            continue
        if (stat.st_size, stat.st_mtime_ns) != (record["source_bytes"], record.get("source_mtime_ns")):
            continue  # the source changed: prepared again
        target = dst / relative
        try:
            data = target.read_bytes()
        except OSError:
            continue
        if len(data) == record["bytes"] and hashlib.sha256(data).hexdigest() == record["sha256"]:
            intact[relative] = record
    return intact


def _work(job):
    source, target, relative, options, on_error = job
    try:
        return prepare_file(source, target, relative, options, on_error)
    except JPEGError as exc:
        return exc


def prepare(src, dst, options: Options, *, workers: int | None = None, on_error: str = "raise",
            progress: bool = True, measure: int = MEASURED, overwrite: bool = False) -> dict:
    """Prepares every JPEG under ``src`` into ``dst`` (see the module's docstring) and
    returns the summary that ``DST/prepare-report.json`` holds."""
    from .folder import check_on_error, list_jpegs

    check_on_error(on_error)
    src, dst = pathlib.Path(src), pathlib.Path(dst)
    if not src.is_dir():
        raise FileNotFoundError(f"{src} is not a folder")
    if dst.resolve() == src.resolve() or src.resolve() in dst.resolve().parents \
            or dst.resolve() in src.resolve().parents:
        raise ValueError(f"{dst} and {src} overlap: prepare into a folder of its own")
    files = list_jpegs(src)
    others = sum(1 for p in src.rglob("*") if p.is_file()) - len(files)
    sources = {f.relative_to(src).as_posix(): f for f in files}
    manifest_path = dst / MANIFEST
    if dst.is_dir() and not manifest_path.exists() and any(dst.iterdir()) and not overwrite:
        raise ValueError(f"{dst} holds files but no {MANIFEST}: prepare into an empty folder (or overwrite=True, "
                         "--overwrite, to replace what is there)")
    dst.mkdir(parents=True, exist_ok=True)
    done = read_manifest(dst, options, sources)
    todo = [(f, dst / relative, relative, options, on_error) for relative, f in sources.items() if relative not in done]
    fresh = not manifest_path.exists() or not manifest_path.read_text().strip()
    results = [Result(**{**r, "size": tuple(r["size"]), "new_size": tuple(r["new_size"]),
                         "warnings": tuple(r["warnings"])}) for r in done.values()]
    workers = workers or len(os.sched_getaffinity(0))
    started = time.perf_counter()
    with open(manifest_path, "w" if fresh else "a") as manifest:
        if fresh:
            manifest.write(json.dumps({"options": options_record(options)}) + "\n")
            manifest.flush()
        pool = multiprocessing.get_context("fork").Pool(workers) if workers > 1 and len(todo) > 1 else None
        try:
            outcomes = pool.imap_unordered(_work, todo, chunksize=4) if pool else map(_work, todo)
            from tqdm import tqdm

            for outcome in tqdm(outcomes, total=len(todo), desc="prepare", unit="file", disable=not progress,
                                initial=0):
                if isinstance(outcome, BaseException):
                    raise outcome
                results.append(outcome)
                manifest.write(json.dumps(dataclasses.asdict(outcome)) + "\n")
                manifest.flush()
        finally:
            if pool is not None:
                pool.terminate()
    seconds = time.perf_counter() - started
    summary = summarize(src, dst, results, measure)
    summary.update(files=len(files), prepared_now=len(todo), resumed=len(done), not_jpeg_files_left=others,
                   seconds=round(seconds, 3), workers=workers, options=options_record(options), on_error=on_error)
    (dst / REPORT).write_text(json.dumps(summary, indent=1) + "\n")
    return summary


# ---- The summary: bytes, read time, PSNR ------------------------------------------------

def psnr_against_reference(source: bytes, prepared: bytes) -> float:
    """PSNR (dB, RGB, 8-bit peak) of ``prepared`` decoded against the pixel-domain
    reference: ``source`` decoded and resized to the prepared size with the same filter
    (torch's antialiased bilinear), in float, unrounded."""
    import torch
    from PIL import Image

    with Image.open(io.BytesIO(source)) as im:
        reference = torch.from_numpy(np.asarray(im.convert("RGB"), np.float32)).permute(2, 0, 1)[None]
    with Image.open(io.BytesIO(prepared)) as im:
        result = np.asarray(im.convert("RGB"), np.float64)
    reference = torch.nn.functional.interpolate(reference.double(), size=result.shape[:2], mode="bilinear",
                                                antialias=True, align_corners=False)
    mse = float(((reference[0].permute(1, 2, 0).numpy() - result) ** 2).mean())
    return 10 * np.log10(255.0 ** 2 / max(mse, 1e-12))


def read_seconds(datas: Sequence[bytes]) -> float:
    """Seconds to read the coefficients of ``datas`` on one thread (the median of 3 passes)."""
    times = []
    for _ in range(3):
        started = time.perf_counter()
        for data in datas:
            read_coefficients(data)
        times.append(time.perf_counter() - started)
    return sorted(times)[1]


def summarize(src: pathlib.Path, dst: pathlib.Path, results: list[Result], measure: int) -> dict:
    """Counts and bytes of every file; read time and PSNR on an even spread of at most
    ``measure`` files prepared on coefficients."""
    written = [r for r in results if r.action != "skipped"]
    actions = {a: sum(r.action == a for r in results) for a in ("scaled", "requantized", "reoptimized", "copied",
                                                                    "pixels", "skipped")}
    summary = {
        "actions": actions,
        "bytes_before": sum(r.source_bytes for r in written),
        "bytes_after": sum(r.bytes for r in written),
        "skipped": [{"path": r.path, "error": r.error} for r in results if r.action == "skipped"],
        "through_pixels": [{"path": r.path, "error": r.error} for r in results if r.action == "pixels"],
        "with_warnings": [{"path": r.path, "warnings": list(r.warnings)} for r in results if r.warnings],
    }
    scaled = sorted((r for r in results if r.action == "scaled"), key=lambda r: r.path)
    if measure and scaled:
        picked = [scaled[i] for i in sorted(set(np.linspace(0, len(scaled) - 1, min(measure, len(scaled)))
                                                .astype(int)))]
        before = [(src / r.path).read_bytes() for r in picked]
        after = [(dst / r.path).read_bytes() for r in picked]
        read_before, read_after = read_seconds(before), read_seconds(after)
        summary["measured"] = {
            "files": len(picked),
            "read_ms_per_image_before": round(1e3 * read_before / len(picked), 3),
            "read_ms_per_image_after": round(1e3 * read_after / len(picked), 3),
            "read_speedup": round(read_before / read_after, 2),
            "bytes_ratio": round(sum(map(len, after)) / sum(map(len, before)), 4),
            "psnr_db_vs_pixel_reference": round(float(np.mean([psnr_against_reference(b, a)
                                                               for b, a in zip(before, after)])), 3),
        }
    return summary


def describe(summary: dict) -> str:
    lines = [f"{summary['files']} JPEG files: " + ", ".join(f"{n} {a}" for a, n in summary["actions"].items() if n)
             + (f" ({summary['resumed']} finished earlier)" if summary["resumed"] else "")]
    if summary["bytes_before"]:
        lines.append(f"bytes: {summary['bytes_before'] / 1e6:.1f} MB -> {summary['bytes_after'] / 1e6:.1f} MB "
                     f"({summary['bytes_after'] / summary['bytes_before']:.2f}x)")
    m = summary.get("measured")
    if m:
        lines.append(f"read time (coefficients, 1 thread, {m['files']} files): {m['read_ms_per_image_before']:.2f} -> "
                     f"{m['read_ms_per_image_after']:.2f} ms/image ({m['read_speedup']:.2f}x faster)")
        lines.append(f"PSNR against the pixel-domain reference (decode, resize in float): "
                     f"{m['psnr_db_vs_pixel_reference']:.2f} dB")
    for key, what in (("skipped", "left out"), ("through_pixels", "decoded through pixels")):
        if summary[key]:
            lines.append(f"{len(summary[key])} {what} (listed in {REPORT}):")
            lines += [f"  {r['path']}: {r['error'] or 'no YCbCr coefficients'}" for r in summary[key][:10]]
    if summary["not_jpeg_files_left"]:
        lines.append(f"{summary['not_jpeg_files_left']} files without a JPEG extension were not copied")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    from .folder import ON_ERROR

    parser = argparse.ArgumentParser(prog="dctload prepare", description=__doc__.splitlines()[0])
    parser.add_argument("src", help="a folder of JPEG files (class folders are kept)")
    parser.add_argument("dst", help="the folder to write (resumes a run into it with the same options)")
    side = parser.add_mutually_exclusive_group(required=True)
    side.add_argument("--short-side", type=int, help="shrink the shorter side to N pixels (torchvision's Resize(N))")
    side.add_argument("--max-side", type=int, help="shrink the longer side to N pixels (FFCV's max resolution)")
    parser.add_argument("--subsampling", choices=("420", "444", "keep"), default="420",
                        help="chroma subsampling of the output (default: %(default)s, what the loaders use)")
    quant = parser.add_mutually_exclusive_group()
    quant.add_argument("--quality", type=int, help="IJG quality of the standard tables (default: 90)")
    quant.add_argument("--tables", help="a JSON file of {\"luma\": [64 steps], \"chroma\": [64 steps]} "
                                        "(JPEG-DL's learned tables: nets.jpeg_dl.DCTRequantize.save_tables)")
    parser.add_argument("--progressive", action="store_true", help="libjpeg's simple progression")
    parser.add_argument("--small", choices=("keep", "requantize"), default="keep",
                        help="files already small enough: keep them (losslessly smaller if possible), or "
                             "requantize them like the others, as FFCV's recipe does (default: %(default)s)")
    parser.add_argument("--workers", type=int, default=None, help="processes (default: every usable core)")
    parser.add_argument("--on-error", choices=ON_ERROR, default="raise",
                        help="a file that cannot be read: stop, go through Pillow's pixels, or leave it out (listed)")
    parser.add_argument("--overwrite", action="store_true",
                        help="prepare into a folder that already holds files (same-named ones are replaced)")
    parser.add_argument("--measure", type=int, default=MEASURED,
                        help="files the summary times and compares (default: %(default)s; 0: none)")
    args = parser.parse_args(argv)
    tables = load_tables(args.tables) if args.tables else None
    options = Options(short_side=args.short_side, max_side=args.max_side, subsampling=args.subsampling,
                      quality=args.quality, tables=tables, progressive=args.progressive,
                      small=args.small)
    try:
        summary = prepare(args.src, args.dst, options, workers=args.workers, on_error=args.on_error,
                          measure=args.measure, overwrite=args.overwrite)
    except (JPEGError, ValueError, OSError) as exc:
        print(f"dctload prepare: {exc}", file=sys.stderr)
        return 1
    print(describe(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
