"""The process's CPU threads, for Paddle's kernels and oneDNN's."""


def use_threads(threads: int) -> None:
    """Set the process's CPU threads for Paddle's kernels and oneDNN's."""
    # Paddle fixes OpenMP's and MKL's thread count at import (OMP_NUM_THREADS=1 unless
    # set), and oneDNN's kernels read it when their primitives are made, so this must run
    # before the first convolution. Paddle has no public API for it in 3.x.
    import paddle
    paddle.base.core.set_num_threads(threads)
