#!/usr/bin/env bash
# Set-up and entry points on a fresh machine (Python 3.11, gcc):
#   bash run.sh bench [FOLDER] [--quick]   the DCT-vs-RGB benchmark report (.venv/bin/dctload bench)
#   bash run.sh test [PYTEST ARGS]         the test suite (what CI runs)
#   bash run.sh test-sanitized [ARGS]      the suite under ASan + UBSan (CI runs it too)
#   bash run.sh fuzz [SECONDS]             fuzz the reader (atheris), 120 s by default
# Creates .venv with the pinned requirements and builds the C extension on first use.
set -euo pipefail
cd "$(dirname "$0")"

ensure_libjpeg_headers() {
    if ! printf '#include <stdio.h>\n#include <jpeglib.h>\n' | ${CC:-cc} -E -x c - >/dev/null 2>&1; then
        echo "run.sh: libjpeg headers missing; installing libjpeg62-turbo-dev" >&2
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
            apt-get update -qq && apt-get install -y -qq libjpeg62-turbo-dev >/dev/null
        else
            echo "run.sh: install libjpeg-turbo's development package (Debian: libjpeg62-turbo-dev)" >&2
            exit 1
        fi
    fi
}

ensure_env() {
    local stamp=.venv/.installed
    local inputs="requirements-ci.txt setup.py pyproject.toml csrc"
    if [ -f "$stamp" ] && [ -z "$(find $inputs -newer "$stamp" 2>/dev/null)" ]; then
        return
    fi
    ensure_libjpeg_headers
    [ -x .venv/bin/python ] || python3 -m venv .venv
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -r requirements-ci.txt
    .venv/bin/python -m pip install -q -e .
    touch "$stamp"
}

command=${1:-}
shift || true
case "$command" in
    bench)
        ensure_env
        exec .venv/bin/dctload bench "$@"
        ;;
    test)
        ensure_env
        exec .venv/bin/python -m pytest tests "$@"
        ;;
    test-sanitized)
        # The suite against an AddressSanitizer + UBSan build of the C extension, built
        # apart in build/sanitized (the resident-memory test is left out: ASan's shadow
        # memory makes RSS meaningless). PYTHONSAFEPATH keeps ./dctload, the plain
        # build, off sys.path.
        ensure_env
        rm -rf build/sanitized
        DCTLOAD_SANITIZE=1 .venv/bin/python setup.py -q build --build-base build/sanitized \
            --build-lib build/sanitized/lib >/dev/null
        sanitized=(env PYTHONSAFEPATH=1 PYTHONPATH="$PWD/build/sanitized/lib"
            LD_PRELOAD="$(${CC:-cc} -print-file-name=libasan.so):$(${CC:-cc} -print-file-name=libubsan.so)"
            ASAN_OPTIONS=detect_leaks=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 .venv/bin/python)
        "${sanitized[@]}" -c "import dctload._reader as r; assert '/sanitized/' in r.__file__, r.__file__"
        # Tests of pure-torch code (networks, training, JPEG-DL) do not touch the extension;
        # the GPU paths' tests load DALI's and CUDA's libraries, which ASan cannot host;
        # the benchmark report's run reads through the reader that the other tests check.
        exec "${sanitized[@]}" -m pytest tests --ignore=tests/test_nets.py --ignore=tests/test_train.py \
            --ignore=tests/test_jpeg_dl.py --ignore=tests/test_pixels.py --ignore=tests/test_gpu.py \
            --ignore=tests/test_bench.py \
            -k "not memory_flat" "$@"
        ;;
    fuzz)
        # Seeds from ../shared/data; a crash, a 10 s input or 3 GB of memory fails the run
        # and leaves the input in build/fuzz-artifacts/ (make it a file of fuzz/regressions/).
        ensure_env
        mkdir -p build/fuzz-work build/fuzz-artifacts
        .venv/bin/python fuzz/make_corpus.py build/fuzz-corpus
        exec .venv/bin/python fuzz/fuzz_reader.py build/fuzz-work build/fuzz-corpus -max_total_time="${1:-120}" \
            -timeout=10 -rss_limit_mb=3072 -artifact_prefix=build/fuzz-artifacts/ -print_final_stats=1
        ;;
    *)
        echo "usage: bash run.sh bench [FOLDER] [--quick] | test [PYTEST ARGS] | test-sanitized [PYTEST ARGS] | fuzz [SECONDS]" >&2
        exit 2
        ;;
esac
