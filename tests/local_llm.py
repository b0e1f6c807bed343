"""Start llama-cpp-python's OpenAI-compatible server (`python -m llama_cpp.server`) for the tests.

The same server and arguments as `python -m llama_cpp.server`, with one change: llama.cpp's
"extra buffer types" (AMX and weight repacking) are switched off. On this machine's virtual
Xeon the CPU reports AMX, and llama.cpp's AMX matrix multiply crashes the process with a
segmentation fault on the first decode (llama-cpp-python 0.3.36, built natively); the plain
CPU kernels are fine. Deployments run the server as they like; the tests need one that works.

    python -m tests.local_llm --model model.gguf --host 127.0.0.1 --port 8080
"""

from __future__ import annotations

import llama_cpp
import llama_cpp.llama
from llama_cpp.server.__main__ import main

_default_model_params = llama_cpp.llama_model_default_params


def _model_params_without_extra_buffers():
    params = _default_model_params()
    params.use_extra_bufts = False
    return params


llama_cpp.llama_model_default_params = _model_params_without_extra_buffers
llama_cpp.llama.llama_cpp.llama_model_default_params = _model_params_without_extra_buffers

if __name__ == "__main__":
    main()
