<?php

/**
 * bench/plugin_overhead_realshop.py copies this into the rig's mu-plugins for its run and removes it after.
 * Nothing here runs for a request without the bench's headers (or outside its run: no in-flight directory).
 * For a REST request carrying "X-Kcb-Bench: 1", until the response is built:
 *  - X-Kcb-Bench-Cpu-Ms: the PHP worker's CPU time from here (before any plugin loads). CPU time moves less
 *    with the machine's load than wall time, so it shows what the plugin adds where wall time cannot.
 *  - X-Kcb-Bench-Plugin-Ms: wall time spent inside the KeyCRM Bridge plugin: including its main file (and
 *    what that loads) and running each of its hook callbacks, timed one by one. It misses what the plugin
 *    costs WordPress indirectly; the A/B figures against the plugin inactive cover that, with their noise.
 */

/**
 * Per-request setups, so that the A/B compares requests seconds apart rather than rounds minutes apart: a
 * request carrying "X-Kcb-Bench-Setup: inactive|up|down|hang" (or the flush request such a request rang,
 * which carries it as ?kcb_bench_setup=) runs without the bridge in active_plugins ("inactive") or with the
 * bridge pointed at that setup's sidecar URL (X-Kcb-Bench-Url, or ?kcb_bench_url=). Each
 * setup keeps its own delivery state, as a shop whose sidecar is persistently up, refused or hanging would.
 */
$kcbSetup = (string) ($_SERVER['HTTP_X_KCB_BENCH_SETUP'] ?? ($_GET['kcb_bench_setup'] ?? '')); // phpcs:ignore
$kcbUrl = (string) ($_SERVER['HTTP_X_KCB_BENCH_URL'] ?? ($_GET['kcb_bench_url'] ?? '')); // phpcs:ignore
if ($kcbSetup === 'inactive') {
    add_filter('option_active_plugins', static function ($plugins) {
        return array_values(array_diff((array) $plugins, ['keycrm-bridge/keycrm-bridge.php']));
    });
} elseif (in_array($kcbSetup, ['up', 'down', 'hang'], true) && $kcbUrl !== '') {
    $kcbState = 'kcb_delivery_state_bench_' . $kcbSetup;
    add_filter('pre_option_kcb_sidecar_url', static fn() => $kcbUrl);
    add_filter('pre_option_kcb_delivery_state', static fn() => get_option($kcbState, []));
    add_filter('pre_update_option_kcb_delivery_state', static function ($value, $old) use ($kcbState) {
        update_option($kcbState, $value, false);
        return $old; // unchanged: the shared option is not written
    }, 10, 2);
    add_filter('kcb_loopback_url', static fn($url) => add_query_arg(
        ['kcb_bench_setup' => $kcbSetup, 'kcb_bench_url' => rawurlencode($kcbUrl)],
        $url
    ));
}

/**
 * Every request of the rig marks itself in flight in /tmp/kcb-bench-inflight (a directory the bench makes) until
 * its very end, after-response work included, so the bench can start each timed request on an idle shop.
 */
$kcbInflight = '/tmp/kcb-bench-inflight';
if (is_dir($kcbInflight)) {
    $kcbMark = $kcbInflight . '/' . getmypid() . '-' . hrtime(true);
    if (@touch($kcbMark)) {
        // Registered from a shutdown function, so it runs after WordPress's own (the "shutdown" action).
        register_shutdown_function(static function () use ($kcbMark) {
            register_shutdown_function(static fn() => @unlink($kcbMark));
        });
    }
}

if (empty($_SERVER['HTTP_X_KCB_BENCH'])) {
    return;
}

$GLOBALS['kcb_bench'] = ['rusage' => getrusage(), 'plugin_ns' => 0, 'mark' => 0];

/** From the plugin before ours (or the end of the mu-plugins) to the end of including the bridge's main file. */
add_action('muplugins_loaded', static function () {
    $GLOBALS['kcb_bench']['mark'] = hrtime(true);
}, PHP_INT_MAX);
add_action('plugin_loaded', static function ($file) {
    $now = hrtime(true);
    if (basename((string) $file) === 'keycrm-bridge.php') {
        $GLOBALS['kcb_bench']['plugin_ns'] += $now - $GLOBALS['kcb_bench']['mark'];
    }
    $GLOBALS['kcb_bench']['mark'] = hrtime(true);
});

/** Every callback of the plugin's classes runs inside a timer (the plugin registers them all while it loads). */
add_action('plugins_loaded', static function () {
    global $wp_filter;
    foreach ($wp_filter as $hook) {
        foreach ($hook->callbacks as $priority => $callbacks) {
            foreach ($callbacks as $id => $callback) {
                $function = $callback['function'];
                $owner = is_array($function) ? (is_object($function[0]) ? get_class($function[0]) : (string) $function[0]) : '';
                if (strncmp($owner, 'KeycrmBridge\\', 13) !== 0) {
                    continue;
                }
                $hook->callbacks[$priority][$id]['function'] = static function (...$args) use ($function) {
                    $start = hrtime(true);
                    try {
                        return call_user_func_array($function, $args);
                    } finally {
                        $GLOBALS['kcb_bench']['plugin_ns'] += hrtime(true) - $start;
                    }
                };
            }
        }
    }
}, PHP_INT_MIN);

add_filter('rest_post_dispatch', static function ($response) {
    $cpuMs = static function (array $usage): float {
        return ($usage['ru_utime.tv_sec'] + $usage['ru_stime.tv_sec']) * 1000.0
            + ($usage['ru_utime.tv_usec'] + $usage['ru_stime.tv_usec']) / 1000.0;
    };
    if ($response instanceof WP_HTTP_Response) {
        $spent = $cpuMs(getrusage()) - $cpuMs($GLOBALS['kcb_bench']['rusage']);
        $response->header('X-Kcb-Bench-Cpu-Ms', sprintf('%.3f', $spent));
        $response->header('X-Kcb-Bench-Plugin-Ms', sprintf('%.3f', $GLOBALS['kcb_bench']['plugin_ns'] / 1e6));
    }
    return $response;
}, PHP_INT_MAX);
