"""Test doubles that behave like the real ERPs: CommerceML packages, a 1C client, a MoySklad server."""
