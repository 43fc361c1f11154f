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
