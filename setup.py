"""Builds dctload and its libjpeg-backed C extension (csrc/reader.c).

Links the system libjpeg(-turbo). Set DCTLOAD_JPEG_PREFIX to a prefix holding
include/jpeglib.h and lib/libjpeg.so to build against another copy.
"""

import os
import tempfile

from setuptools import Extension, find_packages, setup
from setuptools.command.build_ext import build_ext

MISSING_LIBJPEG = """
dctload needs libjpeg(-turbo)'s development headers (jpeglib.h), and none were found.
Install them, then build again:
  Debian/Ubuntu:  apt-get install libjpeg62-turbo-dev   (Ubuntu: libjpeg-turbo8-dev)
  Fedora/RHEL:    dnf install libjpeg-turbo-devel
  macOS:          brew install jpeg-turbo   and set DCTLOAD_JPEG_PREFIX=$(brew --prefix jpeg-turbo)
or point DCTLOAD_JPEG_PREFIX at a prefix with include/jpeglib.h and lib/libjpeg.*
"""


def jpeg_dirs():
    prefix = os.environ.get("DCTLOAD_JPEG_PREFIX")
    if not prefix:
        return [], []
    return [os.path.join(prefix, "include")], [os.path.join(prefix, "lib")]


class BuildWithLibjpegCheck(build_ext):
    """Fails early with install instructions when jpeglib.h is missing."""

    def run(self):
        include_dirs, _ = jpeg_dirs()
        with tempfile.TemporaryDirectory() as tmp:
            probe = os.path.join(tmp, "probe.c")
            with open(probe, "w") as f:
                f.write("#include <stdio.h>\n#include <jpeglib.h>\nint main(void){return 0;}\n")
            from setuptools._distutils.ccompiler import new_compiler
            from setuptools._distutils.sysconfig import customize_compiler

            compiler = new_compiler()
            customize_compiler(compiler)
            try:
                compiler.compile([probe], output_dir=tmp, include_dirs=include_dirs)
            except Exception as exc:  # CompileError, or no compiler at all
                raise SystemExit(MISSING_LIBJPEG + f"\n(the probe compile said: {exc})")
        super().run()


include_dirs, library_dirs = jpeg_dirs()
extra_compile_args = ["-O3", "-Wall", "-Wno-missing-field-initializers"]
extra_link_args = []
if os.environ.get("DCTLOAD_SANITIZE"):
    # AddressSanitizer + UndefinedBehaviorSanitizer build: `bash run.sh test-sanitized`.
    flags = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-O1", "-g"]
    extra_compile_args += flags
    extra_link_args += flags

setup(
    name="dctload",
    version="0.2.0",
    description="Quantized JPEG DCT coefficients for PyTorch, straight from JPEG bytes",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["dctload", "dctload.*", "nets", "nets.*", "bench"]),
    package_data={"bench": ["floor.c"]},
    ext_modules=[
        Extension(
            "dctload._reader",
            sources=["csrc/reader.c", "csrc/resample.c"],
            depends=["csrc/resample.h"],
            libraries=["jpeg"],
            include_dirs=include_dirs,
            library_dirs=library_dirs,
            runtime_library_dirs=library_dirs,
            extra_compile_args=extra_compile_args,
            extra_link_args=extra_link_args,
        )
    ],
    cmdclass={"build_ext": BuildWithLibjpegCheck},
    install_requires=["numpy>=1.24"],
    extras_require={
        "torch": ["torch>=2.1", "torchvision>=0.16"],
        "bench": ["pillow>=10", "scikit-image>=0.21", "jpeglib>=1.0", "tqdm>=4.60", "matplotlib>=3.6"],
        "test": ["pytest>=7", "hypothesis>=6", "pillow>=10.2", "jpeglib>=1.0", "psutil>=5"],
        "train": ["tqdm>=4.60", "matplotlib>=3.6", "tensorboard>=2.12"],
        "dali": ["nvidia-dali-cuda120>=1.30"],
        "prepare": ["pillow>=10", "tqdm>=4.60", "torch>=2.1"],
        "codecs": ["constriction>=0.4", "pytorch-msssim>=1.0", "pillow>=10", "matplotlib>=3.6"],
    },
    entry_points={
        "console_scripts": ["dctload = dctload.cli:main"],
        # Commands of the repository's other packages: dctload's CLI finds them here and imports neither.
        "dctload.commands": [
            "bench = bench.report:main",
            "train = nets.train:main",
            "evaluate = nets.evaluate:main",
            "plot = nets.plot:main",
            "codecs = nets.codecs:main",
        ],
    },
)
