"""vlstudy: a reproducible study kit for Chinese video-language pre-training (Youku-mPLUG and companions)."""

import os

# Nothing is fetched at run time. transformers must see HF_HUB_OFFLINE before it is first imported, or a
# hub id retries for ~23 s before failing (shared/ENVIRONMENT.md); DVC must not phone home.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

__version__ = "0.1.0"
