"""The shared secret of the WooCommerce client and peer tests (their fixtures are in conftest.py)."""

SECRET = "shared-secret-for-tests"
