"""dctload's benchmarks: DCT against RGB, side by side, each stage a module run as a
script (``python -m bench.reader``, ``bench.pipeline``, ``bench.loaders``,
``bench.models``, ``bench.training``), and the whole report (``dctload bench``,
``python -m bench``). Results go to ``dctload-bench/`` in the current directory unless
``--out`` says otherwise (``$DCTLOAD_BENCH_RESULTS`` moves the default)."""
