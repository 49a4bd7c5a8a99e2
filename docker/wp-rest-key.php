<?php

/**
 * Run by wp-init.sh (`wp eval-file`): a WooCommerce REST key for the sidecar with the values
 * WOO_CONSUMER_KEY / WOO_CONSUMER_SECRET from the environment, stored the way WooCommerce stores
 * keys it generates (the key hashed with wc_api_hash, the secret as is). A key made by an
 * earlier run is replaced, so changing the values in .env and running `docker compose up` again
 * is enough. There is no wp-cli command for REST keys, hence this file.
 *
 * @package KeycrmBridge
 */

global $wpdb;

$kcb_key    = (string) getenv('WOO_CONSUMER_KEY');
$kcb_secret = (string) getenv('WOO_CONSUMER_SECRET');
$kcb_login  = (string) (getenv('WP_ADMIN_USER') ?: 'admin');

if ('' === $kcb_key || '' === $kcb_secret) {
    WP_CLI::error('WOO_CONSUMER_KEY and WOO_CONSUMER_SECRET must be set');
}
if (! function_exists('wc_api_hash')) {
    WP_CLI::error('WooCommerce is not active');
}
$kcb_user = get_user_by('login', $kcb_login);
if (! $kcb_user) {
    WP_CLI::error("no WordPress user '$kcb_login' to own the REST key");
}

$kcb_table       = $wpdb->prefix . 'woocommerce_api_keys';
$kcb_description = 'keycrm-bridge sidecar (docker compose)';
$wpdb->delete($kcb_table, [ 'description' => $kcb_description ]);
$kcb_ok = $wpdb->insert(
    $kcb_table,
    [
        'user_id'         => $kcb_user->ID,
        'description'     => $kcb_description,
        'permissions'     => 'read_write',
        'consumer_key'    => wc_api_hash($kcb_key),
        'consumer_secret' => $kcb_secret,
        'truncated_key'   => substr($kcb_key, -7),
    ]
);
if (! $kcb_ok) {
    WP_CLI::error('could not store the REST key: ' . $wpdb->last_error);
}
WP_CLI::success('WooCommerce REST key for the sidecar: ...' . substr($kcb_key, -7) . ' (read/write)');
