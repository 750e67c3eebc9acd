"""Normative protocol specs (``*.md``) and their test-vector generators (``gen_*.py``)."""
