"""Writes the bench's safetensors copy of W1 again as a PyTorch checkpoint with `torch.save`, for
`cargo xtask bench --with-torch PYTHON` to time warmstart's torch reader on (run once per workload; the
result is cached beside the other conversions).

Usage: python torch_save.py SRC.safetensors DST.bin

The state dict is safetensors.torch.load_file's, saved as torch.save saves a model's state dict (the
zip format of torch >= 1.6). It is written to DST.bin.tmp and renamed, so a DST.bin is always whole.
"""

import os
import sys


def main(src, dst):
    import safetensors.torch
    import torch

    state_dict = safetensors.torch.load_file(src)
    staged = dst + ".tmp"
    torch.save(state_dict, staged)
    os.replace(staged, dst)
    print(f"tensors={len(state_dict)} bytes={os.path.getsize(dst)}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
