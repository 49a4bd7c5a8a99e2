<?php

/**
 * Loads the test WordPress that tests/lib/env.sh installed (real WordPress, real MariaDB), with the
 * plugin active and the WooCommerce stand-in as a must-use plugin.
 *
 * @package KeycrmBridge\Tests
 */

$envDir = getenv('KCB_ENV_DIR') ?: '/tmp/kcb-wp-env';
$env = json_decode((string) file_get_contents($envDir . '/env.json'), true);
if (!is_array($env)) {
    fwrite(STDERR, "No test environment at $envDir: run tests/run.sh (or source tests/lib/env.sh; kcb_env_up).\n");
    exit(1);
}
$GLOBALS['kcb_test_env'] = $env;
$_SERVER['HTTP_HOST'] = parse_url($env['wp_url'], PHP_URL_HOST) . ':' . parse_url($env['wp_url'], PHP_URL_PORT);
$_SERVER['REQUEST_URI'] = '/';
$_SERVER['SERVER_NAME'] = parse_url($env['wp_url'], PHP_URL_HOST);

require $env['wp_dir'] . '/wp-load.php';
require_once ABSPATH . 'wp-admin/includes/plugin.php';
require_once __DIR__ . '/Receiver.php';
require_once __DIR__ . '/Http.php';
require_once __DIR__ . '/AdminSession.php';
require_once __DIR__ . '/BridgeTestCase.php';
