<?php

/**
 * Plugin Name:          KeyCRM Bridge
 * Plugin URI:           https://github.com/keycrm-bridge/keycrm-bridge
 * Description:          Sends every WooCommerce stock and product change, with its cause, to the keycrm-bridge sidecar.
 * Version:              0.1.0
 * Requires at least:    6.1
 * Tested up to:         7.0
 * Requires PHP:         8.1
 * Requires Plugins:     woocommerce
 * Author:               keycrm-bridge
 * License:              GPL-2.0-or-later
 * License URI:          https://www.gnu.org/licenses/gpl-2.0.html
 * Text Domain:          keycrm-bridge
 * Domain Path:          /languages
 * WC requires at least: 7.6
 * WC tested up to:      11.0
 *
 * @package KeycrmBridge
 */

defined('ABSPATH') || exit;

define('KCB_VERSION', '0.1.0');
define('KCB_PLUGIN_FILE', __FILE__);

// Classes load when first used (src/ follows the namespace): a shopper's checkout loads the stock hooks and
// the outbox, not the admin screens, the sidecar client or the resync code.
spl_autoload_register(static function (string $class): void {
    if (strncmp($class, 'KeycrmBridge\\', 13) !== 0) {
        return;
    }
    $file = __DIR__ . '/src/' . str_replace('\\', '/', substr($class, 13)) . '.php';
    if (is_file($file)) {
        require $file;
    }
});

\KeycrmBridge\Plugin::boot(__FILE__);
