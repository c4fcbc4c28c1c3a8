"""Third-party libraries stay quiet in every Parley process: no usage telemetry, no hub downloads.

NeMo Guardrails reports usage and DeepEval phones home unless told not to; the bundled MiniLM needs
no Hugging Face hub; pydantic-ai prints a first-run banner (a Logfire pitch) into a terminal and
transformers a progress bar per model load, both in the middle of a chat; logfire's pydantic plugin,
which Parley does not use, costs every process a second of imports on its first model. Values already
in the environment win, so an operator who wants a hub model for `PARLEY_EMBEDDING_MODEL` sets
`HF_HUB_OFFLINE=0`. Call `quiet_libraries()` before those
libraries are imported: they read the variables at import time.
"""

from __future__ import annotations

import os

QUIET_ENV: dict[str, str] = {
    "NEMO_GUARDRAILS_NO_USAGE_STATS": "1",
    "DEEPEVAL_TELEMETRY_OPT_OUT": "YES",
    "DEEPEVAL_DISABLE_DOTENV": "1",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "PYDANTIC_AI_NO_BANNER": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "PYDANTIC_DISABLE_PLUGINS": "logfire-plugin",
}


def quiet_libraries(*, force: bool = False) -> None:
    """Set `QUIET_ENV`; with `force`, over values already set (tests must not depend on the shell)."""
    for name, value in QUIET_ENV.items():
        if force:
            os.environ[name] = value
        else:
            os.environ.setdefault(name, value)
