"""Argument types shared by the listings management commands (argparse ``type=``)."""

import argparse


def whole_number(value, minimum):
    try:
        number = int(value)
    except ValueError:
        number = None
    if number is None or number < minimum:
        raise argparse.ArgumentTypeError(f"{value!r} must be a whole number of at least {minimum}")
    return number


def positive_int(value):
    return whole_number(value, 1)


def non_negative_int(value):
    return whole_number(value, 0)


def fraction(value):
    """A number in (0, 1]."""
    try:
        number = float(value)
    except ValueError:
        number = None
    if number is None or not 0 < number <= 1:
        raise argparse.ArgumentTypeError(f"{value!r} must be a number in (0, 1]")
    return number


def day_or_time(value):
    """A date (``2026-07-01``: midnight UTC) or an ISO 8601 date and time (UTC unless it says otherwise)."""
    from datetime import UTC, date, datetime, time

    try:
        if len(value) == 10:
            return datetime.combine(date.fromisoformat(value), time(), tzinfo=UTC)
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value!r} must be a date (2026-07-01) or a date and time (2026-07-01T12:00:00+02:00)"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
