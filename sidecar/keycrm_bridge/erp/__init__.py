"""ERP intake (``SYNC_MODE=erp``): 1C / BAS over the CommerceML 2 exchange, or MoySklad's JSON API.

A new source of stock, beside the plugin and KeyCRM: the ERP's on-hand quantity per warehouse
becomes KeyCRM's ``quantity`` of the mapped KeyCRM warehouse; WooCommerce then follows KeyCRM's
sellable exactly as in ``keycrm`` mode.
"""
