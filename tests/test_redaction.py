"""No secret reaches a log line: not in messages, arguments, exceptions, at any level.

Nor in any form a secret takes on its way there: escaped by ``repr`` or JSON, URL-quoted,
inside HTTP Basic's base64, cut in half by a shortened error text; with the SDK's console
formatter or its JSON one, whose METRIC lines must stay structured.
"""

from __future__ import annotations

import base64
import io
import json
import logging
from urllib.parse import quote, quote_plus

import orjson
import pytest
import singer_sdk.logging
from singer_sdk import metrics

from api_sandbox import Fault
from taps_core.redact import MASK, redact, register_secret
from tests.support import TAPS, run_cli, tap_case

SECRET = "redaction-SENTINEL-91c2"
REWARDS = tap_case("rewards")
#: The taps whose credential is one ``api_key``, sent with every data request.
API_KEY_TAPS = [
    case for case in TAPS if "api_key" in case.tap_class.config_jsonschema["properties"]
]
#: Every character a pasted or generated secret may hold that an escaper rewrites.
ODD_SECRET = "sk-Q7 %+/\"d'\\ü-ZX93kd"
#: Every formatter the SDK ships, found rather than listed, so a new one is covered too.
SDK_FORMATTERS = sorted(
    (
        value
        for value in vars(singer_sdk.logging).values()
        if isinstance(value, type) and issubclass(value, logging.Formatter)
    ),
    key=lambda cls: cls.__name__,
)
WINDOW = 8


def forms_of(secret: str) -> list[str]:
    """The secret as escapers write it, worked out here apart from taps_core."""
    forms = [secret, quote(secret, safe=""), quote(secret), quote_plus(secret)]
    for encoding in ("utf-8", "latin-1"):
        data = secret.encode(encoding)
        forms += [repr(data)[2:-1], repr(b"Bearer " + data + b"\n")[9:-3]]
    forms += [repr(secret)[1:-1], repr(secret + '"')[1:-2]]
    for user in ("u", "us", "use"):  # the secret at each offset inside HTTP Basic's base64
        encoded = base64.b64encode(f"{user}:{secret}".encode("latin-1")).decode()
        forms.append(encoded[4:-4])
    forms += [json.dumps(form)[1:-1] for form in list(forms)]
    forms += [json.dumps(form, ensure_ascii=False)[1:-1] for form in list(forms)]
    return forms


def leaks(text: str, secret: str, window: int | None = WINDOW) -> list[str]:
    """Every stretch of ``window`` characters of any form of ``secret`` found in ``text``:
    a half secret (cut by a shortened error text) counts as a leak too."""
    found = set()
    for form in forms_of(secret):
        size = window or len(form)
        for start in range(max(len(form) - size, 0) + 1):
            stretch = form[start : start + size]
            if stretch in text:
                found.add(stretch)
    return sorted(found)


def json_log_config(tmp_path, level: str) -> dict[str, str]:
    """The environment that turns on the SDK's JSON formatter, as its docs describe."""
    path = tmp_path / "logging.yml"
    path.write_text(
        "version: 1\n"
        "disable_existing_loggers: false\n"
        "formatters:\n"
        "  structured:\n"
        "    (): singer_sdk.logging.StructuredFormatter\n"
        "handlers:\n"
        "  console:\n"
        "    class: logging.StreamHandler\n"
        "    formatter: structured\n"
        "    stream: ext://sys.stderr\n"
        "root:\n"
        f"  level: {level}\n"
        "  handlers: [console]\n"
    )
    return {"SINGER_SDK_LOG_CONFIG": str(path), "LOGLEVEL": level}


def log_env(tmp_path, formatter: str, level: str) -> dict[str, str]:
    if formatter == "json":
        return json_log_config(tmp_path, level)
    return {"LOGLEVEL": level}


def assert_json_lines_with_structured_metrics(stderr: str) -> None:
    lines = [json.loads(line) for line in stderr.splitlines()]
    metric_lines = [line for line in lines if line["logger_name"] == "singer_sdk.metrics"]
    assert metric_lines
    for line in metric_lines:
        assert line["message"] == "METRIC", line
        assert set(line["metric_info"]) >= {"type", "metric", "value", "tags"}, line


def test_registered_secrets_are_masked_in_messages_arguments_and_tracebacks(caplog):
    register_secret(SECRET)
    logger = logging.getLogger("tap-test.redaction")
    with caplog.at_level(logging.DEBUG):
        logger.debug("config is %s", {"api_key": SECRET})
        logger.info(f"token {SECRET} in an f-string")
        try:
            raise ValueError(f"bad key {SECRET}")
        except ValueError:
            logger.exception("failed")
    text = caplog.text
    assert SECRET not in text
    assert text.count(MASK) >= 3


def test_short_values_are_not_treated_as_secrets():
    register_secret("ab")
    assert redact("tabs and labs") == "tabs and labs"


def test_redact_masks_every_occurrence():
    register_secret("another-secret-value")
    assert redact("x another-secret-value y another-secret-value") == f"x {MASK} y {MASK}"


@pytest.mark.parametrize("formatter", SDK_FORMATTERS, ids=lambda cls: cls.__name__)
@pytest.mark.parametrize("level", [logging.INFO, logging.DEBUG], ids=["INFO", "DEBUG"])
def test_every_sdk_formatter_masks_messages_exceptions_tracebacks_and_extra(formatter, level):
    secret = "fmt-" + ODD_SECRET
    register_secret(secret)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter())
    logger = logging.getLogger(f"tap-test.formatter.{formatter.__name__}.{level}")
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
    try:
        logger.log(level, "config is %r", {"api_key": secret}, extra={"ctx": {"key": secret}})
        logger.log(level, "raw bytes", extra={"header": b"Bearer " + secret.encode()})
        try:
            try:
                raise KeyError(secret)
            except KeyError as cause:
                raise ValueError(f"Invalid header value {secret.encode()!r}\n{secret}") from cause
        except ValueError:
            logger.log(level, "failed", exc_info=True, stack_info=True)
    finally:
        logger.removeHandler(handler)
    text = stream.getvalue()
    assert text.count(MASK) >= 3, text
    assert leaks(text, secret) == [], text


def test_metric_lines_stay_structured_and_filterable_with_secrets_registered():
    register_secret("metric-" + ODD_SECRET)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(singer_sdk.logging.StructuredFormatter())
    handler.addFilter(metrics.MetricExclusionFilter(metrics=["record_count"]))
    logger = logging.getLogger("tap-test.metrics")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        metrics.log(logger, metrics.Point("counter", metrics.Metric.RECORD_COUNT, 3, {}))
        metrics.log(
            logger,
            metrics.Point(
                "timer",
                metrics.Metric.SYNC_DURATION,
                0.5,
                {"context": {"k": "metric-" + ODD_SECRET}},
            ),
        )
    finally:
        logger.removeHandler(handler)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["metric_info"]["metric"] for line in lines] == ["sync_duration"]
    assert lines[0]["message"] == "METRIC"
    assert lines[0]["metric_info"]["tags"] == {"context": {"k": MASK}}


@pytest.mark.parametrize("formatter", ["default", "json"])
@pytest.mark.parametrize("case", API_KEY_TAPS, ids=lambda case: case.name)
def test_a_secret_with_a_trailing_newline_is_stripped_and_the_sync_runs(
    sandbox, tmp_path, case, formatter
):
    key = sandbox.credentials(case.api)["api_key"]
    config = case.config(sandbox, api_key=key + "\n")
    result = run_cli(case.executable, config, tmp_path, env=log_env(tmp_path, formatter, "DEBUG"))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "api_key" in result.stderr and "removed whitespace" in result.stderr
    assert leaks(result.stdout + result.stderr, key, window=None) == []  # words, not random
    assert result.sync.streams
    if formatter == "json":
        assert_json_lines_with_structured_metrics(result.stderr)


def test_a_control_character_inside_a_secret_is_refused_naming_only_the_setting(sandbox, tmp_path):
    secret = "sk-Q7\nd'\\ü-ZX93kd"
    config = REWARDS.config(sandbox, api_key=secret)
    result = run_cli(REWARDS.executable, config, tmp_path)
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if "| ERROR" in line]
    assert len(errors) == 1, result.stderr
    assert "api_key" in errors[0] and "control character" in errors[0]
    assert "Traceback" not in result.stderr
    assert leaks(result.stdout + result.stderr, "sk-Q7") == []
    assert leaks(result.stdout + result.stderr, "d'\\ü-ZX93kd") == []
    assert sandbox.requests == []


@pytest.mark.parametrize("formatter", ["default", "json"])
@pytest.mark.parametrize("level", ["INFO", "DEBUG"])
@pytest.mark.parametrize("case", API_KEY_TAPS, ids=lambda case: case.name)
def test_a_secret_the_api_echoes_is_masked_in_every_form_even_across_the_cut(
    sandbox, tmp_path, case, formatter, level
):
    """An API that repeats the credential it was sent, in the forms it saw it in, with
    the last copy straddling the 300 characters the tap keeps of an error text."""
    basic = base64.b64encode(f"us:{ODD_SECRET}".encode("latin-1")).decode()
    echoed = [
        ODD_SECRET,
        quote_plus(ODD_SECRET),
        quote(ODD_SECRET),
        f"Basic {basic}",
        json.dumps({"api_key": ODD_SECRET}),
        repr(ODD_SECRET.encode()),
    ]
    head = "refused: " + " ".join(echoed) + " "
    message = head + "." * (288 - len(head)) + ODD_SECRET + " and more after the cut"
    assert len(head) < 288
    sandbox.add_fault(
        Fault(
            kind="status",
            api=case.api,
            status=400,
            body=orjson.dumps({"error": {"message": message}}),
            times=None,
        )
    )
    # log_metrics: the METRIC lines at INFO too, so that their form is checked at both
    config = case.config(sandbox, api_key=ODD_SECRET, log_metrics=True)
    result = run_cli(case.executable, config, tmp_path, env=log_env(tmp_path, formatter, level))
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert leaks(result.stdout + result.stderr, ODD_SECRET) == []
    assert "400" in result.stderr and "refused: " + MASK in result.stderr
    if formatter == "json":
        assert_json_lines_with_structured_metrics(result.stderr)
        errors = [json.loads(line) for line in result.stderr.splitlines()]
        errors = [line for line in errors if line["level"] == "error"]
    else:
        errors = [line for line in result.stderr.splitlines() if "| ERROR" in line]
    assert len(errors) == 1, result.stderr
