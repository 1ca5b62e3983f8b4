"""Ctrl-C and threads: a long `convert` or `warm_start` stops within a second of SIGINT, raising
KeyboardInterrupt and leaving nothing; while it runs, the GIL is free for the script's other threads."""
import json
import signal
import struct
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import warmstart
from conftest import files_under

CHILD = textwrap.dedent(
    """
    import sys
    import warmstart
    what, src, dst = sys.argv[1:]
    print("start", flush=True)
    try:
        if what == "convert":
            warmstart.convert(src, dst, to="tf")
        else:
            warmstart.warm_start(src, target=src, output=dst)
    except KeyboardInterrupt:
        print("interrupted", flush=True)
        sys.exit(3)
    print("done", flush=True)
    """
)


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    """A 512 MiB safetensors file of zeros (sparse: made at once, and read without the disk), a second
    or more of work to convert or warm-start from."""
    path = tmp_path_factory.mktemp("big") / "big.safetensors"
    rows, cols = 1 << 17, 1024
    header = json.dumps({"w": {"dtype": "F32", "shape": [rows, cols], "data_offsets": [0, rows * cols * 4]}})
    header = header.encode().ljust((len(header) + 7) // 8 * 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(header)) + header)
        f.truncate(8 + len(header) + rows * cols * 4)
    assert warmstart.load_checkpoint(path).get_rows("w", rows - 1, rows).sum() == 0
    return path


@pytest.mark.parametrize("what", ["convert", "warm_start"])
def test_ctrl_c_stops_within_a_second_and_leaves_nothing(what, big, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    # Into a TF bundle: with its checksums, the slowest output to write.
    dst = out / "model.ckpt"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, what, str(big), str(dst)], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout.readline().strip() == "start"
    time.sleep(0.4)
    assert child.poll() is None, "finished before Ctrl-C: make the file larger"
    sent = time.monotonic()
    child.send_signal(signal.SIGINT)
    code = child.wait(timeout=30)
    stopped = time.monotonic() - sent
    rest = child.stdout.read().strip()
    assert (code, rest) == (3, "interrupted")
    assert stopped < 1.0, f"took {stopped:.2f} s to stop"
    assert files_under(out) == [], "an interrupted run left files"


def test_the_gil_is_released_while_converting(big, tmp_path):
    worker = threading.Thread(target=warmstart.convert, args=(big, tmp_path / "model.safetensors"))
    worker.start()
    spins = 0
    while worker.is_alive():
        spins += 1
    worker.join()
    assert (tmp_path / "model.safetensors").is_file()
    # 512 MiB: not kept with pytest's last temporary folders.
    (tmp_path / "model.safetensors").unlink()
    # Held by the conversion, the GIL would have let this thread run only before and after it.
    assert spins > 10_000
