"""An Ollama Modelfile next to an exported GGUF: the chat template in Ollama's Go template syntax."""

from __future__ import annotations

import re
from pathlib import Path

CHATML_TEMPLATE = """{{- if .System }}<|im_start|>system
{{ .System }}<|im_end|>
{{ end }}{{- range .Messages }}<|im_start|>{{ .Role }}
{{ .Content }}<|im_end|>
{{ end }}<|im_start|>assistant
"""


def default_system_prompt(chat_template: str) -> str | None:
    """The system message a ChatML template inserts when the conversation has none (SmolLM2 has one)."""
    match = re.search(r"<\|im_start\|>system\n(.+?)<\|im_end\|>", chat_template or "", re.S)
    return match.group(1).strip() if match and "{{" not in match.group(1) else None


def modelfile_text(gguf_name: str, chat_template: str | None) -> str:
    lines = [f"FROM ./{gguf_name}", ""]
    if chat_template and "<|im_start|>" in chat_template:
        lines += [f'TEMPLATE """{CHATML_TEMPLATE}"""', ""]
        system = default_system_prompt(chat_template)
        if system:
            lines += [f'SYSTEM """{system}"""', ""]
        lines += ['PARAMETER stop "<|im_start|>"', 'PARAMETER stop "<|im_end|>"']
    else:
        lines += ["# The model's chat template is not ChatML; write its TEMPLATE by hand (Ollama uses Go templates)."]
    return "\n".join(lines) + "\n"


def write_modelfile(gguf_path: Path, chat_template: str | None) -> Path:
    from mindset.fileio import atomic_write_text

    path = gguf_path.with_name("Modelfile")
    atomic_write_text(path, modelfile_text(gguf_path.name, chat_template))
    return path
