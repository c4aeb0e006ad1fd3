"""The engine on a GPU, with a model of MedGemma 4B-IT's exact architecture and random bf16 weights.

    python bench/gpu.py [--tokens 128] [--out bench/gpu.json]     # on a CUDA machine (about 5 minutes)
    python bench/gpu.py --tiny                                     # the same steps on a CPU, tiny sizes

Speed does not depend on weight values, so random weights give real figures. Random weights stop
at random, so every request here ignores end-of-turn and produces exactly --tokens tokens. One run
prints, and writes as JSON:
- device-to-device copy bandwidth, and the batch-1 decode bound it implies (weight bytes per token);
- batch-1 decode tokens/s through the engine, as a fraction of that bound;
- time to first token for one image + ~100 text tokens;
- the same request through transformers' `pipeline("image-text-to-text")`, the model card's path;
- aggregate tokens/s at 1, 8 and 32 concurrent image requests, and how often batched greedy
  answers equal the solo ones (bf16 kernels are not batch-invariant);
- setup to ready (load + warm-up), peak GPU memory.
`--tiny` runs every step on the CPU with a tiny model: it checks the script, not the speed.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from medgemma.images import IMAGE_SIZE, IMAGE_TOKENS, PATCH_SIZE  # noqa: E402

# MedGemma 4B-IT (Gemma 3 4B): text and SigLIP so400m vision tower, from its config.json.
MEDGEMMA_TEXT = {"vocab_size": 262_208, "hidden_size": 2560, "intermediate_size": 10_240, "num_hidden_layers": 34,
                 "num_attention_heads": 8, "num_key_value_heads": 4, "head_dim": 256, "sliding_window": 1024,
                 "max_position_embeddings": 131_072, "rope_theta": 1_000_000.0, "query_pre_attn_scalar": 256}
MEDGEMMA_VISION = {"hidden_size": 1152, "intermediate_size": 4304, "num_hidden_layers": 27,
                   "num_attention_heads": 16, "image_size": IMAGE_SIZE, "patch_size": PATCH_SIZE}
TINY_TEXT = {"vocab_size": 262_208, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
             "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 32, "sliding_window": 64,
             "max_position_embeddings": 4096}
TINY_VISION = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
               "image_size": IMAGE_SIZE, "patch_size": PATCH_SIZE}

DEMO_WEIGHTS = REPO_ROOT / "weights" / "demo-gemma3-270m"  # carry its tokenizer files to a GPU machine
PROMPT = ("Describe this chest radiograph for a teaching slide: the projection, the heart size, the lung fields, "
          "the costophrenic angles and the bones, in that order, with one sentence for each finding and a short "
          "summary at the end for first-year students.")  # about 100 tokens with the chat markup


def build_weights(target: Path, *, tiny: bool, device: str) -> float:
    """Random weights of the given architecture saved as our loader expects; returns their bytes."""
    import torch
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration, Gemma3Processor
    from transformers.models.gemma3 import Gemma3ImageProcessorPil

    from medgemma.prompt import chat_template
    from tests.support.tiny_model import BOI_ID, BOS_ID, EOI_ID, IMAGE_TOKEN_ID, PAD_ID, build_tokenizer

    if (DEMO_WEIGHTS / "tokenizer.json").is_file():  # Gemma 3's own tokenizer: real prompt lengths
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(DEMO_WEIGHTS)
        ids = {"image_token_index": tokenizer.image_token_id, "boi_token_index": tokenizer.convert_tokens_to_ids(
            "<start_of_image>"), "eoi_token_index": tokenizer.convert_tokens_to_ids("<end_of_image>"),
            "bos_token_id": tokenizer.bos_token_id, "pad_token_id": tokenizer.pad_token_id}
    else:  # byte-level with Gemma 3's special tokens: prompts are about 4 times longer in tokens
        tokenizer = build_tokenizer()
        ids = {"image_token_index": IMAGE_TOKEN_ID, "boi_token_index": BOI_ID, "eoi_token_index": EOI_ID,
               "bos_token_id": BOS_ID, "pad_token_id": PAD_ID}
    print(f"tokenizer: {'Gemma 3 (from the demo weights)' if len(tokenizer) > 1000 else 'byte-level'}")
    config = Gemma3Config(
        text_config=TINY_TEXT if tiny else MEDGEMMA_TEXT, vision_config=TINY_VISION if tiny else MEDGEMMA_VISION,
        mm_tokens_per_image=IMAGE_TOKENS, eos_token_id=[], **ids,
    )
    dtype = torch.float32 if device == "cpu" else torch.bfloat16
    torch.manual_seed(0)
    with torch.device(device):
        model = Gemma3ForConditionalGeneration(config).to(dtype)
    model.generation_config.eos_token_id = []
    model.save_pretrained(target)
    Gemma3Processor(image_processor=Gemma3ImageProcessorPil(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}),
                    tokenizer=tokenizer, chat_template=chat_template(), image_seq_length=IMAGE_TOKENS,
                    ).save_pretrained(target)
    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    del model
    if device == "cuda":
        torch.cuda.empty_cache()
    return float(weight_bytes)


def copy_bandwidth(device: str) -> float:
    """Bytes per second moved by a large device-to-device copy (read + write), best of 10."""
    import torch

    size = (1 << 30) if device == "cuda" else (1 << 26)
    source = torch.empty(size, dtype=torch.uint8, device=device)
    target = torch.empty_like(source)
    best = float("inf")
    for _ in range(10):
        synchronize(device)
        started = time.perf_counter()
        target.copy_(source)
        synchronize(device)
        best = min(best, time.perf_counter() - started)
    return 2 * size / best


def synchronize(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def image_bytes(index: int) -> bytes:
    import io

    from PIL import Image, ImageDraw

    image = Image.new("L", (1024, 1024), 10 * index)
    ImageDraw.Draw(image).ellipse((100 + index, 80, 900, 950 - index), fill=180)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def run_concurrently(engine, requests) -> tuple[list[str], list, float]:
    """Start every request at once; return texts, stats and wall seconds."""
    generations = [engine.generate(request) for request in requests]
    texts = [""] * len(requests)

    def read(index: int) -> None:
        texts[index] = "".join(generations[index])

    threads = [threading.Thread(target=read, args=(i,)) for i in range(len(requests))]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return texts, [g.stats for g in generations], time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tiny", action="store_true", help="tiny sizes on the CPU: checks the script, not speed")
    parser.add_argument("--tokens", type=int, default=None, help="new tokens per request (default 128; tiny 16)")
    parser.add_argument("--concurrency", default=None, help="comma-separated (default 1,8,32; tiny 1,4,8)")
    parser.add_argument("--out", type=Path, default=None, help="write the figures as JSON here")
    args = parser.parse_args()

    import torch
    import transformers

    from medgemma.config import EngineSettings
    from medgemma.loader import load_engine
    from medgemma.request import GenerationRequest
    from medgemma.weights import ResolvedWeights, WeightsKind

    device = "cpu" if args.tiny else "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        sys.exit("no CUDA GPU visible: run with --tiny to check the script on a CPU")
    tokens = args.tokens or (16 if args.tiny else 128)
    levels = [int(n) for n in (args.concurrency or ("1,4,8" if args.tiny else "1,8,32")).split(",")]
    results: dict = {
        "device": torch.cuda.get_device_name() if device == "cuda" else f"CPU ({platform.processor() or 'unknown'})",
        "tiny": args.tiny, "torch": torch.__version__, "transformers": transformers.__version__,
        "python": platform.python_version(), "new_tokens_per_request": tokens,
        "command": " ".join(["python", "bench/gpu.py", *sys.argv[1:]]),
    }

    def report(key: str, value, text: str) -> None:
        results[key] = value
        print(text, flush=True)

    with tempfile.TemporaryDirectory() as folder:
        weights = Path(folder) / "medgemma-shaped"
        started = time.perf_counter()
        weight_bytes = build_weights(weights, tiny=args.tiny, device=device)
        print(f"random weights built and saved in {time.perf_counter() - started:.1f} s", flush=True)
        bandwidth = copy_bandwidth(device)
        bound = bandwidth / weight_bytes
        report("weight_gb", weight_bytes / 1e9, f"weights: {weight_bytes / 1e9:.2f} GB")
        report("copy_bandwidth_gb_s", bandwidth / 1e9,
               f"device-to-device copy: {bandwidth / 1e9:.0f} GB/s -> batch-1 bound {bound:.1f} tokens/s")

        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        started = time.perf_counter()
        # Continuous batching off: random weights must never stop, and the manager fixes its stop set
        # when it starts. What is measured runs as in production: a lone request compiled, images batched.
        settings = EngineSettings(max_batch=max(levels), continuous=False, context_tokens=2048 if not args.tiny
                                  else 1024)
        engine = load_engine(ResolvedWeights(weights, WeightsKind.MEDGEMMA, "bench"), device, settings)
        engine.stop_ids = engine.scheduler.stop_ids = frozenset()  # random weights: always produce `tokens`
        engine.warm_up()
        synchronize(device)
        report("setup_to_ready_s", time.perf_counter() - started,
               f"setup to ready (load + warm-up on every path): {time.perf_counter() - started:.1f} s")

        def request(index: int) -> GenerationRequest:
            return GenerationRequest(prompt=f"{PROMPT} (case {index})", image=image_bytes(index),
                                     max_new_tokens=tokens)

        # Batch 1, text only: the decode rate against the bandwidth bound.
        text_only = GenerationRequest(prompt=PROMPT, max_new_tokens=tokens)
        for _ in range(2):
            generation = engine.generate(text_only)
            "".join(generation)
        decode = generation.stats.decode_tokens_per_second or 0.0
        report("batch1_decode_tokens_s", decode,
               f"batch-1 decode: {decode:.1f} tokens/s = {decode / bound:.2f} of the bandwidth bound")
        results["batch1_fraction_of_bound"] = decode / bound

        # One image + ~100 text tokens, alone: time to first token and end-to-end rate.
        generation = engine.generate(request(0))
        solo_text = "".join(generation)
        stats = generation.stats
        ours_rate = stats.output_tokens / stats.total_seconds
        report("image_ttft_s", stats.time_to_first_token,
               f"one image + {stats.input_tokens - IMAGE_TOKENS} text tokens: time to first token "
               f"{stats.time_to_first_token:.3f} s, {ours_rate:.1f} tokens/s end to end")
        results["image_tokens_s"] = ours_rate

        # The model card's path, same model and request, in the same run.
        pipeline_rate = pipeline_tokens_per_second(engine, request(0), tokens)
        report("pipeline_tokens_s", pipeline_rate,
               f"pipeline('image-text-to-text'): {pipeline_rate:.1f} tokens/s end to end -> engine is "
               f"{ours_rate / pipeline_rate:.1f}x")

        solo = {0: solo_text}
        for n in levels:
            batch = [request(i) for i in range(n)]
            for i in range(n):
                if i not in solo and n > 1 and i < 8:  # equality sample: the first 8 requests alone
                    solo[i] = "".join(engine.generate(batch[i]))
            texts, all_stats, seconds = run_concurrently(engine, batch)
            produced = sum(s.output_tokens for s in all_stats)
            rate = produced / seconds
            same = [texts[i] == solo[i] for i in range(min(n, 8)) if i in solo]
            report(f"concurrent_{n}_tokens_s", rate,
                   f"{n:3d} concurrent image requests: {rate:8.1f} tokens/s aggregate "
                   f"({rate / pipeline_rate:.1f}x pipeline); batch sizes {sorted({s.batch_size for s in all_stats})}; "
                   f"greedy equal to solo {sum(same)}/{len(same)}")
            results[f"concurrent_{n}_equal_to_solo"] = f"{sum(same)}/{len(same)}"
        if device == "cuda":
            report("peak_gpu_memory_gb", torch.cuda.max_memory_allocated() / 1e9,
                   f"peak GPU memory: {torch.cuda.max_memory_allocated() / 1e9:.1f} GB")
        engine.close()

    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")
        print(f"written to {args.out}")


def pipeline_tokens_per_second(engine, request, tokens: int) -> float:
    """End-to-end tokens/s of transformers' image-text-to-text pipeline on the same model."""
    import io

    from PIL import Image
    from transformers import pipeline

    pipe = pipeline("image-text-to-text", model=engine.model, processor=engine.processor)
    image = Image.open(io.BytesIO(request.image)).convert("RGB")
    messages = [{"role": "user", "content": [{"type": "image", "image": image},
                                             {"type": "text", "text": request.prompt}]}]
    kwargs = {"max_new_tokens": tokens, "min_new_tokens": tokens, "do_sample": False}
    pipe(text=messages, generate_kwargs=kwargs)  # warm
    started = time.perf_counter()
    pipe(text=messages, generate_kwargs=kwargs)
    return tokens / (time.perf_counter() - started)


if __name__ == "__main__":
    main()
