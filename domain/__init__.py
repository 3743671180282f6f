"""Pure domain: pydantic models and logic. No I/O, no Ray, no web framework imports."""
