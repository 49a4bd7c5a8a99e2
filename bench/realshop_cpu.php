<?php

/**
 * bench/plugin_overhead_realshop.py copies this into the rig's mu-plugins for its run and removes it after:
 * for a REST request carrying "X-Kcb-Bench: 1", the PHP worker's CPU time from here (before any plugin
 * loads) until the response is built, as "X-Kcb-Bench-Cpu-Ms". CPU time hardly moves with the machine's
 * load, so it shows what the plugin adds to the request where wall time on a shared machine cannot.
 */

if (empty($_SERVER['HTTP_X_KCB_BENCH'])) {
    return;
}

$GLOBALS['kcb_bench_rusage'] = getrusage();

add_filter('rest_post_dispatch', static function ($response) {
    $cpuMs = static function (array $usage): float {
        return ($usage['ru_utime.tv_sec'] + $usage['ru_stime.tv_sec']) * 1000.0
            + ($usage['ru_utime.tv_usec'] + $usage['ru_stime.tv_usec']) / 1000.0;
    };
    if ($response instanceof WP_HTTP_Response) {
        $spent = $cpuMs(getrusage()) - $cpuMs($GLOBALS['kcb_bench_rusage']);
        $response->header('X-Kcb-Bench-Cpu-Ms', sprintf('%.3f', $spent));
    }
    return $response;
}, PHP_INT_MAX);
