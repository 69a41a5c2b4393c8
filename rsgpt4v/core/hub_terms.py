"""The Hugging Face Hub's vocabularies a dataset card's YAML front matter must use, copied here
because no Python package ships them, with where each list was read:

- licence ids: huggingface/hub-docs `docs/hub/repositories-licenses.md` (commit fd6cf1f5). The Hub
  refuses a card whose `license` is not one of them ('"license" must be one of ...').
- task categories: huggingface/huggingface.js `packages/tasks/src/pipelines.ts` (commit 2c2de898),
  the categories the Hub shows in its dataset filter.
- size buckets: `datasets/utils/resources/size_categories.json` (datasets 5.2.0).

`check_front_matter` checks a card's metadata against them offline: the Hub's own check
(`/api/validate-yaml`) runs on the server, when a card is uploaded.
"""

from __future__ import annotations

import re
from typing import Any

HUB_LICENSES: frozenset[str] = frozenset("""
apache-2.0 mit openrail bigscience-openrail-m creativeml-openrail-m bigscience-bloom-rail-1.0 bigcode-openrail-m
afl-3.0 artistic-2.0 bsl-1.0 bsd bsd-2-clause bsd-3-clause bsd-3-clause-clear c-uda cc cc0-1.0 cc-by-2.0
cc-by-2.5 cc-by-3.0 cc-by-4.0 cc-by-sa-3.0 cc-by-sa-4.0 cc-by-nc-2.0 cc-by-nc-3.0 cc-by-nc-4.0 cc-by-nd-4.0
cc-by-nc-nd-3.0 cc-by-nc-nd-4.0 cc-by-nc-sa-2.0 cc-by-nc-sa-3.0 cc-by-nc-sa-4.0 cdla-sharing-1.0
cdla-permissive-1.0 cdla-permissive-2.0 wtfpl ecl-2.0 epl-1.0 epl-2.0 etalab-2.0 eupl-1.1 eupl-1.2 agpl-3.0
gfdl gpl gpl-2.0 gpl-3.0 lgpl lgpl-2.1 lgpl-3.0 isc h-research intel-research lppl-1.3c ms-pl apple-ascl
apple-amlr mpl-2.0 odc-by odbl openmdw-1.0 openmdw-1.1 openrail++ osl-3.0 postgresql ofl-1.1 ncsa unlicense
zlib pddl lgpl-lr deepfloyd-if-license fair-noncommercial-research-license llama2 llama3 llama3.1 llama3.2
llama3.3 llama4 grok2-community gemma unknown other
""".split())

# The dataset filter's categories (those pipelines.ts marks hideInDatasets are left out).
HUB_TASK_CATEGORIES: frozenset[str] = frozenset("""
text-classification token-classification table-question-answering question-answering zero-shot-classification
translation summarization feature-extraction text-generation fill-mask sentence-similarity text-to-speech
text-to-audio automatic-speech-recognition audio-to-audio audio-classification voice-activity-detection
depth-estimation image-classification object-detection image-segmentation text-to-image image-to-text
image-to-image image-to-video unconditional-image-generation video-classification reinforcement-learning robotics
tabular-classification tabular-regression tabular-to-text table-to-text multiple-choice text-ranking
text-retrieval time-series-forecasting text-to-video image-text-to-text image-text-to-image image-text-to-video
visual-question-answering zero-shot-image-classification graph-ml mask-generation zero-shot-object-detection
text-to-3d image-to-3d image-feature-extraction video-text-to-text visual-document-retrieval any-to-any
""".split())

# (upper bound, bucket), smallest first; the last bucket has no bound.
_SIZE_BUCKETS: tuple[tuple[float, str], ...] = (
    (1e3, "n<1K"), (1e4, "1K<n<10K"), (1e5, "10K<n<100K"), (1e6, "100K<n<1M"), (1e7, "1M<n<10M"),
    (1e8, "10M<n<100M"), (1e9, "100M<n<1B"), (1e10, "1B<n<10B"), (1e11, "10B<n<100B"), (1e12, "100B<n<1T"),
)
HUB_SIZE_CATEGORIES: frozenset[str] = frozenset({b for _, b in _SIZE_BUCKETS} | {"n>1T", "unknown"})

# `datasets` reads a split name from the card's configs only when it matches this (naming._split_re).
SPLIT_NAME = re.compile(r"^\w+(\.\w+)*$")
# A licence_name: lower case words joined by dashes, as the Hub's examples write them.
LICENSE_NAME = re.compile(r"^[a-z0-9]+(?:[-.][a-z0-9]+)*$")


def size_category(rows: int) -> str:
    """The size bucket of a dataset of `rows` rows: 999 is n<1K, 1000 is 1K<n<10K."""
    return next((bucket for bound, bucket in _SIZE_BUCKETS if rows < bound), "n>1T")


def check_front_matter(meta: dict[str, Any]) -> list[str]:
    """What the Hub would object to in a dataset card's metadata, as sentences; [] when nothing."""
    problems = []
    licenses = meta.get("license")
    for value in licenses if isinstance(licenses, list) else [licenses]:
        if value not in HUB_LICENSES:
            problems.append(f"license {value!r} is not one of the Hub's licence ids")
    if licenses == "other" or (isinstance(licenses, list) and "other" in licenses):
        if not isinstance(meta.get("license_name"), str) or not LICENSE_NAME.match(meta["license_name"]):
            problems.append("license other needs a license_name of lower-case words joined by dashes")
        if not isinstance(meta.get("license_link"), str) or not meta["license_link"]:
            problems.append("license other needs a license_link (a file in the repository or a URL)")
    for category in meta.get("task_categories") or []:
        if category not in HUB_TASK_CATEGORIES:
            problems.append(f"task category {category!r} is not one the Hub lists")
    for bucket in meta.get("size_categories") or []:
        if bucket not in HUB_SIZE_CATEGORIES:
            problems.append(f"size category {bucket!r} is not one of the Hub's buckets")
    for config in meta.get("configs") or []:
        for entry in config.get("data_files") or []:
            if isinstance(entry, dict) and not SPLIT_NAME.match(str(entry.get("split"))):
                problems.append(f"split name {entry.get('split')!r} is not letters, digits and _ (datasets refuses it)")
    for key in ("license", "task_categories", "tags", "size_categories", "language", "pretty_name"):
        if not meta.get(key):
            problems.append(f"no {key}")
    return problems
