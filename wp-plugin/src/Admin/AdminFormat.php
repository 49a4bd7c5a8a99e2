<?php

/**
 * Words for times, ages and failed sidecar calls on the admin screens.
 *
 * @package KeycrmBridge
 */

namespace KeycrmBridge\Admin;

use KeycrmBridge\Settings;
use KeycrmBridge\SidecarResponse;

defined('ABSPATH') || exit;

/**
 * Times, ages and failed sidecar calls in words for the admin screens (the site's time zone and language).
 */
final class AdminFormat
{
    public static function age(int $seconds): string
    {
        return $seconds < 60
            /* translators: %d: number of seconds. */
            ? sprintf(_n('%d second', '%d seconds', $seconds, 'keycrm-bridge'), $seconds)
            : human_time_diff(time() - $seconds, time());
    }

    public static function time($value): string
    {
        if ($value === null || $value === '' || $value === 0) {
            return __('never', 'keycrm-bridge');
        }
        $timestamp = is_numeric($value) ? (int) $value : strtotime((string) $value);
        if (!$timestamp) {
            return (string) $value;
        }
        $when = wp_date(get_option('date_format') . ' ' . get_option('time_format'), $timestamp);
        if ($timestamp > time()) {
            return sprintf(
                /* translators: 1: date and time, 2: how long from now. */
                __('%1$s (in %2$s)', 'keycrm-bridge'),
                $when,
                human_time_diff(time(), $timestamp)
            );
        }
        return sprintf(
            /* translators: 1: date and time, 2: how long ago. */
            __('%1$s (%2$s ago)', 'keycrm-bridge'),
            $when,
            human_time_diff($timestamp, time())
        );
    }

    /** Words for a failed call, written for a shop owner rather than for a developer. */
    public static function explain(SidecarResponse $response): string
    {
        $url = Settings::sidecarUrl();
        if ($response->status === 0) {
            return sprintf(
                /* translators: 1: sidecar URL, 2: network error. */
                __('Could not reach the sidecar at %1$s (%2$s). Check that it is running and that the URL is right.', 'keycrm-bridge'),
                $url,
                $response->error
            );
        }
        if ($response->status === 401) {
            return __(
                'The sidecar is reachable but refused this shop\'s signature. Make sure the shared secret is the same here and in the sidecar, and that the server clocks are right.',
                'keycrm-bridge'
            );
        }
        if ($response->status === 404 || ($response->status >= 200 && $response->status < 300)) {
            return sprintf(
                /* translators: %s: sidecar URL. */
                __('Something answers at %s, but it is not the keycrm-bridge sidecar. Check the URL.', 'keycrm-bridge'),
                $url
            );
        }
        return sprintf(
            /* translators: %s: HTTP status and error from the sidecar. */
            __('The sidecar answered with an error (%s). Its log says more.', 'keycrm-bridge'),
            $response->error
        );
    }
}
