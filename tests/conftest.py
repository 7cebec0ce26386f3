import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))  # tests/gradcheck.py etc.


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def pytest_report_header(config):
    import ubdiff
    info = ubdiff.build_info()
    return (f"ubdiff {info['version']}: BLAS {info['blas']}; threads {info['num_threads']}; "
            f"CUDA compiled {info['cuda_compiled']}, GPU present {info['gpu_present']}")
