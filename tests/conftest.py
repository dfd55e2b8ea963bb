"""Suite-wide test settings: one torch thread (tiny ops are launch-bound; threads only add overhead)."""
import os

import torch

torch.set_num_threads(int(os.environ.get('CGGAN_TEST_THREADS', '1')))
