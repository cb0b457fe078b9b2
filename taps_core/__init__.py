"""What the five taps share: retries, errors, auth, redaction, paging and the base stream."""
