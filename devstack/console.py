"""The local stack's terminal: one line per event, labelled with the part of the system it comes from.

Functions log as they do in Lambda (Powertools JSON, EMF metrics); here each such line is
rewritten as a short readable one, keeping the keys a developer follows a message by.
"""

from __future__ import annotations

import io
import json
import sys
import threading
import time
from typing import Any, TextIO

_LABEL_WIDTH = 12
_lock = threading.Lock()

# Keys every Powertools line carries; they say nothing about the message being followed.
_CONTEXT_KEYS = {
    "level",
    "message",
    "timestamp",
    "location",
    "service",
    "cold_start",
    "function_name",
    "function_memory_size",
    "function_arn",
    "function_request_id",
    "xray_trace_id",
    "sampling_rate",
    "exception",
    "exception_name",
    "stack_trace",
}


def say(label: str, text: str, stream: TextIO | None = None) -> None:
    """Print one line (or several, indented under the first) for `label`."""
    stamp = time.strftime("%H:%M:%S")
    first, *rest = text.splitlines() or [""]
    lines = [
        f"{stamp} {label:<{_LABEL_WIDTH}} {first}",
        *(f"{'':>{len(stamp) + _LABEL_WIDTH + 1}} {line}" for line in rest),
    ]
    out = stream or sys.stdout
    with _lock:
        out.write("\n".join(lines) + "\n")
        out.flush()


def readable(line: str) -> str:
    """A Powertools log line or EMF metrics line as one short line; anything else unchanged."""
    try:
        record = json.loads(line)
    except ValueError:
        return line
    if not isinstance(record, dict):
        return line
    if "_aws" in record:
        names = [metric["Name"] for group in record["_aws"]["CloudWatchMetrics"] for metric in group["Metrics"]]
        return "metrics " + " ".join(f"{name}={_value(record.get(name))}" for name in names)
    if "level" not in record or "message" not in record:
        return line
    keys = " ".join(f"{key}={_value(value)}" for key, value in record.items() if key not in _CONTEXT_KEYS)
    text = f"{record['level']:<7} {record['message']}" + (f"  · {keys}" if keys else "")
    if record.get("exception"):
        text += "\n" + str(record["exception"])
    return text


def _value(value: Any) -> str:
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    return value if isinstance(value, str) else json.dumps(value)


class FunctionOutput(io.TextIOBase):
    """A function's stdout and stderr: whole lines, made readable and labelled with the function's name."""

    def __init__(self, label: str, stream: TextIO) -> None:
        self._label = label
        self._stream = stream
        self._pending = ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self._pending += text
        *lines, self._pending = self._pending.split("\n")
        for line in lines:
            if line.strip():
                say(self._label, readable(line), self._stream)
        return len(text)

    def flush(self) -> None:
        self._stream.flush()
