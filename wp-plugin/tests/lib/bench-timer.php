<?php

/**
 * Must-use plugin installed only by bench/plugin_overhead: records how long the PHP worker spent on each
 * request, including what ran after the response was sent (fastcgi_finish_request), to a log file.
 *
 * @package KeycrmBridge\Tests
 */

add_action('shutdown', static function (): void {
    // Registered during shutdown, so it runs after WordPress's own shutdown hooks (and the bridge's send).
    register_shutdown_function(static function (): void {
        $tag = isset($_SERVER['HTTP_X_KCB_BENCH']) ? preg_replace('/[^a-z0-9_-]/', '', (string) $_SERVER['HTTP_X_KCB_BENCH']) : '';
        if ($tag === '') {
            return;
        }
        $ms = (microtime(true) - (float) $_SERVER['REQUEST_TIME_FLOAT']) * 1000;
        file_put_contents(WP_CONTENT_DIR . '/kcb-bench-worker.log', sprintf("%s %.3f\n", $tag, $ms), FILE_APPEND | LOCK_EX);
    });
}, PHP_INT_MAX);
