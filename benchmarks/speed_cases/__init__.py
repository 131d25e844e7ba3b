"""One module per assignment exposing `case(profile) -> dict` for benchmarks/reference_speed.py."""
