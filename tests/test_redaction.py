"""No secret reaches a log line: not in messages, arguments, exceptions, at any level."""

from __future__ import annotations

import logging

from taps_core.redact import MASK, redact, register_secret

SECRET = "redaction-SENTINEL-91c2"


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
