"""How many input tokens a model counts for one image, by the rule its maker documents.

OpenAI's rules are from its vision pricing guide (and billed counts reported on its community
forum); the open models' from the image processors their servers run (vLLM and SGLang use the
Hugging Face processors): Qwen2-VL/2.5-VL `smart_resize` (transformers
`models/qwen2_vl/image_processing_qwen2_vl.py`, with the checkpoints' preprocessor_config.json),
InternVL's `dynamic_preprocess` 448-pixel tiles (the model cards' code;
`vllm/model_executor/models/internvl.py`), LLaVA-OneVision's anyres grid (transformers
`models/llava_onevision/processing_llava_onevision.py::_get_unpadded_features`). Counts are of the image's own
tokens, without the one or two marker tokens around it.
"""

from __future__ import annotations

import math


def image_tokens(width: int, height: int, detail: str, base: int = 85, tile: int = 170) -> int:
    """Input tokens for one image under OpenAI's tile rule (GPT-4o family; `base`/`tile` vary by model)."""
    if detail == "low":
        return base
    scale = min(1.0, 2048 / max(width, height))
    w, h = width * scale, height * scale
    scale = min(1.0, 768 / min(w, h))
    w, h = w * scale, h * scale
    return base + tile * math.ceil(w / 512) * math.ceil(h / 512)


def patch_tokens(width: int, height: int, patch: int = 32, cap: int = 1536, multiplier: float = 1.0) -> int:
    """Input tokens for one image under OpenAI's patch rule (GPT-4.1-mini family)."""
    patches = math.ceil(width / patch) * math.ceil(height / patch)
    if patches > cap:
        shrink = math.sqrt(patch * patch * cap / (width * height))
        patches = min(cap, math.ceil(width * shrink / patch) * math.ceil(height * shrink / patch))
    return math.ceil(patches * multiplier)


def qwen2_vl_tokens(width: int, height: int, min_pixels: int = 3136, max_pixels: int = 12845056,
                    patch_size: int = 14, merge_size: int = 2) -> int:
    """Qwen2-VL / Qwen2.5-VL: the image is resized to multiples of 28 px (patch 14, merged 2 x 2) with its
    area kept between `min_pixels` and `max_pixels`; one token per 28 x 28 block. The defaults are the
    checkpoints' preprocessor_config.json (a server may lower max_pixels, e.g. vLLM's
    --mm-processor-kwargs '{"max_pixels": 1003520}')."""
    factor = patch_size * merge_size
    h_bar = max(factor, round(height / factor) * factor)
    w_bar = max(factor, round(width / factor) * factor)
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return (h_bar // factor) * (w_bar // factor)


def internvl_tiles(width: int, height: int, min_tiles: int = 1, max_tiles: int = 12, tile_size: int = 448) -> int:
    """InternVL2/2.5 `dynamic_preprocess`: the grid of `tile_size` tiles whose aspect ratio is closest
    to the image's (ties go to the larger grid when the image covers more than half of it)."""
    ratios = sorted({(i, j) for n in range(min_tiles, max_tiles + 1) for i in range(1, n + 1)
                     for j in range(1, n + 1) if min_tiles <= i * j <= max_tiles}, key=lambda r: r[0] * r[1])
    aspect = width / height
    best, best_diff = (1, 1), math.inf
    for i, j in ratios:
        diff = abs(aspect - i / j)
        if diff < best_diff:
            best, best_diff = (i, j), diff
        elif diff == best_diff and width * height > 0.5 * tile_size * tile_size * i * j:
            best = (i, j)
    return best[0] * best[1]


def internvl_tokens(width: int, height: int, min_tiles: int = 1, max_tiles: int = 12, thumbnail: bool = True,
                    tile_size: int = 448, tokens_per_tile: int = 256) -> int:
    """InternVL2/2.5: 256 tokens per 448 px tile ((448/14)^2 patches, pixel-shuffled by 0.5 per side), plus
    a thumbnail tile of the whole image when there is more than one tile."""
    tiles = internvl_tiles(width, height, min_tiles, max_tiles, tile_size)
    if thumbnail and tiles != 1:
        tiles += 1
    return tokens_per_tile * tiles


def _best_resolution(width: int, height: int, grid: int, crop: int) -> tuple[int, int]:
    """LLaVA's `select_best_resolution` over the anyres grid: the (height, width) canvas that keeps the
    most of the image's resolution once fitted, then wastes the least."""
    best, best_effective, best_waste = (crop, crop), -1, math.inf
    for i in range(1, grid + 1):
        for j in range(1, grid + 1):
            ch, cw = crop * i, crop * j
            scale = min(cw / width, ch / height)
            effective = min(int(width * scale) * int(height * scale), width * height)
            waste = cw * ch - effective
            if effective > best_effective or (effective == best_effective and waste < best_waste):
                best, best_effective, best_waste = (ch, cw), effective, waste
    return best


def llava_onevision_tokens(width: int, height: int, crop: int = 384, per_side: int = 27, grid: int = 6,
                           max_crops: int = 9) -> int:
    """LLaVA-OneVision (anyres_max_9, SigLIP 384/14): the base crop's 27 x 27 = 729 tokens, plus the
    features of the best grid canvas with the padding taken off, one newline token per row, shrunk
    when the canvas holds more than `max_crops` crops' worth."""
    best_h, best_w = _best_resolution(width, height, grid, crop)
    ch, cw = per_side * (best_h // crop), per_side * (best_w // crop)
    if width / height > cw / ch:
        new_h = int(round(height * cw / width, 7))
        ch -= 2 * ((ch - new_h) // 2)
    else:
        new_w = int(round(width * ch / height, 7))
        cw -= 2 * ((cw - new_w) // 2)
    unpadded, newline = ch * cw, ch
    ratio = math.sqrt(ch * cw / (max_crops * per_side * per_side))
    if ratio > 1.1:
        unpadded = int(ch // ratio) * int(cw // ratio)
        newline = int(ch // ratio)
    return unpadded + newline + per_side * per_side
