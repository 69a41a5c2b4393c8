"""How many input tokens a model counts for one image, by the rule its maker documents."""

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
