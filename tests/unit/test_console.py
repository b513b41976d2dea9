"""The local stack's terminal: a function's Powertools JSON and EMF lines come out as one short line each."""

from __future__ import annotations

import io
import json

from devstack.console import FunctionOutput, readable


def test_a_powertools_log_line_keeps_level_message_and_the_keys_that_follow_a_message() -> None:
    line = json.dumps(
        {
            "level": "WARNING",
            "location": "handler:12",
            "message": "delivery failed: will retry",
            "timestamp": "2026-11-21 10:00:00,000+0000",
            "service": "delivery",
            "cold_start": False,
            "function_request_id": "abc",
            "xray_trace_id": "1-2-3",
            "client_id": "acme",
            "attempt": 2,
        }
    )

    assert readable(line) == "WARNING delivery failed: will retry  · client_id=acme attempt=2"


def test_an_emf_line_becomes_the_metrics_it_records() -> None:
    line = json.dumps(
        {
            "_aws": {"CloudWatchMetrics": [{"Metrics": [{"Name": "Accepted"}, {"Name": "Forwarded"}]}]},
            "Accepted": [1.0],
            "Forwarded": [1.0],
            "service": "inbound",
        }
    )

    assert readable(line) == "metrics Accepted=1.0 Forwarded=1.0"


def test_an_exception_is_kept_under_its_line_and_other_text_is_left_alone() -> None:
    line = json.dumps({"level": "ERROR", "message": "boom", "exception": "Traceback ...\nValueError: x"})

    assert readable(line) == "ERROR   boom\nTraceback ...\nValueError: x"
    assert readable("plain text") == "plain text"
    assert readable("[1, 2]") == "[1, 2]"


def test_function_output_labels_whole_lines_only() -> None:
    stream = io.StringIO()
    output = FunctionOutput("inbound", stream)

    output.write('{"level": "INFO", "mess')
    assert stream.getvalue() == ""
    output.write('age": "forwarded to the bot"}\nsecond')
    output.write(" line\n")

    lines = stream.getvalue().splitlines()
    assert [line[9:] for line in lines] == [
        "inbound      INFO    forwarded to the bot",
        "inbound      second line",
    ]
