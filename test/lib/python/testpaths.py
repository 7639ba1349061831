"""Makes the product package importable from the test checkers.

The checkers live in test/lib/python and test the package in python/sqa_mlir
(or an installed one: an `sqa_mlir` already on sys.path is left first). Each
checker imports this module before `sqa_mlir`, so they run as plain scripts
without PYTHONPATH.
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
PACKAGE_PARENT = os.path.join(REPO_ROOT, "python")
# The C test doubles (fake driver, GPU emulator runtime).
CUDA_TEST_LIB = os.path.join(os.path.dirname(HERE), "cuda")

if PACKAGE_PARENT not in sys.path:
    sys.path.append(PACKAGE_PARENT)
