<?php

/**
 * Stand-in for WooCommerce's FeaturesUtil: records compatibility declarations so tests can check them.
 *
 * @package KeycrmBridge\Tests
 */

namespace Automattic\WooCommerce\Utilities;

/**
 * Same static method signature as WooCommerce's.
 */
class FeaturesUtil
{
    /** @var array<int, array{feature: string, plugin_file: string, positive: bool}> */
    public static array $declared = [];

    public static function declare_compatibility(string $feature_id, string $plugin_file, bool $positive_compatibility = true): bool
    {
        self::$declared[] = ['feature' => $feature_id, 'plugin_file' => $plugin_file, 'positive' => $positive_compatibility];
        return true;
    }
}
