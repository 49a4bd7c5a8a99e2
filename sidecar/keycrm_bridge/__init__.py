"""keycrm-bridge: keeps stock and products the same in WooCommerce and KeyCRM."""

__version__ = "0.1.0"
