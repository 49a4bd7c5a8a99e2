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

require_once __DIR__ . '/src/Settings.php';
require_once __DIR__ . '/src/Signer.php';
require_once __DIR__ . '/src/RequestContext.php';
require_once __DIR__ . '/src/EventFactory.php';
require_once __DIR__ . '/src/EventBuffer.php';
require_once __DIR__ . '/src/Log.php';
require_once __DIR__ . '/src/OutboxLimit.php';
require_once __DIR__ . '/src/Outbox.php';
require_once __DIR__ . '/src/SidecarResponse.php';
require_once __DIR__ . '/src/SidecarClient.php';
require_once __DIR__ . '/src/ResyncJob.php';
require_once __DIR__ . '/src/RetryScheduler.php';
require_once __DIR__ . '/src/AsyncFlush.php';
require_once __DIR__ . '/src/Dispatcher.php';
require_once __DIR__ . '/src/Installer.php';
require_once __DIR__ . '/src/ProductHooks.php';
require_once __DIR__ . '/src/ProductExclusion.php';
require_once __DIR__ . '/src/StockRoute.php';
require_once __DIR__ . '/src/Admin/AdminFormat.php';
require_once __DIR__ . '/src/Admin/AdminPage.php';
require_once __DIR__ . '/src/Admin/SettingsView.php';
require_once __DIR__ . '/src/Admin/Reasons.php';
require_once __DIR__ . '/src/Admin/Timeline.php';
require_once __DIR__ . '/src/Admin/QuarantineView.php';
require_once __DIR__ . '/src/Admin/StatusView.php';
require_once __DIR__ . '/src/Admin/OutboxView.php';
require_once __DIR__ . '/src/Admin/ResyncView.php';
require_once __DIR__ . '/src/Admin/OutboxNotice.php';
require_once __DIR__ . '/src/Admin/ErpStatusView.php';
require_once __DIR__ . '/src/Admin/ProductPanel.php';
require_once __DIR__ . '/src/Admin/ReviewView.php';
require_once __DIR__ . '/src/Admin/SyncNotice.php';
require_once __DIR__ . '/src/Cli/Commands.php';
require_once __DIR__ . '/src/Plugin.php';

\KeycrmBridge\Plugin::boot(__FILE__);
