"""Seeds a fuzzing corpus: every file of ``../shared/data/jpeg-edge`` under 256 KB, and
truncated and bit-flipped ImageNet samples (``python fuzz/make_corpus.py OUT_DIR``)."""

import pathlib
import sys

import numpy as np

SHARED = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data"


def main(out: str) -> int:
    out_dir = pathlib.Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    count = 0
    for path in sorted((SHARED / "jpeg-edge").rglob("*")):
        if path.is_file() and path.suffix.lower() != ".tsv" and path.stat().st_size < 256 * 1024:
            (out_dir / f"edge-{count:04d}").write_bytes(path.read_bytes())
            count += 1
    for i, path in enumerate(sorted((SHARED / "imagenet-sample").glob("*.JPEG"))[:20]):
        data = path.read_bytes()
        (out_dir / f"cut-{i:03d}").write_bytes(data[: int(rng.integers(100, len(data)))])
        flipped = bytearray(data)
        for position in rng.integers(0, len(data), size=4):
            flipped[position] ^= 1 << int(rng.integers(0, 8))
        (out_dir / f"flip-{i:03d}").write_bytes(bytes(flipped))
        count += 2
    if count == 0:
        print(f"{SHARED} is absent: the corpus is empty, the fuzzer starts from nothing", file=sys.stderr)
    print(f"{count} seeds in {out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
