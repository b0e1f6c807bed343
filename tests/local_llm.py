"""Start llama-cpp-python's OpenAI-compatible server (`python -m llama_cpp.server`) for the tests.

The same server and arguments as `python -m llama_cpp.server`, with llama.cpp's extra buffer
types (AMX kernels, weight repacking) switched off as the advisor's in-process backend does
(`advisor.llm.without_extra_buffers`): on this machine's virtual Xeon the CPU reports AMX and
llama.cpp's AMX matrix multiply crashes the server with a segmentation fault on the first decode
(llama-cpp-python 0.3.36, built natively); the plain CPU kernels are fine. Deployments run their
server as they like; the tests need one that works.

    python -m tests.local_llm --model model.gguf --host 127.0.0.1 --port 8080
"""

from __future__ import annotations

import sys
from pathlib import Path


def server_command(model: Path, port: int) -> list[str]:
    """The command line that starts this server for Gemma 3 270M on 127.0.0.1:`port` (2 threads)."""
    return [
        sys.executable, "-m", "tests.local_llm", "--model", str(model), "--host", "127.0.0.1",
        "--port", str(port), "--n_ctx", "4096", "--chat_format", "gemma", "--n_threads", "2",
    ]  # fmt: skip


if __name__ == "__main__":
    from llama_cpp.server.__main__ import main

    from advisor.llm import without_extra_buffers

    without_extra_buffers()
    main()
