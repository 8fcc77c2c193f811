"""mindset: surgery on real transformer language models, and honest measurements of what it does."""

import os

# Nothing in mindset may fetch weights or data from a hub at run time; say so before
# huggingface_hub is imported anywhere, so a missing local file fails fast instead of hanging.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")

__version__ = "0.1.0"
